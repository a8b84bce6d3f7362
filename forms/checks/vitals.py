"""Vital signs: the soft ranges of PROTOCOL.md, and fever without a fever adverse event."""

import datetime as dt
from decimal import Decimal

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from forms.checks.base import SOFT, Check, SubjectData
from forms.models.vitals import SOFT_LIMITS, VITAL_UNITS
from visits import schedule

FEVER = Decimal("38.0")


def _outside(name: str):
    low, high = SOFT_LIMITS[name]

    def check(record, data: SubjectData) -> list[str]:
        value = getattr(record, name)
        if value is None:
            return []
        if (low is not None and value < low) or (high is not None and value > high):
            return [name]
        return []

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


def _measured_on(record, data: SubjectData) -> dt.date | None:
    if record.measured_at is None:
        return None
    return schedule.local_date(record.measured_at, data.subject.site.zone)


def fever_without_adverse_event(record, data: SubjectData) -> list[str]:
    if record.temperature is None or record.temperature < FEVER:
        return []
    day = _measured_on(record, data)
    for event in data.all("adverse_event"):
        if event.special_interest != "fever" or event.start_date is None:
            continue
        ends = event.end_date or dt.date.max
        if day is None or event.start_date - dt.timedelta(days=1) <= day <= ends:
            return []
    return ["temperature"]


CHECKS = [
    *RANGE_CHECKS,
    Check(
        code="VS-008", form="vital_signs", fields=("temperature",), severity=SOFT,
        message=_("Temperature ≥ 38.0 °C but no fever adverse event is recorded: record the "
                  "adverse event or correct the temperature."),
        function=fever_without_adverse_event,
    ),
]
