"""Data entry, the subject casebook, the site matrix, eligibility and randomization pages.

Views parse input and render; every write goes through ``forms.entry.services``.
"""

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MinValueValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edc import bounds, protocol
from edc.roles import Action, can
from edc.web import apply_errors
from forms.entry import services
from forms.entry.crf_forms import crf_form_class, initial_for
from forms.models import CRF_MODELS
from forms.quality.queries import queries_for_target
from forms.quality.sdv import SDVProgress
from forms.review.locks import active_lock
from forms.selectors import (
    LOG_FORM_CODES,
    MatrixRow,
    casebook_rows,
    expected_crfs,
    expected_forms,
    log_entries,
    site_matrix,
    slot_label,
    subject_forms,
)
from visits import schedule
from visits.models import SubjectStatus
from visits.schedule import VisitStatus
from visits.selectors import subject_for_page


def query_context(user, subject, target, kind: str) -> dict:
    """The queries on each item of a saved record, and what this user may do with them."""
    field_queries: dict[str, list] = {}
    if target.pk:
        for query in (queries_for_target(target).select_related("raised_by")
                      .prefetch_related("messages__author").order_by("raised_at")):
            field_queries.setdefault(query.field_name, []).append(query)
    return {
        "field_queries": field_queries,
        "open_query_count": sum(1 for qs in field_queries.values() for q in qs
                                if q.status in ("open", "answered")),
        "can_raise": can(user, Action.RAISE_QUERY, subject.site),
        "can_answer": can(user, Action.ANSWER_QUERY, subject.site),
        "can_close": can(user, Action.CLOSE_QUERY, subject.site),
        "can_verify": can(user, Action.VERIFY_SOURCE, subject.site),
        "target_kind": kind, "target_pk": target.pk,
        "crf_complete": getattr(target, "status", "") == "complete",
        "verified_fields": getattr(target, "verified_fields", None) or {},
        "item_names": (type(target).item_names() if hasattr(type(target), "item_names")
                       else ["actual_date"]),
    }


def study_days(crf) -> dict[str, int]:
    """The study day of every saved date of a CRF (derived, never typed)."""
    day1 = crf.subject.day1
    if day1 is None or not crf.pk:
        return {}
    days = {}
    for name in crf.entry_items():
        value = getattr(crf, name)
        if isinstance(value, dt.datetime):
            value = schedule.local_date(value, crf.subject.site.zone)
        if isinstance(value, dt.date):
            days[name] = schedule.study_day(day1, value)
    return days


def _visit_of(subject, visit_pk: int):
    """The subject's visit ``visit_pk`` (404 for another's), from the visits that came with
    the subject (``subject_for_page``)."""
    visit = next((v for v in subject.visits.all() if v.pk == visit_pk), None)
    if visit is None:
        raise Http404
    return visit


@login_required
def casebook(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    logs = log_entries(subject)
    forms = subject_forms(subject)
    return render(request, "forms/entry/casebook.html", {
        "subject": subject,
        "visit_rows": casebook_rows(subject, forms=forms),
        "log_forms": [(code, protocol.crf(code).label, logs[code]) for code in LOG_FORM_CODES],
        "can_enter": can(request.user, Action.ENTER_DATA, subject.site),
        "can_randomize": can(request.user, Action.RANDOMIZE, subject.site)
        and subject.status == SubjectStatus.SCREENING and subject.has_consented,
        "can_see_identity": can(request.user, Action.VIEW_IDENTIFIERS, subject.site),
        "can_unblind": can(request.user, Action.EMERGENCY_UNBLIND, subject.site)
        and subject.randomization_number is not None,
        "kits": list(subject.kits.all()),
        "sdv": SDVProgress(forms.complete, forms.verified, forms.changed),
        "signatures": list(subject.signatures.select_related("visit")),
        "can_sign": can(request.user, Action.SIGN_CASEBOOK, subject.site),
        "can_lock": can(request.user, Action.LOCK_DATA, subject.site),
        "subject_lock": active_lock(subject=subject),
        "open_queries": subject.queries.filter(status__in=("open", "answered")).count(),
    })


@login_required
def crf_edit(request: HttpRequest, subject_pk: int, crf_code: str,
             visit_pk: int | None = None, pk: int | None = None,
             slot: str | None = None) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    model = CRF_MODELS.get(crf_code)
    if model is None or crf_code == "eligibility":
        raise Http404
    is_log = protocol.crf(crf_code).is_log
    visit = None
    if not is_log:
        if visit_pk is None:
            raise Http404
        visit = _visit_of(subject, visit_pk)
        if crf_code not in expected_crfs(visit):
            raise Http404
        if model.slot_item:
            # One record per visit and time point (PK/PD): the address names the time point.
            slots = [s for code, s in expected_forms(visit) if code == crf_code]
            if slot is None:
                # The form's address without a time point (a query's link): the time point
                # of the record named by ``record``, else the visit's first.
                record = bounds.id_param(request.GET.get("record"))
                found = (model.objects.filter(subject=subject, visit=visit, pk=record)
                         .values_list(model.slot_item, flat=True).first()
                         if record is not None else None)
                return redirect("forms:visit_crf_slot", subject_pk=subject.pk,
                                visit_pk=visit.pk, crf_code=crf_code,
                                slot=found if found in slots else slots[0])
            if slot not in slots:
                raise Http404
        elif slot is not None:
            raise Http404
    if pk is not None and not is_log:
        raise Http404
    try:
        # A save locks the row it read (this request is one transaction): crf_save needs
        # no second read.
        crf = services.crf_instance(model=model, subject=subject, visit=visit, pk=pk,
                                    slot=slot or "", for_update=request.method == "POST")
    except model.DoesNotExist:
        # A log entry of another subject, or none at all.
        raise Http404 from None
    form_class = crf_form_class(model)
    can_enter = can(request.user, Action.ENTER_DATA, subject.site)
    conflict = None
    if request.method == "POST":
        if not can_enter:
            raise PermissionDenied
        form = form_class(request.POST, subject=subject)
        if form.is_valid():
            try:
                saved = services.crf_save(
                    crf=crf,
                    values=form.item_values(),
                    user=request.user,
                    expected_version=form.cleaned_data["version"],
                    complete=request.POST.get("action") == "complete",
                    missing_items=form.missing_values(),
                    not_done_reason=form.cleaned_data["not_done_reason"],
                    reason=form.cleaned_data["reason"],
                    locked=True,
                )
            except services.EditConflict as clash:
                conflict = clash.current
                data = request.POST.copy()
                data["version"] = conflict.version
                form = form_class(data, subject=subject)
                form.is_valid()
                form.add_error(None, _(
                    "Someone else saved this form while you were editing it. Your input is "
                    "still below; the saved values that differ are shown beside it. Review, "
                    "then save again to keep your version."))
            except ValidationError as error:
                apply_errors(form, error)
            else:
                messages.success(request, _("%(form)s saved (%(status)s).") % {
                    "form": protocol.crf(crf_code).label,
                    "status": saved.get_status_display()})
                if is_log:
                    return redirect("forms:casebook", subject_pk=subject.pk)
                return redirect(request.path)
        status = 409 if conflict is not None else 400
    else:
        form = form_class(initial=initial_for(crf), subject=subject)
        status = 200
    form.study_days = study_days(crf)
    differing = {}
    if conflict is not None:
        for name in model.entry_items():
            saved_value = getattr(conflict, name)
            if form.cleaned_data.get(name) != saved_value:
                differing[name] = saved_value
    return render(request, "forms/entry/crf_form.html", {
        "subject": subject, "visit": visit, "crf": crf, "form": form,
        "crf_label": protocol.crf(crf_code).label, "crf_code": crf_code,
        "slot_label": slot_label(crf_code, slot or ""),
        "can_enter": can_enter, "conflict": conflict, "differing": differing,
        "derived": [(n, model._meta.get_field(n).verbose_name, _derived_shown(crf, n),
                     model.units.get(n, "")) for n in model.derived_items
                    if n not in ("ranges_used", "derived", "contradictions")],
        **query_context(request.user, subject, crf, crf_code),
        "lock": active_lock(subject=subject, visit=visit, record=crf) if crf.pk else None,
        "can_lock": can(request.user, Action.LOCK_DATA, subject.site),
    }, status=status)


def matrix_cells(row: MatrixRow, labels: dict[str, str]) -> SafeString:
    """A matrix row's visit cells as HTML, built in one pass instead of template work per
    cell (a page has 50 rows × every scheduled visit)."""
    return format_html_join("", '<td class="cell visit-{}">{}</td>', (
        (cell.status or "none",
         format_html('<a href="{}#visit-{}" title="{}">{}<br><small>{}/{}</small></a>',
                     row.casebook_url, cell.visit.pk, labels[cell.status],
                     labels[cell.status], cell.forms_complete, cell.forms_expected)
         if cell.visit else "")
        for cell in row.cells))


@login_required
def matrix(request: HttpRequest) -> HttpResponse:
    """Subjects × scheduled visits, one page at a time; any subject is found by its subject ID
    or screening number (``q``)."""
    if not can(request.user, Action.VIEW_SUBJECTS):
        raise PermissionDenied
    site_code = bounds.text_param(request.GET.get("site"))
    visit_status = bounds.text_param(request.GET.get("status"))
    if visit_status and visit_status not in VisitStatus.__members__.values():
        visit_status = ""
    search = bounds.text_param(request.GET.get("q"))
    shown = site_matrix(request.user, site_code=site_code, visit_status=visit_status,
                        search=search, page=bounds.int_param(request.GET.get("page"), minimum=1))
    labels = {status: str(status.label) for status in VisitStatus}
    return render(request, "forms/entry/matrix.html", {
        "rows": shown.rows,
        "table": [(row, matrix_cells(row, labels)) for row in shown.rows],
        "page": shown.page,
        "visits": protocol.VISITS,
        "sites": shown.sites,
        "site_code": site_code, "visit_status": visit_status, "search": search,
        "statuses": list(VisitStatus),
    })


DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class VisitDateForm(forms.Form):
    actual_date = forms.DateField(label=gettext_lazy("Visit date"), widget=DATE_WIDGET,
                                  required=False,
                                  validators=[MinValueValidator(bounds.TRIAL_START)])
    missed_reason = forms.CharField(
        label=gettext_lazy("Or: the visit did not take place, because"), required=False,
        max_length=bounds.REASON, widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(label=gettext_lazy("Reason for changing a recorded date"),
                             required=False, max_length=bounds.REASON)

    def clean(self):
        data = super().clean()
        if not data.get("actual_date") and not (data.get("missed_reason") or "").strip():
            raise forms.ValidationError(
                _("Enter the visit date, or why the visit did not take place."))
        if data.get("actual_date") and (data.get("missed_reason") or "").strip():
            raise forms.ValidationError(
                _("A visit either took place (date) or was missed (reason), not both."))
        return data


@login_required
def visit_update(request: HttpRequest, subject_pk: int, visit_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    can_enter = can(request.user, Action.ENTER_DATA, subject.site)
    if request.method == "POST" and not can_enter:
        raise PermissionDenied
    visit = _visit_of(subject, visit_pk)
    form = VisitDateForm(request.POST or None, initial={
        "actual_date": visit.actual_date, "missed_reason": visit.missed_reason})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if data["actual_date"]:
                services.visit_record(visit=visit, actual_date=data["actual_date"],
                                      user=request.user, reason=data["reason"])
            else:
                services.visit_missed(visit=visit, reason=data["missed_reason"],
                                      user=request.user)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, _("%(visit)s updated.") % {"visit": visit.label})
            return redirect("forms:casebook", subject_pk=subject.pk)
    return render(request, "forms/entry/visit_update.html", {
        "subject": subject, "visit": visit, "form": form, "can_enter": can_enter,
        **query_context(request.user, subject, visit, "visit"),
    }, status=400 if form.errors else 200)


def _derived_shown(crf, name: str):
    """A computed item as the page shows it: a coded one (a lab flag) by its label."""
    value = getattr(crf, name)
    if crf._meta.get_field(name).choices and value not in (None, ""):
        return getattr(crf, f"get_{name}_display")()
    return value
