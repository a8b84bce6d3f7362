"""The trial dashboard: every chart counts what the database holds (checked here against counts
made another way: object by object, or through the casebook), for the user's sites only, in a
fixed number of queries, without ever reading the randomization list."""

import datetime as dt
import itertools
import re
from collections import Counter
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from forms.entry import services as form_services
from forms.models import CRF_MODELS, NIHSS, AdverseEvent, CRFStatus, VitalSigns
from forms.quality import queries
from forms.quality.queries import ACTIVE_STATUSES, Query
from forms.reports import charts
from forms.reports.dashboard import QUERY_AGE_BANDS, next_month, trial_dashboard
from forms.selectors import VISIT_FORM_CODES, casebook_rows
from tests.factories import UserFactory, randomized_subject, screened_subject
from tests.test_blinding import ARM_TEXT
from visits import schedule
from visits import services as visit_services
from visits.models import Subject, SubjectStatus, Visit

DONE, OVERDUE, MISSED, DUE = (schedule.VisitStatus.DONE, schedule.VisitStatus.OVERDUE,
                              schedule.VisitStatus.MISSED, schedule.VisitStatus.DUE)
# One query per part, the visit-form tables read together in one.
DASHBOARD_QUERIES = 6 + 1


# --- Building a trial ----------------------------------------------------------------------------


def visit(subject, code):
    return subject.visits.get(code=code)


def record_visit(subject, code, *, days_late=0, user):
    planned = visit(subject, code)
    return form_services.visit_record(
        visit=planned, actual_date=planned.planned_date + dt.timedelta(days=days_late), user=user)


def save_form(model, subject, code, user, *, complete, values=None):
    crf = form_services.crf_instance(model=model, subject=subject, visit=visit(subject, code))
    return form_services.crf_save(
        crf=crf, values=values or {}, user=user, expected_version=crf.version,
        complete=complete, not_done_reason="not_done" if complete else "")


def adverse_event(subject, user, *, start: dt.date | None, serious: bool):
    crf = form_services.crf_instance(model=AdverseEvent, subject=subject)
    return form_services.crf_save(
        crf=crf, values={"term": "Headache", "start_date": start, "is_serious": serious},
        user=user, expected_version=0)


def screen_fail(site, user, criteria):
    subject = screened_subject(site=site, user=user)
    return visit_services.subject_set_status(
        subject=subject, status=SubjectStatus.SCREEN_FAILED, user=user,
        reason="Not eligible", failed_criteria=criteria)


def raise_query(subject, user, *, days_ago: float, code="D1"):
    with time_machine.travel(timezone.now() - dt.timedelta(days=days_ago), tick=False):
        return queries.query_raise(target=visit(subject, code), field_name="actual_date",
                                   text="Please check the visit date.", user=user)


@pytest.fixture
def trial(site, other_site, nurse):
    """Two sites: subjects randomized over three months, visits on time, late, missed and
    overdue, forms in every state, screen failures, queries of every age and adverse
    events."""
    now = timezone.now()
    nurse_b = UserFactory(username="nurse_b", role=Role.SITE_STAFF, sites=[other_site])
    data_manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    monitor_b = UserFactory(username="monitor_b", role=Role.MONITOR, sites=[other_site])

    a1 = randomized_subject(site=site, user=nurse, randomized_at=now - dt.timedelta(days=75))
    a2 = randomized_subject(site=site, user=nurse, randomized_at=now - dt.timedelta(days=40))
    a3 = randomized_subject(site=site, user=nurse)
    b1 = randomized_subject(site=other_site, user=nurse_b,
                            randomized_at=now - dt.timedelta(days=20))

    record_visit(a1, "D1", user=nurse)
    record_visit(a1, "D2", days_late=1, user=nurse)  # out of window: VIS-001 raises a query
    form_services.visit_missed(visit=visit(a1, "D8"), reason="Unreachable", user=nurse)
    record_visit(b1, "D1", user=nurse_b)

    save_form(VitalSigns, a1, "D1", nurse, complete=True)
    save_form(NIHSS, a1, "D1", nurse, complete=False)
    save_form(VitalSigns, a2, "D1", nurse, complete=False)
    save_form(VitalSigns, a3, "D1", nurse, complete=True)  # a due visit: its forms count
    save_form(VitalSigns, a1, "D90", nurse, complete=True)  # not yet due: does not count
    save_form(VitalSigns, b1, "D1", nurse_b, complete=True)

    screen_fail(site, nurse, ["IN06"])
    screen_fail(site, nurse, ["EX03", "IN06"])
    screen_fail(site, nurse, ["EX07"])
    screen_fail(other_site, nurse_b, ["IN01"])

    for days in (2.5, 10, 20, 45):
        raise_query(a1, data_manager, days_ago=days)
    queries.query_close(query=raise_query(a2, data_manager, days_ago=3), user=data_manager)
    answered = raise_query(b1, data_manager, days_ago=9)
    queries.query_answer(query=answered, text="Confirmed.", user=nurse_b)

    today = timezone.localdate(now)
    adverse_event(a1, nurse, start=today - dt.timedelta(days=60), serious=False)
    adverse_event(a1, nurse, start=today - dt.timedelta(days=30), serious=True)
    adverse_event(a2, nurse, start=today - dt.timedelta(days=10), serious=False)
    adverse_event(a3, nurse, start=None, serious=True)
    adverse_event(b1, nurse_b, start=today - dt.timedelta(days=5), serious=True)
    return SimpleNamespace(site=site, other_site=other_site, data_manager=data_manager,
                           monitor_b=monitor_b, nurse_b=nurse_b)


# --- The same numbers, counted another way -----------------------------------------------------


def counted_enrolment(sites, months):
    """Cumulative randomized subjects of each site at the end of each month."""
    return {
        site.code: [
            sum(1 for s in Subject.objects.filter(site=site, randomized_at__isnull=False)
                if timezone.localdate(s.randomized_at) < next_month(month))
            for month in months
        ]
        for site in sites
    }


def counted_screen_failures(sites):
    failed = Subject.objects.filter(site__in=sites, status=SubjectStatus.SCREEN_FAILED)
    return len(failed), Counter(code for s in failed for code in s.screen_failure_criteria)


def counted_visit_compliance(site, now):
    today = schedule.local_date(now, site.zone)
    counts = Counter()
    for v in Visit.objects.filter(subject__site=site).select_related("subject"):
        status = v.status_on(today)
        if status == DONE:
            counts["out_of_window" if v.actual_date > v.window_end
                   or v.actual_date < v.window_start else "on_time"] += 1
        elif status in (OVERDUE, MISSED):
            counts[str(status)] += 1
    return [counts["on_time"], counts["out_of_window"], counts["overdue"], counts["missed"]]


def counted_open_queries(site, now):
    bands = [0] * len(QUERY_AGE_BANDS)
    for query in Query.objects.filter(subject__site=site, status__in=ACTIVE_STATUSES):
        age = queries.query_age_days(query, now)
        for index, (low, high) in enumerate(QUERY_AGE_BANDS):
            if age >= low and (high is None or age <= high):
                bands[index] += 1
    return bands


def counted_crf_completion(site, now):
    """Through the casebook: the forms of each visit done, due or overdue, by status."""
    counts = Counter()
    for subject in Subject.objects.filter(site=site).prefetch_related("visits"):
        for row in casebook_rows(subject, now=now):
            if row.status in (DONE, DUE, OVERDUE):
                counts.update(form.status for form in row.forms)
    return [counts[CRFStatus.COMPLETE], counts[CRFStatus.IN_PROGRESS],
            counts[CRFStatus.NOT_STARTED]]


def counted_adverse_events(sites):
    events = AdverseEvent.objects.filter(subject__site__in=sites)
    by_month = Counter(e.start_date.replace(day=1) for e in events if e.start_date)
    serious = Counter(e.start_date.replace(day=1) for e in events
                      if e.start_date and e.is_serious)
    undated = [e for e in events if e.start_date is None]
    return by_month, serious, len(undated), sum(1 for e in undated if e.is_serious)


def assert_dashboard_counts(data, sites, now):
    assert [s.code for s in data.sites] == [s.code for s in sites]

    enrolment = data.enrolment
    assert enrolment.target == protocol.TARGET_ENROLMENT
    assert enrolment.months[-1] == timezone.localdate(now).replace(day=1)
    assert all(values[0] == 0 for values in enrolment.by_site.values())
    assert enrolment.by_site == counted_enrolment(sites, enrolment.months)
    assert enrolment.randomized == Subject.objects.filter(
        site__in=sites, randomized_at__isnull=False).count()

    failed, by_criterion = counted_screen_failures(sites)
    assert data.screen_failures.subjects == failed
    assert {c.code: n for c, n in data.screen_failures.by_criterion} == dict(by_criterion)

    for site in sites:
        compliance = data.visit_compliance[site.code]
        assert [compliance.on_time, compliance.out_of_window, compliance.overdue,
                compliance.missed] == counted_visit_compliance(site, now)
        assert data.open_queries[site.code] == counted_open_queries(site, now)
        completion = data.crf_completion[site.code]
        assert [completion.complete, completion.in_progress,
                completion.not_started] == counted_crf_completion(site, now)

    by_month, serious, undated, undated_serious = counted_adverse_events(sites)
    shown = {m.month: (m.total, m.serious) for m in data.adverse_events.by_month if m.total}
    assert shown == {month: (n, serious[month]) for month, n in by_month.items()}
    assert (data.adverse_events.undated, data.adverse_events.undated_serious) == (
        undated, undated_serious)


# --- The numbers --------------------------------------------------------------------------------


def test_each_chart_counts_what_the_database_holds(trial):
    now = timezone.now()
    data = trial_dashboard(trial.data_manager, now=now)
    assert_dashboard_counts(data, [trial.other_site, trial.site], now)

    # The fixture's story, spelled out.
    assert data.enrolment.randomized == 4
    assert data.screen_failures.subjects == 4
    assert {c.code: n for c, n in data.screen_failures.by_criterion} == {
        "IN06": 2, "EX03": 1, "EX07": 1, "IN01": 1}
    assert data.screen_failures.by_criterion[0][0].code == "IN06"
    sz = data.visit_compliance["SZ01"]
    assert (sz.on_time, sz.out_of_window, sz.missed) == (1, 1, 1)
    assert sz.overdue > 0
    # Four manual queries of every age; raised today by the edit checks: VIS-001 on the late
    # visit and AE-002 on each serious event (no seriousness criterion ticked). The closed
    # query is not counted, the answered one is.
    assert data.open_queries["SZ01"] == [4, 1, 1, 1]
    assert data.open_queries["GZ02"] == [1, 1, 0, 0]
    assert data.crf_completion["GZ02"].complete >= 2  # consent and vital signs at D1
    assert data.adverse_events.total == 5
    assert data.adverse_events.serious == 3


def test_months_without_events_are_zero_and_the_enrolment_starts_at_zero(trial):
    data = trial_dashboard(trial.data_manager)
    months = [m.month for m in data.adverse_events.by_month]
    assert months == sorted(months)
    assert all(next_month(a) == b for a, b in itertools.pairwise(months))
    assert data.enrolment.total[0] == 0
    assert data.enrolment.total == sorted(data.enrolment.total)


def test_an_empty_trial_shows_zeros(client, site, db):
    user = UserFactory(role=Role.MONITOR, sites=[site])
    data = trial_dashboard(user)
    assert data.enrolment.randomized == 0
    assert data.screen_failures.subjects == 0
    assert data.visit_compliance["SZ01"].total == 0
    assert data.adverse_events.by_month == []
    client.force_login(user)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert "No screening failure." in response.content.decode()


# --- The page -----------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Each table of a page by its caption: rows of cell texts (header row included)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._caption = self._cell = None
        self._key = ""
        self._rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = []
        elif tag == "caption":
            self._caption = ""
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "caption":
            self._key = self._caption.strip()
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "table":
            self.tables[self._key] = self._rows

    def handle_data(self, data):
        if self._caption is not None:
            self._caption += data
        elif self._cell is not None:
            self._cell += data


def page_tables(html: str) -> dict[str, dict[str, list[str]]]:
    """Caption → first cell of each row → the other cells."""
    parser = Tables()
    parser.feed(html)
    return {caption: {row[0]: row[1:] for row in rows if row}
            for caption, rows in parser.tables.items()}


def ints(cells):
    return [int(c) for c in cells]


def test_the_page_shows_every_number_in_a_table(client, trial):
    now = timezone.now()
    client.force_login(trial.data_manager)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    tables = page_tables(response.content.decode())
    sites = [trial.other_site, trial.site]

    enrolment = tables["Randomized subjects, cumulative, by month and site"]
    assert enrolment["Month"] == ["GZ02", "SZ01", "All"]
    data = trial_dashboard(trial.data_manager, now=now)
    counted = counted_enrolment(sites, data.enrolment.months)
    for index, month in enumerate(data.enrolment.months):
        row = ints(enrolment[month.strftime("%Y-%m")])
        assert row == [counted["GZ02"][index], counted["SZ01"][index],
                       counted["GZ02"][index] + counted["SZ01"][index]]

    failed, by_criterion = counted_screen_failures(sites)
    failures = tables["Screen-failed subjects by criterion not met"]
    assert {code: int(cells[-1]) for code, cells in failures.items()
            if code in by_criterion} == dict(by_criterion)
    assert failures["Screen-failed subjects"] == [str(failed)]
    assert failures["IN06"][0] == str(protocol.criterion("IN06").text)

    visits = tables["Scheduled visits by outcome and site"]
    query_table = tables["Open queries by age band and site"]
    forms = tables["Expected forms by status and site"]
    for site in sites:
        compliance = counted_visit_compliance(site, now)
        assert ints(visits[site.code]) == [*compliance, sum(compliance)]
        ages = counted_open_queries(site, now)
        assert ints(query_table[site.code]) == [*ages, sum(ages)]
        completion = counted_crf_completion(site, now)
        assert ints(forms[site.code]) == [*completion, sum(completion)]

    by_month, serious, undated, undated_serious = counted_adverse_events(sites)
    events = tables["Adverse events by month of onset"]
    for month, n in by_month.items():
        assert ints(events[month.strftime("%Y-%m")]) == [n, serious[month], n - serious[month]]
    assert ints(events["Onset date not entered"]) == [undated, undated_serious,
                                                      undated - undated_serious]


def test_every_chart_is_an_accessible_figure(client, trial):
    client.force_login(trial.data_manager)
    html = client.get(reverse("dashboard")).content.decode()
    figures = re.findall(r"<figure\b.*?</figure>", html, re.S)
    assert len(figures) == 6
    for figure in figures:
        assert "<figcaption" in figure
        svgs = re.findall(r"<svg\b[^>]*>", figure)
        assert len(svgs) == 1
        assert 'role="img"' in svgs[0] and "viewBox=" in svgs[0]
        title_id, desc_id = re.search(r'aria-labelledby="([^" ]+) ([^"]+)"', svgs[0]).groups()
        assert re.search(rf'<title id="{title_id}">[^<]+</title>', figure)
        assert re.search(rf'<desc id="{desc_id}">[^<]+</desc>', figure)
        assert re.search(r"<details>\s*<summary>.*?<table>", figure, re.S)
    # The strict CSP allows no inline script or style.
    main = html[html.index('<main'):]
    assert "<script" not in main and "style=" not in main


def test_a_monitor_sees_only_their_sites(client, trial):
    now = timezone.now()
    data = trial_dashboard(trial.monitor_b, now=now)
    assert_dashboard_counts(data, [trial.other_site], now)
    assert data.enrolment.randomized == 1
    assert [(c.code, n) for c, n in data.screen_failures.by_criterion] == [("IN01", 1)]
    assert data.adverse_events.total == 1

    client.force_login(trial.monitor_b)
    response = client.get(reverse("dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "GZ02" in html
    assert "SZ01" not in html
    assert "IN06" not in html


@pytest.mark.parametrize("role", [Role.SITE_STAFF, Role.INVESTIGATOR, Role.UNBLINDED_PHARMACIST,
                                  Role.UNBLINDED_STATISTICIAN, Role.ADMINISTRATOR])
def test_other_roles_may_not_see_the_dashboard(client, trial, role):
    client.force_login(UserFactory(role=role, sites=[trial.site]))
    assert client.get(reverse("dashboard")).status_code == 403
    assert reverse("dashboard") not in client.get(reverse("home")).content.decode()


@pytest.mark.parametrize("role", [Role.MONITOR, Role.DATA_MANAGER])
def test_monitors_and_data_managers_find_it_in_the_menu(client, trial, role):
    client.force_login(UserFactory(role=role, sites=[trial.site]))
    assert f'href="{reverse("dashboard")}"' in client.get(reverse("home")).content.decode()


def test_anonymous_users_are_sent_to_log_in(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_dashboard_never_reads_the_arm(client, trial):
    client.force_login(trial.data_manager)
    with CaptureQueriesContext(connection) as captured:
        html = client.get(reverse("dashboard")).content.decode()
    assert not [q["sql"] for q in captured.captured_queries
                if "randomizationslot" in q["sql"].lower()]
    assert [text for text in ARM_TEXT if text in html] == []
    assert "arm" not in re.sub(r"<[^>]+>", " ", html).lower().split()


# --- Queries ------------------------------------------------------------------------------------


def subject_with_data(site, nurse, monitor, index):
    """A randomized subject with a recorded visit, a form, a query, an AE, and a screen
    failure beside it: one more row in every part of the dashboard."""
    now = timezone.now()
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=now - dt.timedelta(days=10 + 20 * (index % 4)))
    record_visit(subject, "D1", user=nurse)
    save_form(VitalSigns, subject, "D1", nurse, complete=index % 2 == 0)
    raise_query(subject, monitor, days_ago=index * 3)
    adverse_event(subject, nurse, start=timezone.localdate(now) - dt.timedelta(days=index * 9),
                  serious=index % 3 == 0)
    screen_fail(site, nurse, ["IN06"] if index % 2 else ["EX07"])


def test_the_number_of_queries_does_not_grow_with_the_subjects(
    client, site, nurse, django_assert_num_queries, django_assert_max_num_queries
):
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    client.force_login(monitor)
    for index in range(3):
        subject_with_data(site, nurse, monitor, index)
    with django_assert_num_queries(DASHBOARD_QUERIES):
        trial_dashboard(monitor)
    with CaptureQueriesContext(connection) as three:
        assert client.get(reverse("dashboard")).status_code == 200

    for index in range(3, 12):
        subject_with_data(site, nurse, monitor, index)
    assert Subject.objects.filter(randomized_at__isnull=False).count() == 12
    with django_assert_num_queries(DASHBOARD_QUERIES):
        trial_dashboard(monitor)
    with django_assert_max_num_queries(len(three.captured_queries)):
        assert client.get(reverse("dashboard")).status_code == 200


def test_the_crf_completion_joins_the_visits_and_subjects_once(trial):
    """The saved forms of every visit-form table are counted in one statement that reads the
    visit and subject tables once, not once per form table: its cost grows with the forms,
    not with the forms times the visits."""
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        data = trial_dashboard(trial.data_manager, now=now)
    statements = [q["sql"] for q in captured.captured_queries if "UNION ALL" in q["sql"]]
    assert len(statements) == 1
    read = re.findall(r'(?:FROM|JOIN) "(\w+)"', statements[0])
    assert read.count(Visit._meta.db_table) == 1
    assert read.count(Subject._meta.db_table) == 1
    for code in VISIT_FORM_CODES:
        assert read.count(CRF_MODELS[code]._meta.db_table) == 1
    assert data.crf_completion["GZ02"].complete >= 2


# --- Charts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("maximum", "ticks"), [
    (0, [0, 1]), (1, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6, 8]), (60, [0, 20, 40, 60]),
    (61, [0, 20, 40, 60, 80]), (240, [0, 50, 100, 150, 200, 250]),
])
def test_axis_ticks_are_round_numbers(maximum, ticks):
    assert charts.nice_ticks(maximum) == ticks


def test_charts_escape_their_labels():
    evil = '<script>alert("x")</script> & "quoted"'
    for svg in (
        charts.bar_chart(chart_id="c1", title=evil, description=evil, labels=[evil],
                         values=[3]),
        charts.stacked_bar_chart(chart_id="c2", title="t", description="d", labels=[evil],
                                 series=[charts.Series(evil, [2])]),
        charts.line_chart(chart_id="c3", title="t", description="d", labels=[evil],
                          series=[charts.Series(evil, [1])], target=5, target_label=evil),
    ):
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "style=" not in svg


def test_a_chart_without_data_says_so():
    svg = charts.stacked_bar_chart(chart_id="c", title="Visits", description="None yet",
                                   labels=["SZ01"], series=[charts.Series("On time", [0])],
                                   empty="No visit is due yet.")
    assert "No visit is due yet." in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_stacked_bars_show_each_total():
    svg = charts.stacked_bar_chart(
        chart_id="c", title="t", description="d", labels=["A", "B"],
        series=[charts.Series("x", [1, 4]), charts.Series("y", [2, 0])])
    assert svg.count("<rect") == 2 + 3  # legend swatches, and three non-empty segments
    assert re.search(r'font-weight="600">3</text>', svg)
    assert re.search(r'font-weight="600">4</text>', svg)
