"""NIHSS: coma consistency, neurological worsening without an adverse event, and a screening
score outside 8–20 while eligibility says the criterion is met."""

from django.utils.translation import gettext_lazy as _

from edc.protocol import MAX_NIHSS, MIN_NIHSS, SCREENING_VISIT
from forms import derivations
from forms.models.nihss import FIELD_TO_ITEM
from forms.quality.checks.base import SOFT, Check, SubjectData

ITEM_FIELD = {code: field for field, code in FIELD_TO_ITEM.items()}
WORSENING = 4
NIHSS_CRITERION = "IN06"


def coma_inconsistencies(record, data: SubjectData) -> list[str]:
    return [ITEM_FIELD[code] for code in derivations.nihss_coma_inconsistencies(record.items())]


def worsening_without_adverse_event(record, data: SubjectData) -> list[str]:
    baseline = data.at("nihss", SCREENING_VISIT.code)
    if (baseline is None or record is baseline or baseline.total is None
            or record.total is None or record.total - baseline.total < WORSENING):
        return []
    if any(e.special_interest == "neurological_worsening" for e in data.all("adverse_event")):
        return []
    return ["total"]


def screening_score_contradicts_eligibility(record, data: SubjectData) -> list[str]:
    visit = data.visits.get(record.visit_id)
    if visit is None or visit.code != SCREENING_VISIT.code or record.total is None:
        return []
    checklists = data.all("eligibility")
    confirmed = checklists[0].confirmations.get(NIHSS_CRITERION) if checklists else None
    if confirmed is True and not MIN_NIHSS <= record.total <= MAX_NIHSS:
        return ["total"]
    return []


CHECKS = [
    Check(
        code="NIHSS-001", form="nihss", fields=tuple(ITEM_FIELD[c] for c, _v in
                                                      derivations.NIHSS_COMA_REQUIRED),
        severity=SOFT,
        message=_("Item 1a = 3 (coma) requires 1b = 2, 1c = 2, 7 = 0, 8 = 2, 9 = 3, 10 = 2 and "
                  "11 = 2: please check this item."),
        function=coma_inconsistencies,
    ),
    Check(
        code="NIHSS-002", form="nihss", fields=("total",), severity=SOFT,
        message=_("NIHSS is 4 or more points above the screening score but no neurological "
                  "worsening adverse event is recorded."),
        function=worsening_without_adverse_event,
        reads=frozenset({"nihss", "adverse_event"}), visit_fields=frozenset({"code"}),
    ),
    Check(
        code="NIHSS-003", form="nihss", fields=("total",), severity=SOFT,
        message=_("The screening NIHSS is outside 8–20 but the eligibility checklist confirms "
                  "the NIHSS criterion as met."),
        function=screening_score_contradicts_eligibility,
        reads=frozenset({"eligibility"}), visit_fields=frozenset({"code"}),
    ),
]
