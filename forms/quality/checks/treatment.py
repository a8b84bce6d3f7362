"""Infusions and concomitant medications."""

from django.utils.translation import gettext_lazy as _

from edc.protocol import MAX_PREDNISONE_MG_PER_DAY
from forms.derivations import to_decimal
from forms.quality.checks.base import KITS, SOFT, Check, SubjectData
from visits import schedule


def infusion_date_differs_from_visit(record, data: SubjectData) -> list[str]:
    visit = data.visits.get(record.visit_id)
    if visit is None or visit.actual_date is None or record.started_at is None:
        return []
    started_on = schedule.local_date(record.started_at, data.subject.site.zone)
    return ["started_at"] if started_on != visit.actual_date else []


def kit_differs_from_allocation(record, data: SubjectData) -> list[str]:
    allocated = data.kits.get(record.infusion_number)
    if not record.kit_number or allocated is None:
        return []
    return ["kit_number"] if record.kit_number.strip() != allocated else []


def steroid_above_limit(record, data: SubjectData) -> list[str]:
    dose = record.prednisone_equivalent_exact()  # as entered, not the rounded stored value
    if dose is None or to_decimal(dose) <= MAX_PREDNISONE_MG_PER_DAY:
        return []
    if any(d.category == "prohibited_medication" for d in data.all("protocol_deviation")):
        return []
    return ["dose"]


CHECKS = [
    Check(
        code="INF-001", form="infusion", fields=("started_at",), severity=SOFT,
        message=_("The infusion date differs from the visit date: please confirm or correct."),
        function=infusion_date_differs_from_visit, visit_fields=frozenset({"actual_date"}),
    ),
    Check(
        code="INF-002", form="infusion", fields=("kit_number",), severity=SOFT,
        message=_("The kit number differs from the kit allocated for this infusion."),
        function=kit_differs_from_allocation, reads=frozenset({KITS}),
    ),
    Check(
        code="CM-001", form="concomitant_medication", fields=("dose",), severity=SOFT,
        message=_("Systemic corticosteroid above 10 mg/day prednisone equivalent: record a "
                  "protocol deviation (prohibited medication) or correct the dose."),
        function=steroid_above_limit, reads=frozenset({"protocol_deviation"}),
    ),
]
