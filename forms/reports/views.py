"""The trial dashboard page: the numbers of ``forms.reports.dashboard`` drawn by
``forms.reports.charts``, each chart with its caption and a table of the exact numbers.
Monitors see their sites, data managers all sites; nothing on the page is split by arm."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from edc.roles import Action, can
from forms.quality.queries import query_age_band_label
from forms.reports import charts
from forms.reports.dashboard import Dashboard, trial_dashboard

# Colours with a meaning: good outcomes green, problems orange/red, missing grey.
ON_TIME, OUT_OF_WINDOW, OVERDUE, MISSED = "#009E73", "#E69F00", "#D55E00", "#8a94a6"
COMPLETE, IN_PROGRESS, NOT_STARTED = "#009E73", "#E69F00", "#c3c9d4"
SERIOUS, NON_SERIOUS = "#D55E00", "#56B4E9"
AGE_COLOURS = ("#56B4E9", "#0072B2", "#E69F00", "#D55E00")


def month_label(month) -> str:
    return date_format(month, "Y-m")


def _listing(pairs) -> str:
    return "; ".join(f"{label} {value}" for label, value in pairs)


def enrolment_chart(data: Dashboard):
    enrolment = data.enrolment
    series = [charts.Series(code, values) for code, values in enrolment.by_site.items()]
    if len(series) > 1:
        series.append(charts.Series(_("All my sites"), enrolment.total, charts.INK))
    target = _("Target: %(n)s subjects") % {"n": enrolment.target}
    return charts.line_chart(
        chart_id="chart-enrolment",
        title=_("Enrolment against target"),
        description=_("Randomized subjects, cumulative by month and site. %(listing)s. "
                      "Total %(total)s of the trial's target of %(target)s.") % {
            "listing": _listing((code, values[-1]) for code, values in
                                enrolment.by_site.items()),
            "total": enrolment.randomized, "target": enrolment.target},
        labels=[month_label(m) for m in enrolment.months],
        series=series, target=enrolment.target, target_label=target,
        emphasise_last=len(series) > 1,
    )


def screen_failure_chart(data: Dashboard):
    failures = data.screen_failures
    return charts.bar_chart(
        chart_id="chart-screen-failures",
        title=_("Screening failures by criterion not met"),
        description=_("%(n)s screen-failed subjects. Criteria not met: %(listing)s.") % {
            "n": failures.subjects,
            "listing": _listing((c.code, n) for c, n in failures.by_criterion) or _("none")},
        labels=[f"{c.code} {c.text}" for c, _n in failures.by_criterion],
        values=[n for _c, n in failures.by_criterion],
        tooltips=[f"{c.code} {c.text}" for c, _n in failures.by_criterion],
        colour="#0072B2", empty=_("No screening failure."),
    )


def visit_compliance_chart(data: Dashboard):
    rows = data.visit_compliance
    kinds = [(_("On time"), "on_time", ON_TIME), (_("Out of window"), "out_of_window",
                                                     OUT_OF_WINDOW),
             (_("Overdue"), "overdue", OVERDUE), (_("Missed"), "missed", MISSED)]
    series = [charts.Series(label, [getattr(r, attr) for r in rows.values()], colour)
              for label, attr, colour in kinds]
    return charts.stacked_bar_chart(
        chart_id="chart-visits",
        title=_("Visit compliance by site"),
        description=_("Scheduled visits by outcome at each site. %(listing)s.") % {
            "listing": "; ".join(
                f"{code}: " + ", ".join(f"{label} {getattr(r, attr)}" for label, attr, _c in kinds)
                for code, r in rows.items())},
        labels=list(rows), series=series, empty=_("No visit is due yet."),
    )


def open_queries_chart(data: Dashboard):
    rows = data.open_queries
    bands = [query_age_band_label(low, high) for low, high in data.query_age_bands]
    series = [charts.Series(label, [counts[i] for counts in rows.values()], colour)
              for i, (label, colour) in enumerate(zip(bands, AGE_COLOURS, strict=True))]
    return charts.stacked_bar_chart(
        chart_id="chart-queries",
        title=_("Open queries by age and site"),
        description=_("Queries open or answered and not yet closed, by days since raised. "
                      "%(listing)s.") % {
            "listing": "; ".join(f"{code}: " + ", ".join(
                f"{band} {n}" for band, n in zip(bands, counts, strict=True))
                for code, counts in rows.items())},
        labels=list(rows), series=series, empty=_("No open query."),
    )


def crf_completion_chart(data: Dashboard):
    rows = data.crf_completion
    kinds = [(_("Complete"), "complete", COMPLETE), (_("In progress"), "in_progress",
                                                     IN_PROGRESS),
             (_("Not started"), "not_started", NOT_STARTED)]
    series = [charts.Series(label, [getattr(r, attr) for r in rows.values()], colour)
              for label, attr, colour in kinds]
    return charts.stacked_bar_chart(
        chart_id="chart-crfs",
        title=_("CRF completion by site"),
        description=_("Forms expected at visits done, due or overdue, by status. "
                      "%(listing)s.") % {
            "listing": "; ".join(
                f"{code}: " + ", ".join(f"{label} {getattr(r, attr)}" for label, attr, _c in kinds)
                for code, r in rows.items())},
        labels=list(rows), series=series, empty=_("No form is expected yet."),
    )


def adverse_event_chart(data: Dashboard):
    months = data.adverse_events.by_month
    return charts.stacked_bar_chart(
        chart_id="chart-adverse-events",
        title=_("Adverse events by month of onset"),
        description=_("Adverse events by month of onset, serious and not serious. "
                      "%(listing)s.") % {
            "listing": _listing((month_label(m.month), _("%(total)s (%(serious)s serious)") % {
                "total": m.total, "serious": m.serious}) for m in months) or _("none")},
        labels=[month_label(m.month) for m in months],
        series=[charts.Series(_("Not serious"), [m.non_serious for m in months], NON_SERIOUS),
                charts.Series(_("Serious"), [m.serious for m in months], SERIOUS)],
        empty=_("No adverse event recorded."),
    )


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not can(request.user, Action.VIEW_DASHBOARD):
        raise PermissionDenied
    data = trial_dashboard(request.user, now=timezone.now())
    enrolment = data.enrolment
    return render(request, "forms/reports/dashboard.html", {
        "data": data,
        "enrolment_rows": [
            (month_label(month), [values[i] for values in enrolment.by_site.values()],
             enrolment.total[i])
            for i, month in enumerate(enrolment.months)
        ],
        "age_bands": [query_age_band_label(low, high) for low, high in data.query_age_bands],
        "open_query_rows": [(code, counts, sum(counts))
                            for code, counts in data.open_queries.items()],
        "open_query_total": sum(sum(counts) for counts in data.open_queries.values()),
        "charts": {
            "enrolment": enrolment_chart(data),
            "screen_failures": screen_failure_chart(data),
            "visits": visit_compliance_chart(data),
            "queries": open_queries_chart(data),
            "crfs": crf_completion_chart(data),
            "adverse_events": adverse_event_chart(data),
        },
    })
