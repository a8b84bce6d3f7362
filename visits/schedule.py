"""Visit window arithmetic and visit status: pure functions of dates, no database.

Study days follow CDISC: Day 1 is the randomization date, Day -1 the day before, no Day 0.
A visit is *due* from its window start, *overdue* once its window end has passed with no visit
date, *done* when it has a visit date and *missed* when the site recorded that it did not take
place. Once a subject is off study (screen failed, completed, withdrawn, died) the visits they
never had are *not expected*: nobody is reminded of them. "Today" is always the calendar date
in the site's time zone: a visit in Shenzhen is overdue at Shenzhen midnight, not at UTC
midnight.
"""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _

from edc.protocol import SCREENING_VISIT, VisitDef


class VisitStatus(StrEnum):
    UPCOMING = "upcoming"
    DUE = "due"
    OVERDUE = "overdue"
    DONE = "done"
    MISSED = "missed"
    NOT_EXPECTED = "not_expected"

    @property
    def label(self) -> str:
        return _VISIT_STATUS_LABELS[self]


_VISIT_STATUS_LABELS = {
    VisitStatus.UPCOMING: _("upcoming"),
    VisitStatus.DUE: _("due"),
    VisitStatus.OVERDUE: _("overdue"),
    VisitStatus.DONE: _("done"),
    VisitStatus.MISSED: _("missed"),
    VisitStatus.NOT_EXPECTED: _("not expected"),
}


@dataclass(frozen=True)
class Window:
    planned: dt.date
    start: dt.date
    end: dt.date


def date_of_study_day(day1: dt.date, study_day: int) -> dt.date:
    """The calendar date of ``study_day`` for a subject randomized on ``day1``."""
    if study_day == 0:
        raise ValueError("There is no study day 0.")
    offset = study_day - 1 if study_day > 0 else study_day
    return day1 + dt.timedelta(days=offset)


def study_day(day1: dt.date, date: dt.date) -> int:
    """The study day of ``date`` for a subject randomized on ``day1`` (never 0)."""
    offset = (date - day1).days
    return offset + 1 if offset >= 0 else offset


def visit_window(visit: VisitDef, day1: dt.date) -> Window:
    """Planned date and window of a scheduled visit, counted in calendar days around Day 1.

    The window is counted in calendar days, so it can include the Day -1 → Day 1 step
    (there is no Day 0): the screening window Day -2 to Day 1 is three calendar days.
    """
    planned = date_of_study_day(day1, visit.day)
    return Window(
        planned=planned,
        start=planned - dt.timedelta(days=visit.window_before),
        end=planned + dt.timedelta(days=visit.window_after),
    )


def screening_window(consent_date: dt.date) -> Window:
    """The screening visit's window before randomization is known: it opens at consent and
    is as long as the protocol's screening window (Day -2 to Day 1)."""
    length = SCREENING_VISIT.window_before + SCREENING_VISIT.window_after
    return Window(
        planned=consent_date,
        start=consent_date,
        end=consent_date + dt.timedelta(days=length),
    )


def age_in_years(birth_date: dt.date, on: dt.date) -> int:
    """Completed years of age on ``on`` (someone born on 29 February turns a year older on
    1 March in common years)."""
    if on < birth_date:
        raise ValueError("The date is before the birth date.")
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - before_birthday


def local_date(moment: dt.datetime, time_zone: str | ZoneInfo) -> dt.date:
    """The calendar date of an aware datetime in a site's time zone."""
    if moment.tzinfo is None:
        raise ValueError("A naive datetime has no date in a time zone.")
    zone = time_zone if isinstance(time_zone, ZoneInfo) else ZoneInfo(time_zone)
    return moment.astimezone(zone).date()


def visit_status(
    *,
    window_start: dt.date | None,
    window_end: dt.date | None,
    actual_date: dt.date | None,
    is_missed: bool,
    today: dt.date,
    on_study: bool = True,
) -> VisitStatus:
    """Status of one visit on ``today`` (the site's local date).

    An unscheduled visit has no window; it exists because it happened, so without a date it
    is due until entered.
    """
    if actual_date is not None:
        return VisitStatus.DONE
    if is_missed:
        return VisitStatus.MISSED
    if not on_study:
        return VisitStatus.NOT_EXPECTED
    if window_start is not None and today < window_start:
        return VisitStatus.UPCOMING
    if window_end is not None and today > window_end:
        return VisitStatus.OVERDUE
    return VisitStatus.DUE
