"""Queries and source data verification: raising, answering, re-querying, closing and
cancelling queries, the query list, and marking forms verified."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds, protocol
from edc.models import Site
from edc.roles import Action, can, scope_to_user
from edc.web import next_url
from forms.models import CRF_MODELS
from forms.quality import queries as query_services
from forms.quality import sdv
from forms.quality.checks import ALL_CHECKS, VISIT
from forms.quality.queries import (
    QUERY_AGE_BANDS,
    QueryStatus,
    query_age_band_counts,
    query_age_band_label,
)
from visits.models import Visit
from visits.selectors import subjects_for_user

ACTIONS = {
    "answer": query_services.query_answer,
    "requery": query_services.query_requery,
    "close": query_services.query_close,
    "cancel": query_services.query_cancel,
}


def _target(subject, kind: str, pk: int):
    if kind == "visit":
        return get_object_or_404(Visit, pk=pk, subject=subject)
    model = CRF_MODELS.get(kind)
    if model is None:
        raise Http404
    return get_object_or_404(model, pk=pk, subject=subject)


@login_required
def query_new(request: HttpRequest, subject_pk: int, kind: str, pk: int) -> HttpResponse:
    if request.method != "POST":
        raise Http404
    subject = get_object_or_404(subjects_for_user(request.user), pk=subject_pk)
    target = _target(subject, kind, pk)
    try:
        query_services.query_raise(target=target, field_name=request.POST.get("field", ""),
                                   text=request.POST.get("text", ""), user=request.user)
    except PermissionDenied:
        raise
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Query raised."))
    return redirect(next_url(request, subject_url(subject)))


def subject_url(subject) -> str:
    from django.urls import reverse

    return reverse("forms:casebook", args=[subject.pk])


@login_required
def query_act(request: HttpRequest, query_pk: int, action: str) -> HttpResponse:
    if request.method != "POST" or action not in ACTIONS:
        raise Http404
    query = get_object_or_404(query_services.queries_for_user(request.user), pk=query_pk)
    text = request.POST.get("text", "")
    try:
        if action == "close":
            ACTIONS[action](query=query, user=request.user, text=text)
        else:
            ACTIONS[action](query=query, text=text, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, {
            "answer": _("Answer sent."), "requery": _("Query re-opened."),
            "close": _("Query closed."), "cancel": _("Query cancelled."),
        }[action])
    return redirect(next_url(request, subject_url(query.subject)))


QUERY_PAGE_SIZE = 50


def _status_counts(queries) -> list[tuple[str, int]]:
    """One query: how many queries are in each status."""
    counts = dict(queries.order_by().values_list("status").annotate(n=Count("pk")))
    return [(label, counts.get(value, 0)) for value, label in QueryStatus.choices]


def _ageing(queries, now) -> list[tuple[str, int]]:
    """One query: queries in progress by whole days since raised
    (``forms.quality.queries.query_age_days``), in the age bands."""
    counts = queries.filter(status__in=[QueryStatus.OPEN, QueryStatus.ANSWERED]).aggregate(
        **query_age_band_counts(now))
    return [(query_age_band_label(low, high), counts[f"band_{index}"])
            for index, (low, high) in enumerate(QUERY_AGE_BANDS)]


def page_queries(page_pks) -> list:
    """The queries of one page (``page_pks``: the page's slice of the filtered, ordered ids),
    with their subject, site, visit and people, in one statement: the page is chosen on the
    query table alone and only its rows are joined, instead of joining every query that
    matches and then sorting to keep 50."""
    return list(query_services.Query.objects.filter(pk__in=page_pks)
                .select_related("subject__site", "visit", "content_type", "raised_by",
                                "closed_by")
                .order_by("raised_at", "pk"))


@login_required
def query_list(request: HttpRequest) -> HttpResponse:
    """The queries at the user's sites, 50 a page, oldest first; the counts by status and age
    cover every query, whatever the filters."""
    if not can(request.user, Action.VIEW_SUBJECTS):
        raise PermissionDenied
    now = timezone.now()
    all_queries = query_services.queries_for_user(request.user)
    site = bounds.text_param(request.GET.get("site"))
    status = bounds.text_param(request.GET.get("status", "open"))
    form = bounds.text_param(request.GET.get("form"))
    check = bounds.text_param(request.GET.get("check"))
    min_age = bounds.int_param(request.GET.get("min_age"), maximum=bounds.MAX_DAYS)
    shown = all_queries
    if site:
        shown = shown.filter(subject__site__code=site)
    if status == "open":
        shown = shown.filter(status__in=[QueryStatus.OPEN, QueryStatus.ANSWERED])
    elif status in QueryStatus.values:
        shown = shown.filter(status=status)
    if form:
        shown = shown.filter(crf_code=form)
    if check == "manual":
        shown = shown.filter(check_code="")
    elif check:
        shown = shown.filter(check_code=check)
    if min_age is not None:
        shown = shown.filter(raised_at__lte=now - timezone.timedelta(days=min_age))
    page = Paginator(shown.order_by("raised_at", "pk").values_list("pk", flat=True),
                     QUERY_PAGE_SIZE).get_page(bounds.int_param(request.GET.get("page"), minimum=1))
    rows = [(q, query_services.query_age_days(q, now)) for q in page_queries(page.object_list)]
    return render(request, "forms/quality/query_list.html", {
        "rows": rows,
        "page": page,
        "counts": _status_counts(all_queries),
        "ageing": _ageing(all_queries, now),
        "sites": scope_to_user(Site.objects.all(), request.user, site_field="pk"),
        "forms_list": [(c.code, c.label) for c in protocol.CRFS if c.code in CRF_MODELS],
        "checks": [c.code for c in ALL_CHECKS],
        "statuses": QueryStatus.choices,
        "filters": {"site": site, "status": status, "form": form, "check": check,
                    "min_age": "" if min_age is None else min_age},
    })


@login_required
def crf_verify(request: HttpRequest, subject_pk: int, crf_code: str, pk: int) -> HttpResponse:
    if request.method != "POST":
        raise Http404
    subject = get_object_or_404(subjects_for_user(request.user), pk=subject_pk)
    crf = _target(subject, crf_code, pk)
    field = request.POST.get("field") or None
    try:
        sdv.crf_verify(crf=crf, user=request.user, fields=[field] if field else None)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Source data verified."))
    return redirect(next_url(request, subject_url(subject)))


@login_required
def sdv_progress(request: HttpRequest) -> HttpResponse:
    if not can(request.user, Action.VIEW_SUBJECTS):
        raise PermissionDenied
    return render(request, "forms/quality/sdv_progress.html", {
        "by_site": sdv.sdv_progress_by_site(request.user),
    })


@login_required
def edit_checks(request: HttpRequest) -> HttpResponse:
    """The edit-check specification, generated from the check library (page or CSV)."""
    rows = [{
        "code": check.code,
        "form": (_("Visit") if check.form == VISIT else _("Every form") if check.form == "*"
                 else protocol.crf(check.form).label),
        "fields": ", ".join(check.fields) or str(check.description),
        "severity": check.severity,
        "message": check.message,
    } for check in ALL_CHECKS]
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="edit-checks.csv"'
        writer = csv.writer(response, lineterminator="\n")
        writer.writerow(["code", "form", "fields", "severity", "message"])
        for row in rows:
            writer.writerow([str(row[key]) for key in
                             ("code", "form", "fields", "severity", "message")])
        return response
    return render(request, "forms/quality/edit_checks.html", {"rows": rows})
