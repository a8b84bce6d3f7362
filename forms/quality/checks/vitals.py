"""Vital signs: the soft ranges of PROTOCOL.md, and fever without a fever adverse event, on the
vital-signs form, the infusion record's pre/during/after measurements and every weight
(demographics, weight used for dosing)."""

import datetime as dt
from decimal import Decimal

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from forms.models.infusion import PERI_INFUSION_VITALS, VITAL_TIMEPOINTS
from forms.models.vitals import SOFT_LIMITS, VITAL_UNITS
from forms.quality.checks.base import SOFT, Check, SubjectData
from visits import schedule

FEVER = Decimal("38.0")


def outside_soft_range(vital: str, value) -> bool:
    """Whether a measurement of ``vital`` lies outside its soft range (PROTOCOL.md)."""
    low, high = SOFT_LIMITS[vital]
    if value is None:
        return False
    return (low is not None and value < low) or (high is not None and value > high)


def _outside(name: str, *, vital: str | None = None):
    """The check of item ``name``, measured as ``vital`` (default: the item's own name)."""
    vital = vital or name

    def check(record, data: SubjectData) -> list[str]:
        return [name] if outside_soft_range(vital, getattr(record, name)) else []

    return check


def _infusion_outside(vital: str):
    """The vital sign measured before, during and after an infusion: each time point that lies
    outside the soft range."""
    def check(record, data: SubjectData) -> list[str]:
        return [f"{timepoint}_{vital}" for timepoint in VITAL_TIMEPOINTS
                if outside_soft_range(vital, getattr(record, f"{timepoint}_{vital}"))]

    return check


def _range_text(name: str) -> str:
    low, high = SOFT_LIMITS[name]
    unit = VITAL_UNITS[name]
    if high is None:
        return f"≥ {low} {unit}"
    return f"{low}–{high} {unit}"


_LABELS = {
    "systolic_bp": _("Systolic blood pressure"), "diastolic_bp": _("Diastolic blood pressure"),
    "heart_rate": _("Heart rate"), "temperature": _("Temperature"),
    "respiratory_rate": _("Respiratory rate"), "spo2": _("SpO₂"), "weight": _("Weight"),
    "weight_for_dosing": _("Weight used for dosing"),
}

RANGE_CHECKS = [
    Check(
        code=f"VS-{number:03d}", form="vital_signs", fields=(name,), severity=SOFT,
        message=format_lazy(
            _("{measure} is outside the expected range ({range}): please confirm or correct."),
            measure=_LABELS[name], range=_range_text(name),
        ),
        function=_outside(name),
    )
    for number, name in enumerate(SOFT_LIMITS, start=1)
]


def _local_day(moment: dt.datetime | None, data: SubjectData) -> dt.date | None:
    if moment is None:
        return None
    return schedule.local_date(moment, data.subject.site.zone)


def _fever_recorded(day: dt.date | None, data: SubjectData) -> bool:
    """A fever adverse event covers ``day`` (from the day before it starts to its end)."""
    for event in data.all("adverse_event"):
        if event.special_interest != "fever" or event.start_date is None:
            continue
        ends = event.end_date or dt.date.max
        if day is None or event.start_date - dt.timedelta(days=1) <= day <= ends:
            return True
    return False


def fever_without_adverse_event(record, data: SubjectData) -> list[str]:
    if record.temperature is None or record.temperature < FEVER:
        return []
    if _fever_recorded(_local_day(record.measured_at, data), data):
        return []
    return ["temperature"]


def infusion_fever_without_adverse_event(record, data: SubjectData) -> list[str]:
    feverish = [f"{timepoint}_temperature" for timepoint in VITAL_TIMEPOINTS
                if (value := getattr(record, f"{timepoint}_temperature")) is not None
                and value >= FEVER]
    if not feverish:
        return []
    day = _local_day(record.stopped_at or record.started_at, data)
    if day is None:
        visit = data.visits.get(record.visit_id)
        day = visit.actual_date if visit is not None else None
    return [] if _fever_recorded(day, data) else feverish


def _message(name: str, vital: str):
    return format_lazy(
        _("{measure} is outside the expected range ({range}): please confirm or correct."),
        measure=_LABELS[name], range=_range_text(vital),
    )


INFUSION_RANGE_CHECKS = [
    Check(
        code=f"INF-{number:03d}", form="infusion",
        fields=tuple(f"{timepoint}_{vital}" for timepoint in VITAL_TIMEPOINTS),
        severity=SOFT, message=_message(vital, vital), function=_infusion_outside(vital),
        description=format_lazy(_("{measure} before, during and after the infusion."),
                                measure=_LABELS[vital]),
    )
    for number, vital in enumerate(PERI_INFUSION_VITALS, start=3)
]
WEIGHT_CHECKS = [
    Check(
        code="INF-007", form="infusion", fields=("weight_for_dosing",), severity=SOFT,
        message=_message("weight_for_dosing", "weight"),
        function=_outside("weight_for_dosing", vital="weight"),
    ),
    Check(
        code="DM-001", form="demographics", fields=("weight",), severity=SOFT,
        message=_message("weight", "weight"), function=_outside("weight"),
    ),
]


CHECKS = [
    *RANGE_CHECKS,
    Check(
        code="VS-008", form="vital_signs", fields=("temperature",), severity=SOFT,
        message=_("Temperature ≥ 38.0 °C but no fever adverse event is recorded: record the "
                  "adverse event or correct the temperature."),
        function=fever_without_adverse_event, reads=frozenset({"adverse_event"}),
    ),
    *INFUSION_RANGE_CHECKS,
    *WEIGHT_CHECKS,
    Check(
        code="INF-008", form="infusion",
        fields=tuple(f"{timepoint}_temperature" for timepoint in VITAL_TIMEPOINTS),
        severity=SOFT,
        message=_("Temperature ≥ 38.0 °C around the infusion but no fever adverse event is "
                  "recorded: record the adverse event or correct the temperature."),
        function=infusion_fever_without_adverse_event, reads=frozenset({"adverse_event"}),
        visit_fields=frozenset({"actual_date"}),
    ),
]
