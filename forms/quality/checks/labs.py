"""Laboratory checks: liver enzymes above 2.5 × ULN, sample date against the visit date."""

from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from edc.protocol import MAX_TIMES_ULN
from forms.quality.checks.base import SOFT, Check, SubjectData
from visits import schedule


def _above_limit(name: str):
    def check(record, data: SubjectData) -> list[str]:
        value = getattr(record, name)
        uln = (record.ranges_used or {}).get(name)
        if value is None or uln is None:
            return []
        return [name] if Decimal(value) > MAX_TIMES_ULN * Decimal(uln[1]) else []

    return check


def sample_date_differs_from_visit(record, data: SubjectData) -> list[str]:
    visit = data.visits.get(record.visit_id)
    if visit is None or visit.actual_date is None or record.sampled_at is None:
        return []
    sampled_on = schedule.local_date(record.sampled_at, data.subject.site.zone)
    return ["sampled_at"] if sampled_on != visit.actual_date else []


CHECKS = [
    Check(
        code="LAB-001", form="labs", fields=("ast",), severity=SOFT,
        message=_("AST is above 2.5 × the upper limit of normal: please confirm; at screening "
                  "this excludes the subject."),
        function=_above_limit("ast"),
    ),
    Check(
        code="LAB-002", form="labs", fields=("alt",), severity=SOFT,
        message=_("ALT is above 2.5 × the upper limit of normal: please confirm; at screening "
                  "this excludes the subject."),
        function=_above_limit("alt"),
    ),
    Check(
        code="LAB-003", form="labs", fields=("sampled_at",), severity=SOFT,
        message=_("The sample date differs from the visit date: please confirm or correct."),
        function=sample_date_differs_from_visit, visit_fields=frozenset({"actual_date"}),
    ),
]
