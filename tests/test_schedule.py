import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from edc import protocol
from visits.schedule import (
    VisitStatus,
    date_of_study_day,
    local_date,
    screening_window,
    study_day,
    visit_status,
    visit_window,
)

DAY1 = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (dt.date(2026, 3, 10), 1),
        (dt.date(2026, 3, 11), 2),
        (dt.date(2026, 3, 9), -1),
        (dt.date(2026, 3, 8), -2),
        (dt.date(2026, 6, 7), 90),
    ],
)
def test_study_day_has_no_day_zero(date, expected):
    assert study_day(DAY1, date) == expected
    assert date_of_study_day(DAY1, expected) == date


def test_there_is_no_study_day_zero():
    with pytest.raises(ValueError, match="no study day 0"):
        date_of_study_day(DAY1, 0)


@pytest.mark.parametrize(
    ("code", "planned", "start", "end"),
    [
        ("SCR", dt.date(2026, 3, 9), dt.date(2026, 3, 8), dt.date(2026, 3, 10)),
        ("D1", DAY1, DAY1, DAY1),
        ("D2", dt.date(2026, 3, 11), dt.date(2026, 3, 11), dt.date(2026, 3, 11)),
        ("D8", dt.date(2026, 3, 17), dt.date(2026, 3, 16), dt.date(2026, 3, 18)),
        ("D15", dt.date(2026, 3, 24), dt.date(2026, 3, 23), dt.date(2026, 3, 25)),
        ("D30", dt.date(2026, 4, 8), dt.date(2026, 4, 5), dt.date(2026, 4, 11)),
        ("D90", dt.date(2026, 6, 7), dt.date(2026, 5, 31), dt.date(2026, 6, 14)),
        ("D180", dt.date(2026, 9, 5), dt.date(2026, 8, 22), dt.date(2026, 9, 19)),
    ],
)
def test_visit_windows(code, planned, start, end):
    window = visit_window(protocol.visit_def(code), DAY1)
    assert (window.planned, window.start, window.end) == (planned, start, end)


def test_screening_window_opens_at_consent_for_three_days():
    window = screening_window(dt.date(2026, 3, 8))
    assert (window.start, window.end) == (dt.date(2026, 3, 8), dt.date(2026, 3, 10))


START, END = dt.date(2026, 3, 16), dt.date(2026, 3, 18)


@pytest.mark.parametrize(
    ("today", "actual", "missed", "expected"),
    [
        (dt.date(2026, 3, 15), None, False, VisitStatus.UPCOMING),
        (START, None, False, VisitStatus.DUE),
        (END, None, False, VisitStatus.DUE),
        (dt.date(2026, 3, 19), None, False, VisitStatus.OVERDUE),
        (dt.date(2026, 3, 19), None, True, VisitStatus.MISSED),
        (dt.date(2026, 3, 15), dt.date(2026, 3, 15), False, VisitStatus.DONE),
        (dt.date(2026, 4, 1), dt.date(2026, 3, 17), False, VisitStatus.DONE),
    ],
)
def test_visit_status_at_window_edges(today, actual, missed, expected):
    assert (
        visit_status(
            window_start=START, window_end=END, actual_date=actual, is_missed=missed, today=today
        )
        == expected
    )


def test_unscheduled_visit_without_date_is_due():
    status = visit_status(
        window_start=None, window_end=None, actual_date=None, is_missed=False,
        today=dt.date(2026, 3, 1),
    )
    assert status == VisitStatus.DUE


def test_overdue_starts_at_site_midnight_not_utc_midnight():
    # 16:30 UTC on the window's last day is already the next day in Shenzhen (UTC+8),
    # but still the same day in Denver (UTC-6 once daylight saving time began on 8 March).
    moment = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)
    shenzhen = local_date(moment, "Asia/Shanghai")
    denver = local_date(moment, ZoneInfo("America/Denver"))
    assert shenzhen == dt.date(2026, 3, 19)
    assert denver == dt.date(2026, 3, 18)
    status = {
        zone: visit_status(window_start=START, window_end=END, actual_date=None,
                           is_missed=False, today=today)
        for zone, today in (("Asia/Shanghai", shenzhen), ("America/Denver", denver))
    }
    assert status == {"Asia/Shanghai": VisitStatus.OVERDUE, "America/Denver": VisitStatus.DUE}


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        local_date(dt.datetime(2026, 3, 18, 12, 0), "Asia/Shanghai")  # noqa: DTZ001


def test_visits_of_a_subject_off_study_are_not_expected():
    after_end = dt.date(2026, 3, 25)
    assert visit_status(window_start=START, window_end=END, actual_date=None, is_missed=False,
                        today=after_end, on_study=False) == VisitStatus.NOT_EXPECTED
    # What did happen stays on record.
    assert visit_status(window_start=START, window_end=END, actual_date=START, is_missed=False,
                        today=after_end, on_study=False) == VisitStatus.DONE
