"""Signing casebooks and locking data."""

import hashlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds
from edc.audit import audit_event
from edc.models import AuditAction, Site
from edc.roles import Action, can, scope_to_user
from edc.web import next_url
from forms.models import CRF_MODELS
from forms.models.signoff import Lock, LockScope
from forms.review import locks, signatures
from forms.review.audit import audit_rows
from forms.review.casebook_pdf import casebook_pdf as render_casebook_pdf
from visits.selectors import subject_for_page, subjects_for_user


@login_required
@transaction.non_atomic_requests
def sign(request: HttpRequest, subject_pk: int, visit_pk: int | None = None) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.SIGN_CASEBOOK, subject.site):
        raise PermissionDenied
    visit = get_object_or_404(subject.visits, pk=visit_pk) if visit_pk else None
    error = None
    if request.method == "POST":
        try:
            signatures.casebook_sign(subject=subject, visit=visit, user=request.user,
                                     password=request.POST.get("password", ""),
                                     request=request)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, _("Signed."))
            return redirect("forms:casebook", subject_pk=subject.pk)
    return render(request, "forms/review/sign.html", {
        "subject": subject, "visit": visit, "meaning": signatures.MEANING,
        "now": timezone.now(), "incomplete": signatures.incomplete_forms(subject, visit),
        "error": error,
    }, status=400 if error else 200)


def _lock_target(request: HttpRequest, scope: str):
    """The object to lock, from ids parsed only after the permission check; an id that is not
    one (``"abc"``, ``"²"``, too large) names nothing: 404."""
    if scope == LockScope.TRIAL:
        return None
    pk = bounds.id_param(request.POST.get("pk"))
    if scope == LockScope.SITE:
        return get_object_or_404(scope_to_user(Site.objects.all(), request.user,
                                               site_field="pk"), pk=pk)
    subject = get_object_or_404(subjects_for_user(request.user),
                                pk=bounds.id_param(request.POST.get("subject")))
    if scope == LockScope.SUBJECT:
        return subject
    if scope == LockScope.VISIT:
        return get_object_or_404(subject.visits, pk=pk)
    model = CRF_MODELS.get(request.POST.get("crf_code", ""))
    if model is None:
        raise Http404
    return get_object_or_404(model, pk=pk, subject=subject)


@login_required
def lock(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        raise Http404
    if not can(request.user, Action.LOCK_DATA):
        raise PermissionDenied
    scope = request.POST.get("scope", "")
    if scope not in LockScope.values:
        raise Http404
    try:
        locks.lock_create(user=request.user, scope=scope,
                          target=_lock_target(request, scope),
                          reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Locked."))
    return redirect(next_url(request, reverse("forms:locks")))


@login_required
def locks_page(request: HttpRequest) -> HttpResponse:
    if not can(request.user, Action.LOCK_DATA):
        raise PermissionDenied
    errors = None
    if request.method == "POST":
        lock_row = get_object_or_404(Lock, pk=bounds.id_param(request.POST.get("lock")))
        try:
            locks.lock_release(lock=lock_row, user=request.user,
                               reason=request.POST.get("reason", ""))
        except ValidationError as exc:
            errors = " ".join(exc.messages)
        else:
            messages.success(request, _("Unlocked."))
            return redirect("forms:locks")
    return render(request, "forms/review/locks.html", {
        "active": Lock.objects.filter(unlocked_at__isnull=True).select_related(
            "site", "subject", "visit", "locked_by"),
        "released": Lock.objects.filter(unlocked_at__isnull=False).select_related(
            "site", "subject", "visit", "locked_by", "unlocked_by")[:100],
        "sites": scope_to_user(Site.objects.all(), request.user, site_field="pk"),
        "error": errors,
    }, status=400 if errors else 200)


@login_required
def casebook_pdf(request: HttpRequest, subject_pk: int) -> HttpResponse:
    """The casebook as a PDF, with queries, audit trail and signatures."""
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.VIEW_AUDIT, subject.site):
        raise PermissionDenied
    content = render_casebook_pdf(subject=subject,
                                  audit=audit_rows(user=request.user, subject=subject))
    response = HttpResponse(content, content_type="application/pdf")
    name = f"casebook-{subject.subject_id or subject.screening_number}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    checksum = hashlib.sha256(content).hexdigest()
    response["X-Content-SHA256"] = checksum
    audit_event(action=AuditAction.EXPORTED, user=request.user, subject=subject,
                detail={"what": "casebook PDF", "file": name, "sha256": checksum})
    return response
