"""The trial dashboard's numbers: enrolment against target, screening failures, visit
compliance, open queries by age, CRF completion and adverse events, for the user's sites.

Blinded by construction: nothing here reads the randomization list, where the arm lives, and no
number is split by anything derived from it. Every figure is aggregated in the database, in a
number of queries that does not depend on the number of subjects (pinned by a query-count
test). Visit statuses are ``visits.schedule.visit_status`` written in SQL
(``forms.selectors.visit_status_expression``), so the dashboard counts exactly what the matrix
and the reminders show, and its rows are a handful per site, not one per visit.
"""

import datetime as dt
from dataclasses import dataclass, field

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Count,
    F,
    IntegerField,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, TruncMonth
from django.utils import timezone

from edc import protocol
from edc.models import Site, User
from edc.roles import scope_to_user
from forms.models import CRF_MODELS, AdverseEvent, CRFStatus
from forms.quality.queries import ACTIVE_STATUSES, QUERY_AGE_BANDS, Query, query_age_band_counts
from forms.selectors import (
    VISIT_FORM_CODES,
    expected_forms,
    today_by_site,
    visit_status_expression,
)
from visits import schedule
from visits.models import Subject, SubjectStatus, Visit

# Visits whose forms are expected: the visit took place, or its window is open or has passed.
_FORMS_EXPECTED = frozenset(
    {schedule.VisitStatus.DONE, schedule.VisitStatus.DUE, schedule.VisitStatus.OVERDUE}
)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month from ``first``'s to ``last``'s, inclusive."""
    months = []
    month = month_start(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@dataclass(frozen=True)
class Enrolment:
    """Randomized subjects, cumulative at the end of each month, per site and in all."""

    months: list[dt.date]
    by_site: dict[str, list[int]]
    total: list[int]
    target: int

    @property
    def randomized(self) -> int:
        return self.total[-1] if self.total else 0


@dataclass(frozen=True)
class ScreenFailures:
    """Screen-failed subjects, and how many failed each criterion (a subject may fail
    several)."""

    subjects: int
    by_criterion: list[tuple[protocol.Criterion, int]]


@dataclass
class VisitCompliance:
    """Scheduled visits of one site by outcome; visits not yet due are not counted."""

    on_time: int = 0
    out_of_window: int = 0
    overdue: int = 0
    missed: int = 0

    @property
    def total(self) -> int:
        return self.on_time + self.out_of_window + self.overdue + self.missed


@dataclass
class CRFCompletion:
    """Forms expected at the visits that took place or are due, by status, at one site."""

    expected: int = 0
    complete: int = 0
    in_progress: int = 0

    @property
    def not_started(self) -> int:
        return max(self.expected - self.complete - self.in_progress, 0)


@dataclass(frozen=True)
class AdverseEventMonth:
    month: dt.date
    total: int
    serious: int

    @property
    def non_serious(self) -> int:
        return self.total - self.serious


@dataclass(frozen=True)
class AdverseEvents:
    by_month: list[AdverseEventMonth]
    # Recorded without an onset date yet.
    undated: int = 0
    undated_serious: int = 0

    @property
    def undated_non_serious(self) -> int:
        return self.undated - self.undated_serious

    @property
    def total(self) -> int:
        return sum(m.total for m in self.by_month) + self.undated

    @property
    def serious(self) -> int:
        return sum(m.serious for m in self.by_month) + self.undated_serious


@dataclass
class Dashboard:
    sites: list[Site]
    enrolment: Enrolment
    screen_failures: ScreenFailures
    visit_compliance: dict[str, VisitCompliance]
    open_queries: dict[str, list[int]]
    crf_completion: dict[str, CRFCompletion]
    adverse_events: AdverseEvents
    query_age_bands: tuple[tuple[int, int | None], ...] = field(default=QUERY_AGE_BANDS)


def enrolment(user: User, sites: list[Site], *, now: dt.datetime) -> Enrolment:
    """One query: randomizations per site and month (months in the current time zone). The
    months run from the one before the first randomization (everyone at zero) to this one."""
    rows = (
        scope_to_user(Subject.objects.filter(randomized_at__isnull=False), user)
        .annotate(month=TruncMonth("randomized_at"))
        .values("site_id", "month")
        .annotate(n=Count("pk"))
        .order_by()
    )
    per_month: dict[tuple[int, dt.date], int] = {}
    for row in rows:
        per_month[(row["site_id"], _as_date(row["month"]))] = row["n"]
    this_month = month_start(timezone.localdate(now))
    if per_month:
        first = min(month for _site, month in per_month)
        start = month_start(first - dt.timedelta(days=1))
    else:
        start = this_month
    months = months_between(start, this_month)
    by_site: dict[str, list[int]] = {}
    for site in sites:
        running, cumulative = 0, []
        for month in months:
            running += per_month.get((site.pk, month), 0)
            cumulative.append(running)
        by_site[site.code] = cumulative
    total = [sum(values[i] for values in by_site.values()) for i in range(len(months))]
    return Enrolment(months=months, by_site=by_site, total=total,
                     target=protocol.TARGET_ENROLMENT)


def screen_failures(user: User) -> ScreenFailures:
    """One query. The criteria are a JSON list of codes; each is counted by matching its quoted
    code in the list's text, which works alike on SQLite and PostgreSQL."""
    failed = scope_to_user(
        Subject.objects.filter(status=SubjectStatus.SCREEN_FAILED), user
    ).annotate(criteria_text=Cast("screen_failure_criteria", TextField()))
    counts = failed.aggregate(
        subjects=Count("pk"),
        **{
            f"c_{criterion.code}": Count(
                "pk", filter=Q(criteria_text__contains=f'"{criterion.code}"')
            )
            for criterion in protocol.ELIGIBILITY_CRITERIA
        },
    )
    by_criterion = [
        (criterion, counts[f"c_{criterion.code}"])
        for criterion in protocol.ELIGIBILITY_CRITERIA
        if counts[f"c_{criterion.code}"]
    ]
    by_criterion.sort(key=lambda item: -item[1])
    return ScreenFailures(subjects=counts["subjects"], by_criterion=by_criterion)


def _expected_at(visit_code: str) -> tuple[tuple[str, str], ...]:
    """(CRF code, slot) of every record the casebook expects at a visit with this code."""
    return expected_forms(Visit(code=visit_code))


def _visit_groups(user: User, today: dict[int, dt.date]):
    """One query: visits counted by site, code and status (on each site's date), done ones
    split by whether their date fell inside the window."""
    return (
        scope_to_user(Visit.objects.all(), user, site_field="subject__site")
        .annotate(
            visit_status=visit_status_expression(today),
            inside=Case(When(actual_date__gte=F("window_start"),
                             actual_date__lte=F("window_end"), then=Value(True)),
                        default=Value(False), output_field=BooleanField()),
        )
        .values("subject__site_id", "code", "visit_status", "inside")
        .annotate(n=Count("pk"))
        .order_by()
    )


def visit_compliance_and_expected_forms(
    user: User, sites: list[Site], *, now: dt.datetime
) -> tuple[dict[str, VisitCompliance], dict[str, CRFCompletion]]:
    """Scheduled visits by outcome at each site: on time (visit date inside the window), out
    of window (outside it: VIS-001), overdue (window passed, no date) and missed. And the
    number of forms expected at each site: those of the visits done, due or overdue."""
    today = today_by_site(sites, now)
    code_by_pk = {site.pk: site.code for site in sites}
    compliance = {site.code: VisitCompliance() for site in sites}
    completion = {site.code: CRFCompletion() for site in sites}
    expected_at: dict[str, tuple] = {}
    for row in _visit_groups(user, today):
        site_code = code_by_pk.get(row["subject__site_id"])
        if site_code is None:
            continue
        status = row["visit_status"]
        n = row["n"]
        if status in _FORMS_EXPECTED:
            code = row["code"]
            expected = expected_at.setdefault(code, _expected_at(code))
            completion[site_code].expected += n * len(expected)
            if any(form == "consent" for form, _slot in expected):
                # Consent lives on the subject; a screening visit exists only once it is signed.
                completion[site_code].complete += n
        if row["code"] == protocol.UNSCHEDULED_VISIT_CODE:
            continue
        counts = compliance[site_code]
        if status == schedule.VisitStatus.DONE:
            if row["inside"]:
                counts.on_time += n
            else:
                counts.out_of_window += n
        elif status == schedule.VisitStatus.OVERDUE:
            counts.overdue += n
        elif status == schedule.VisitStatus.MISSED:
            counts.missed += n
    return compliance, completion


def _visits_with_status(user: User, today: dict[int, dt.date]):
    """The user's visits: their id, code, site and status on the site's date. Not filtered by
    status in SQL: the planner cannot estimate how many visits a status filter keeps, and
    grouping by the status instead lets it count the joined forms with a hash."""
    return (
        scope_to_user(Visit.objects.all(), user, site_field="subject__site")
        .annotate(visit_status=visit_status_expression(today),
                  dashboard_site=F("subject__site_id"))
        .values("id", "code", "dashboard_site", "visit_status")
        .order_by()
    )


def _visit_forms():
    """Every visit form, narrow: its visit id, status, CRF (its index in ``VISIT_FORM_CODES``,
    a number being quicker to count by than a text) and slot, one ``UNION ALL`` over the
    visit-form tables, joining nothing."""
    parts = []
    for index, crf_code in enumerate(VISIT_FORM_CODES):
        slot_item = CRF_MODELS[crf_code].slot_item
        parts.append(
            CRF_MODELS[crf_code].objects.filter(visit__isnull=False)
            .annotate(crf_index=Value(index, output_field=IntegerField()),
                      crf_slot=F(slot_item) if slot_item else Value(""))
            .values_list("visit_id", "status", "crf_index", "crf_slot")
            .order_by()
        )
    return parts[0].union(*parts[1:], all=True)


def _fence(connection) -> str:
    """Keeps PostgreSQL from pulling the visits subquery up into the join (``OFFSET 0``): the
    visits are then joined to their subjects and given their status once per visit, and the
    forms are counted against that, instead of the subject join and the status expression
    being evaluated once per form (a trial has about five forms per visit). Measured at 600
    subjects: a quarter less time for this statement (``benchmarks``, issue 15)."""
    return " OFFSET 0" if connection.vendor == "postgresql" else ""


def crf_completion(
    user: User, sites: list[Site], completion: dict[str, CRFCompletion], *, now: dt.datetime
) -> dict[str, CRFCompletion]:
    """Adds the saved forms to ``completion`` (expected counts from
    :func:`visit_compliance_and_expected_forms`), in one statement: the narrow rows of every
    visit-form table (``UNION ALL``) joined once to the user's visits and counted by site,
    visit code, visit status, CRF and time point (complete ones beside all). Only the visits
    whose forms are expected (done, due or overdue) count, and only the forms the protocol
    expects there.

    Both halves are compiled by the ORM from the models, so the visit status is that of
    :func:`visit_status_expression` and the site scope that of ``scope_to_user``; only the join
    around them is written here, since the ORM cannot join a ``UNION`` as a table. A form is
    counted at its visit's subject's site: the service layer files every form under its
    visit's subject."""
    today = today_by_site(sites, now)
    code_by_pk = {site.pk: site.code for site in sites}
    visits = _visits_with_status(user, today)
    forms = _visit_forms()
    try:
        visits_sql, visits_params = visits.query.sql_with_params()
    except EmptyResultSet:
        return completion  # a user without sites: no visit, no form
    forms_sql, forms_params = forms.query.sql_with_params()
    connection = connections[visits.db]
    # Both halves are SQL compiled by the ORM, every value in them a parameter.
    # Complete forms are counted beside all forms of a group, rather than grouping by the form
    # status too: one key fewer to hash for every form.
    statement = (
        "SELECT v.dashboard_site, v.code, v.visit_status, f.crf_index, f.crf_slot,"  # noqa: S608
        " SUM(CASE WHEN f.status = %s THEN 1 ELSE 0 END), COUNT(*)"
        f" FROM ({visits_sql}{_fence(connection)}) v"
        f" INNER JOIN ({forms_sql}) f ON f.visit_id = v.id"
        " GROUP BY v.dashboard_site, v.code, v.visit_status, f.crf_index, f.crf_slot"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, (CRFStatus.COMPLETE.value, *visits_params, *forms_params))
        rows = cursor.fetchall()
    expected_at: dict[str, tuple] = {}
    for site_pk, code, visit_status, crf_index, crf_slot, complete, n in rows:
        site_code = code_by_pk.get(site_pk)
        if site_code is None or visit_status not in _FORMS_EXPECTED:
            continue
        expected = expected_at.setdefault(code, _expected_at(code))
        if (VISIT_FORM_CODES[crf_index], crf_slot) not in expected:
            continue
        completion[site_code].complete += complete
        completion[site_code].in_progress += n - complete
    return completion


def open_queries(user: User, sites: list[Site], *, now: dt.datetime) -> dict[str, list[int]]:
    """One query: queries in progress (open or answered) per site, in each age band."""
    bands = query_age_band_counts(now)
    rows = (
        scope_to_user(Query.objects.filter(status__in=ACTIVE_STATUSES), user,
                      site_field="subject__site")
        .values("subject__site_id")
        .annotate(**bands)
        .order_by()
    )
    by_pk = {row["subject__site_id"]: row for row in rows}
    return {
        site.code: [by_pk.get(site.pk, {}).get(name, 0) for name in bands] for site in sites
    }


def adverse_events(user: User, *, now: dt.datetime) -> AdverseEvents:
    """One query: recorded adverse events (complete or not) by month of onset, and how many of
    them are serious; months without events are shown as zero."""
    rows = (
        scope_to_user(AdverseEvent.objects.all(), user, site_field="subject__site")
        .annotate(month=TruncMonth("start_date"))
        .values("month")
        .annotate(total=Count("pk"), serious=Count("pk", filter=Q(is_serious=True)))
        .order_by()
    )
    per_month, undated, undated_serious = {}, 0, 0
    for row in rows:
        if row["month"] is None:
            undated, undated_serious = row["total"], row["serious"]
        else:
            per_month[_as_date(row["month"])] = (row["total"], row["serious"])
    months = (months_between(min(per_month), max(max(per_month), timezone.localdate(now)))
              if per_month else [])
    return AdverseEvents(
        by_month=[AdverseEventMonth(month, *per_month.get(month, (0, 0))) for month in months],
        undated=undated,
        undated_serious=undated_serious,
    )


def trial_dashboard(user: User, *, now: dt.datetime | None = None) -> Dashboard:
    """Every number of the dashboard, for the sites ``user`` works at (the caller checks
    ``Action.VIEW_DASHBOARD``)."""
    now = now or timezone.now()
    sites = list(scope_to_user(Site.objects.order_by("code"), user, site_field="pk"))
    compliance, completion = visit_compliance_and_expected_forms(user, sites, now=now)
    return Dashboard(
        sites=sites,
        enrolment=enrolment(user, sites, now=now),
        screen_failures=screen_failures(user),
        visit_compliance=compliance,
        open_queries=open_queries(user, sites, now=now),
        crf_completion=crf_completion(user, sites, completion, now=now),
        adverse_events=adverse_events(user, now=now),
    )
