"""The pages of the API layer: a user's own API tokens, and the data import page."""

import hashlib

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters

from api import formats
from api.imports import REFUSE, records_import
from api.models import ApiToken
from api.tokens import NAME_LENGTH, token_create, token_revoke
from edc.audit import audit_event
from edc.models import AuditAction
from edc.roles import Action, can
from edc.services import password_confirms
from edc.sources import Source, audit_source
from edc.web import apply_errors

API_TOKEN_PROMPT = "api_token"  # noqa: S105 (where a password is asked, not a password)


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=NAME_LENGTH,
                           help_text=gettext_lazy("What the token is for, e.g. "
                                                  "“nightly R pull”."))
    days = forms.IntegerField(label=gettext_lazy("Days until it expires"), min_value=1,
                              max_value=settings.API_TOKEN_MAX_DAYS,
                              initial=settings.API_TOKEN_DAYS)
    password = forms.CharField(label=gettext_lazy("Your password"),
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}),
                               max_length=4096)


@sensitive_post_parameters("password")
@login_required
@transaction.non_atomic_requests
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's own tokens: create one (the password is asked again, counted towards the
    lockout like a login) and see it once; revoke one."""
    user = request.user
    form = TokenForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            if not password_confirms(user, form.cleaned_data["password"], request,
                                     prompt=API_TOKEN_PROMPT):
                form.add_error("password", _("The password is not correct."))
            else:
                try:
                    with transaction.atomic():
                        token, plain = token_create(user=user, name=form.cleaned_data["name"],
                                                    days=form.cleaned_data["days"], actor=user)
                    created = {"token": token, "plain": plain}
                    form = TokenForm()
                except (ValidationError, PermissionDenied) as error:
                    if isinstance(error, PermissionDenied):
                        form.add_error(None, str(error))
                    else:
                        apply_errors(form, error)
        if form.errors:
            status = 400
    held = ApiToken.objects.filter(user=user).select_related("revoked_by")
    response = render(request, "api/tokens.html", {
        "form": form, "created": created, "tokens": held,
        "api_url": request.build_absolute_uri("/api/"),
    }, status=status)
    if created:
        response["Cache-Control"] = "no-store"
    return response


@login_required
def token_revoke_page(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "POST":
        return redirect("api:tokens")
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token_revoke(token=token, actor=request.user)
    messages.success(request, _("The token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("api:tokens")


# --- Data import ------------------------------------------------------------------------------


def may_import(user) -> bool:
    return can(user, Action.IMPORT_DATA) or can(user, Action.ENTER_DATA)


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file"),
                           help_text=gettext_lazy("UTF-8, one row per record and event; "
                                                  "column names from the data dictionary."))
    reason = forms.CharField(label=gettext_lazy("Reason for change"), required=False,
                             max_length=1000,
                             help_text=gettext_lazy("Needed when the file changes a form "
                                                    "that was complete."))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _read_upload(upload) -> str:
    if upload.size > settings.API_IMPORT_MAX_BYTES:
        raise ValidationError(_("The file is larger than %(n)d bytes.")
                              % {"n": settings.API_IMPORT_MAX_BYTES})
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(_("The file is not UTF-8 text.")) from None


@login_required
@transaction.non_atomic_requests
def data_import(request: HttpRequest) -> HttpResponse:
    """Upload a CSV → a dry run reports what each row would do (create, update, unchanged,
    refuse, with the reason) → confirm → written through the API's import path
    (``api.imports.records_import``), all or nothing. The file's text travels with the
    confirmation and is checked against the SHA-256 of the text that was reported."""
    if not may_import(request.user):
        raise PermissionDenied
    context: dict = {"max_rows": settings.API_IMPORT_MAX_ROWS}
    status = 200
    form = UploadForm()
    if request.method == "POST" and request.POST.get("action") == "confirm":
        text = request.POST.get("data", "")
        reason = request.POST.get("reason", "")[:1000]
        if _digest(text) != request.POST.get("digest") or not text:
            messages.error(request, _("The confirmed file is not the one that was checked: "
                                      "upload it again."))
            return redirect("api:data_import")
        rows = formats.parse_rows(text, "csv")
        with audit_source(Source.FILE_IMPORT):
            report = records_import(user=request.user, rows=rows, reason=reason)
            _audit_import(request, report, dry_run=False, digest=_digest(text))
        context |= {"report": report, "confirmed": True}
        status = 200 if report.ok else 400
    elif request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                text = _read_upload(form.cleaned_data["file"])
                rows = formats.parse_rows(text, "csv")
                if not rows:
                    raise ValidationError(_("The file has no rows."))
                if len(rows) > settings.API_IMPORT_MAX_ROWS:
                    raise ValidationError(_("At most %(n)d rows per import.")
                                          % {"n": settings.API_IMPORT_MAX_ROWS})
            except ValueError as error:
                form.add_error("file", str(error))
            except ValidationError as error:
                form.add_error("file", error)
            else:
                with audit_source(Source.FILE_IMPORT):
                    report = records_import(user=request.user, rows=rows, dry_run=True,
                                            reason=form.cleaned_data["reason"])
                context |= {"report": report, "data": text, "digest": _digest(text),
                            "reason": form.cleaned_data["reason"],
                            "file_name": form.cleaned_data["file"].name}
        if form.errors:
            status = 400
    context["form"] = form
    if "report" in context:
        context["counts"] = context["report"].counts()
        context["REFUSE"] = REFUSE
    return render(request, "api/data_import.html", context, status=status)


def _audit_import(request, report, *, dry_run: bool, digest: str) -> None:
    counts = report.counts()
    audit_event(action=AuditAction.DATA_IMPORTED, user=request.user, request=request,
                detail={"written": report.written, "sha256": digest,
                        "records": report.records[:100], "forms_created": counts["create"],
                        "forms_updated": counts["update"],
                        "forms_unchanged": counts["unchanged"],
                        "rows_refused": counts["refuse"]})
