"""The subject matrix, the dashboard and the query list cost the same whatever the size of the
trial (issue 15): each reads a fixed number of SQL queries for 2 subjects and for 6, at one
site and at two; the matrix and the query list read one page, found again by its filters and
page links; the visit status the matrix filters and the dashboard counts by is computed in SQL
exactly as ``visits.schedule.visit_status`` computes it. The casebook reads every form of its
subject in one statement. Time is measured by the benchmarks."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from edc.roles import Role
from forms import selectors as form_selectors
from forms.entry import services as form_services
from forms.models import CRF_MODELS, CRFStatus, VitalSigns
from forms.quality import views as query_views
from forms.quality.sdv import crf_verify, sdv_progress_for_subject
from forms.selectors import (
    LOG_FORM_CODES,
    casebook_rows,
    today_by_site,
    visit_status_expression,
)
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject
from visits import schedule
from visits import services as visit_services
from visits.models import Subject, SubjectStatus, Visit


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 190,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


@pytest.fixture
def grow(site, other_site, nurse):
    """Add ``n`` randomized subjects, alternately at each site, each with vital signs out of
    range (an open query) and its first infusion visit recorded (a visit done)."""
    other_nurse = UserFactory(username="nurse2", role=Role.SITE_STAFF, sites=[other_site])
    made = []

    def grow(n: int) -> list:
        for _ in range(n):
            where, user = (site, nurse) if len(made) % 2 == 0 else (other_site, other_nurse)
            subject = randomized_subject(site=where, user=user)
            save(VitalSigns, subject, user, vitals(), visit=subject.visits.get(code="D2"))
            d1 = subject.visits.get(code="D1")
            form_services.visit_record(visit=d1, actual_date=d1.planned_date, user=user)
            made.append(subject)
        return made

    return grow


def count(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(captured)


PAGES = [
    ("data_manager", "matrix, all sites", "forms:matrix", {}),
    ("data_manager", "matrix, one site", "forms:matrix", {"site": "GZ02"}),
    ("data_manager", "matrix, by visit status", "forms:matrix", {"status": "done"}),
    ("data_manager", "matrix, by subject", "forms:matrix", {"q": "SZ01"}),
    ("nurse", "matrix, site staff", "forms:matrix", {"status": "upcoming"}),
    ("data_manager", "dashboard, all sites", "dashboard", {}),
    ("monitor", "dashboard, one site", "dashboard", {}),
    ("data_manager", "query list, all sites", "forms:query_list", {}),
    ("data_manager", "query list, every status", "forms:query_list", {"status": "all"}),
    ("monitor", "query list, one site", "forms:query_list", {"min_age": "0"}),
]


@pytest.mark.parametrize(("role", "name", "view", "params"), PAGES, ids=[p[1] for p in PAGES])
def test_the_page_reads_as_many_queries_for_6_subjects_as_for_2(
    client, grow, users, role, name, view, params
):
    grow(2)
    client.force_login(users[role])
    small = count(client, reverse(view), params)
    grow(4)
    assert count(client, reverse(view), params) == small, f"{name}: queries grew with subjects"


def test_the_matrix_reads_one_page_in_the_same_number_of_queries(
    client, grow, users, monkeypatch
):
    monkeypatch.setattr(form_selectors, "MATRIX_PAGE_SIZE", 2)
    grow(5)
    client.force_login(users["data_manager"])
    url = reverse("forms:matrix")
    counts = [count(client, url, {"page": n}) for n in (1, 2, 3)]
    assert counts[0] == counts[1] == counts[2]


def _labels(response) -> list[str]:
    return [row.subject.label for row in response.context["rows"]]


def test_the_matrix_pages_through_every_subject_in_a_stable_order_keeping_the_filters(
    client, grow, users, monkeypatch
):
    monkeypatch.setattr(form_selectors, "MATRIX_PAGE_SIZE", 2)
    subjects = grow(5)
    client.force_login(users["data_manager"])
    url = reverse("forms:matrix")
    seen = []
    for number in (1, 2, 3):
        response = client.get(url, {"page": number})
        seen += _labels(response)
    expected = [s.label for s in sorted(subjects, key=lambda s: (s.site.code,
                                                                  s.screening_number))]
    assert seen == expected
    first = client.get(url, {"status": "done", "page": 1})
    html = first.content.decode()
    assert "5 subjects" in html and "showing 1–2" in html and "Page 1 of 3" in html
    assert re.search(r'href="\?status=done&amp;page=2"', html), "next page loses the filter"
    # A page number past the end shows the last page, not an error.
    assert _labels(client.get(url, {"page": 99})) == expected[-1:]
    assert _labels(client.get(url, {"page": "x"})) == expected[:2]


def test_any_subject_is_found_by_subject_id_whatever_its_page(
    client, grow, users, monkeypatch
):
    monkeypatch.setattr(form_selectors, "MATRIX_PAGE_SIZE", 2)
    subjects = grow(5)
    client.force_login(users["data_manager"])
    last = sorted(subjects, key=lambda s: (s.site.code, s.screening_number))[-1]
    response = client.get(reverse("forms:matrix"), {"q": last.subject_id.lower()})
    assert _labels(response) == [last.label]
    assert _labels(client.get(reverse("forms:matrix"),
                              {"q": last.screening_number})) == [last.label]


def test_the_visit_status_filter_keeps_the_subjects_with_such_a_visit(
    client, grow, users
):
    first, second = grow(2)
    d2 = first.visits.get(code="D2")
    form_services.visit_missed(visit=d2, reason="Patient transferred", user=users["nurse"])
    client.force_login(users["data_manager"])
    url = reverse("forms:matrix")
    assert _labels(client.get(url, {"status": "missed"})) == [first.label]
    assert sorted(_labels(client.get(url, {"status": "done"}))) == sorted(
        [first.label, second.label])
    assert _labels(client.get(url, {"status": "missed", "site": "GZ02"})) == []


def test_the_query_list_pages_through_every_query_oldest_first(
    client, grow, users, monkeypatch
):
    monkeypatch.setattr(query_views, "QUERY_PAGE_SIZE", 2)
    grow(5)
    client.force_login(users["data_manager"])
    url = reverse("forms:query_list")
    listed, counts = [], []
    for number in (1, 2, 3):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, {"status": "all", "page": number})
        counts.append(len(captured))
        listed += [q.pk for q, _age in response.context["rows"]]
    everything = list(query_views.query_services.queries_for_user(users["data_manager"])
                      .order_by("raised_at", "pk").values_list("pk", flat=True))
    assert len(everything) >= 5
    assert listed == everything[:6]
    assert counts[0] == counts[1] == counts[2]
    html = response.content.decode()
    assert f"{len(everything)} queries match" in html
    assert 'href="?status=all&amp;page=2"' in html


# --- The visit status in SQL ---------------------------------------------------------------


def _sql_statuses(today: dict[int, dt.date]) -> dict[int, str]:
    return dict(Visit.objects.annotate(s=visit_status_expression(today)).values_list("pk", "s"))


def _python_statuses(today: dict[int, dt.date]) -> dict[int, str]:
    return {visit.pk: visit.status_on(today[visit.subject.site_id]).value
            for visit in Visit.objects.select_related("subject")}


def test_the_visit_status_in_sql_is_the_status_of_the_schedule(site, other_site, nurse):
    """Every status (done, missed, not expected, upcoming, due, overdue), on the edge days of
    every window, at one site's date and at two sites with different dates."""
    randomization_at = timezone.now() - dt.timedelta(days=3)
    on_study = randomized_subject(site=site, user=nurse, randomized_at=randomization_at)
    d1 = on_study.visits.get(code="D1")
    form_services.visit_record(visit=d1, actual_date=d1.planned_date, user=nurse)
    form_services.visit_missed(visit=on_study.visits.get(code="D2"), reason="Transferred",
                               user=nurse)
    other_nurse = UserFactory(username="nurse2", role=Role.SITE_STAFF, sites=[other_site])
    withdrawn = randomized_subject(site=other_site, user=other_nurse,
                                   randomized_at=randomization_at)
    visit_services.subject_set_status(subject=withdrawn, status=SubjectStatus.WITHDRAWN,
                                      user=other_nurse, reason="Consent withdrawn")
    later = randomized_subject(site=other_site, user=other_nurse,
                               randomized_at=randomization_at)
    days = sorted({day + dt.timedelta(days=shift)
                   for visit in Visit.objects.all()
                   for day in (visit.window_start, visit.window_end) if day is not None
                   for shift in (-1, 0, 1)})
    seen = set()
    for index, day in enumerate(days):
        for today in ({site.pk: day, other_site.pk: day},
                      {site.pk: day, other_site.pk: days[(index + 7) % len(days)]}):
            python = _python_statuses(today)
            assert _sql_statuses(today) == python, today
            seen |= set(python.values())
    assert seen == {status.value for status in schedule.VisitStatus}
    assert Subject.objects.get(pk=later.pk).is_on_study


def test_the_sites_today_is_their_local_date(site):
    late_evening_utc = dt.datetime(2026, 3, 10, 17, 0, tzinfo=dt.UTC)
    assert today_by_site([site], late_evening_utc) == {site.pk: dt.date(2026, 3, 11)}


# --- The casebook ----------------------------------------------------------------------------


def _crf_tables() -> tuple[str, ...]:
    return tuple(f'"{model._meta.db_table}"' for model in CRF_MODELS.values())


def test_the_casebook_reads_every_form_of_the_subject_in_one_statement(
    client, grow, users, site
):
    """The form statuses of the visit table and the SDV line come from one ``UNION ALL`` over
    the CRF tables (a query per table for each before); the log forms are then listed, one
    statement per log form. The page shows what the per-table reads showed."""
    subject = grow(1)[0]
    nurse, monitor = users["nurse"], users["monitor"]
    crf_verify(crf=save(VitalSigns, subject, nurse, vitals(systolic_bp=140),
                        visit=subject.visits.get(code="D1")), user=monitor)
    changed = crf_verify(crf=save(VitalSigns, subject, nurse, vitals(systolic_bp=140),
                                  visit=subject.visits.get(code="D8")), user=monitor)
    form_services.crf_save(crf=changed, values={"heart_rate": 80}, user=nurse,
                           expected_version=changed.version, complete=True,
                           reason="Corrected from source")
    save(VitalSigns, subject, nurse, vitals(), visit=subject.visits.get(code="D30"),
         complete=False)
    client.force_login(nurse)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("forms:casebook", args=[subject.pk]))
    assert response.status_code == 200
    tables = _crf_tables()
    reads = [q["sql"] for q in captured.captured_queries
             if any(table in q["sql"] for table in tables)]
    assert len(reads) == 1 + len(LOG_FORM_CODES), reads
    assert response.context["sdv"] == sdv_progress_for_subject(subject)
    assert response.context["sdv"].verified == 1 and response.context["sdv"].changed == 1
    shown = [(row.visit.pk, [(c.code, c.slot, c.status, c.pk) for c in row.forms])
             for row in response.context["visit_rows"]]
    expected = [(row.visit.pk, [(c.code, c.slot, c.status, c.pk) for c in row.forms])
                for row in casebook_rows(subject)]
    assert shown == expected
    statuses = {c.status for row in response.context["visit_rows"] for c in row.forms}
    assert {CRFStatus.COMPLETE, CRFStatus.IN_PROGRESS, CRFStatus.NOT_STARTED} <= statuses


def test_the_casebook_reads_as_many_queries_with_many_forms_and_subjects_as_with_few(
    client, grow, users
):
    subject = grow(1)[0]
    client.force_login(users["nurse"])
    url = reverse("forms:casebook", args=[subject.pk])
    few = count(client, url)
    for code in ("D1", "D8", "D30"):
        save(VitalSigns, subject, users["nurse"], vitals(), visit=subject.visits.get(code=code))
    grow(4)
    assert count(client, url) == few
