"""Dates: visits within their window, nothing recorded as happening before consent."""

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _

from forms.quality.checks.base import SOFT, VISIT, Check, SubjectData
from visits import schedule

# Dates that legitimately precede consent: the stroke itself, medication already being taken.
BEFORE_CONSENT_ALLOWED = {
    "stroke_event": {"onset_at", "arrival_at", "imaging_at"},
    "concomitant_medication": {"start_date", "end_date"},
    "medical_history": set(),
}


def visit_outside_window(visit, data: SubjectData) -> list[str]:
    if visit.actual_date is None or visit.window_start is None:
        return []
    inside = visit.window_start <= visit.actual_date <= visit.window_end
    return [] if inside else ["actual_date"]


def date_before_consent(record, data: SubjectData) -> list[str]:
    consented_at = data.subject.consented_at
    if consented_at is None:
        return []
    consent_day = schedule.local_date(consented_at, data.subject.site.zone)
    allowed = BEFORE_CONSENT_ALLOWED.get(record.crf_code, set())
    items = set(record.item_names())
    failing = []
    for field in type(record)._meta.concrete_fields:
        if field.name not in items or field.name in allowed:
            continue
        value = getattr(record, field.attname)
        if value is None:
            continue
        if isinstance(field, models.DateTimeField):
            before = value < consented_at
        elif isinstance(field, models.DateField) and isinstance(value, dt.date):
            before = value < consent_day
        else:
            continue
        if before:
            failing.append(field.name)
    return failing


CHECKS = [
    Check(
        code="VIS-001", form=VISIT, fields=("actual_date",), severity=SOFT,
        message=_("The visit date is outside the visit window: please confirm (a protocol "
                  "deviation may be needed) or correct."),
        function=visit_outside_window,
    ),
    Check(
        code="DATE-001", form="*", fields=(), severity=SOFT,
        message=_("This date is before informed consent: please confirm or correct."),
        function=date_before_consent,
        description=_("Every date item of every form, except the stroke onset, arrival and "
                      "imaging times and concomitant medications started before the trial."),
    ),
]
