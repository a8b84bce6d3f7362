"""Screening log, consent, identifiers, screen failure, the pharmacy allocation list and
emergency unblinding. Views parse and render; ``visits.services`` writes."""

import datetime as dt
from collections import Counter
from functools import partial

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MinValueValidator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edc import bounds, protocol
from edc.i18n import reader_language
from edc.models import Site, User
from edc.roles import Action, Role, can, scope_to_user
from edc.services import Prompt, mail_send, password_confirms
from edc.web import apply_errors
from visits import services
from visits.models import (
    ConsentSigner,
    RandomizationSlot,
    Subject,
    SubjectIdentity,
    SubjectStatus,
)
from visits.selectors import subject_for_page, subjects_for_user

DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _criteria_choices():
    return [(c.code, f"{c.code} — {c.text}") for c in protocol.ELIGIBILITY_CRITERIA]


def trial_time(value: dt.datetime) -> None:
    """A screening or consent time lies between the trial's start and now."""
    if value.date() < bounds.TRIAL_START:
        raise ValidationError(_("A time before the trial began (%(start)s) is not possible.")
                              % {"start": bounds.TRIAL_START.isoformat()})
    if value > timezone.now():
        raise ValidationError(_("A time in the future is not possible."))


class ScreeningForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.none(), label=gettext_lazy("Site"))
    screened_at = forms.DateTimeField(label=gettext_lazy("Screened at"), widget=DATETIME_WIDGET,
                                      validators=[trial_time])
    full_name = forms.CharField(label=gettext_lazy("Full name"), max_length=200)
    birth_date = forms.DateField(label=gettext_lazy("Date of birth"), widget=DATE_WIDGET,
                                 validators=[MinValueValidator(bounds.EARLIEST_DATE)])
    hospital_record_number = forms.CharField(label=gettext_lazy("Hospital record number"),
                                             max_length=50, required=False)
    phone = forms.CharField(label=gettext_lazy("Phone"), max_length=30, required=False)


class ConsentForm(forms.Form):
    consented_at = forms.DateTimeField(label=gettext_lazy("Consent signed at"),
                                       widget=DATETIME_WIDGET, validators=[trial_time])
    signed_by = forms.ChoiceField(label=gettext_lazy("Signed by"), choices=ConsentSigner.choices,
                                  widget=forms.RadioSelect)
    form_version = forms.CharField(label=gettext_lazy("Consent form version"), max_length=30)


class ScreenFailForm(forms.Form):
    failed_criteria = forms.MultipleChoiceField(
        label=gettext_lazy("Criteria not met"), widget=forms.CheckboxSelectMultiple, choices=()
    )
    reason = forms.CharField(label=gettext_lazy("Comment"), max_length=bounds.REASON,
                             widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["failed_criteria"].choices = _criteria_choices()


class UnblindForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Medical reason for breaking the blind"),
                             max_length=bounds.REASON,
                             widget=forms.Textarea(attrs={"rows": 3}))
    password = forms.CharField(label=gettext_lazy("Your password"),
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}))


def _screening_sites(user: User):
    sites = scope_to_user(Site.objects.filter(is_active=True), user, site_field="pk")
    return [s for s in sites if can(user, Action.SCREEN_SUBJECT, s)]


@login_required
def screening_log(request: HttpRequest) -> HttpResponse:
    if not can(request.user, Action.VIEW_SUBJECTS):
        raise PermissionDenied
    subjects = list(subjects_for_user(request.user))
    sites = _screening_sites(request.user)
    form = None
    if sites:
        form = ScreeningForm(request.POST or None, initial={"site": sites[0]})
        form.fields["site"].queryset = Site.objects.filter(pk__in=[s.pk for s in sites])
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                subject = services.subject_screen(
                    site=data["site"], screened_at=data["screened_at"], user=request.user,
                    identity={key: data[key] for key in (
                        "full_name", "birth_date", "hospital_record_number", "phone")},
                )
            except ValidationError as error:
                apply_errors(form, error)
            else:
                messages.success(request, _("Screening number %(number)s assigned.") % {
                    "number": subject.screening_number})
                return redirect("visits:consent", subject_pk=subject.pk)
    elif request.method == "POST":
        raise PermissionDenied
    failures = Counter(
        (s.site.code, code) for s in subjects if s.status == SubjectStatus.SCREEN_FAILED
        for code in s.screen_failure_criteria
    )
    by_site = Counter((s.site.code, s.status) for s in subjects)
    return render(request, "visits/screening_log.html", {
        "subjects": subjects, "form": form,
        "failure_counts": sorted(failures.items()),
        # The status by its label, in the reader's language.
        "site_counts": [((site, SubjectStatus(status).label), n)
                        for (site, status), n in sorted(by_site.items())],
    }, status=400 if form is not None and form.errors else 200)


@login_required
def consent(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.SCREEN_SUBJECT, subject.site):
        raise PermissionDenied
    form = ConsentForm(request.POST or None, initial={"consented_at": timezone.localtime(
        timezone.now(), subject.site.zone).replace(second=0, microsecond=0)})
    if request.method == "POST" and form.is_valid():
        try:
            services.subject_consent(subject=subject, user=request.user,
                                     consented_at=form.cleaned_data["consented_at"],
                                     signed_by=form.cleaned_data["signed_by"],
                                     form_version=form.cleaned_data["form_version"])
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, _("Informed consent recorded; the screening visit is "
                                        "open."))
            return redirect("forms:casebook", subject_pk=subject.pk)
    return render(request, "visits/consent.html", {"subject": subject, "form": form},
                  status=400 if form.errors else 200)


@login_required
def screen_fail(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.ENTER_DATA, subject.site):
        raise PermissionDenied
    form = ScreenFailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.subject_set_status(
                subject=subject, status=SubjectStatus.SCREEN_FAILED, user=request.user,
                reason=form.cleaned_data["reason"],
                failed_criteria=form.cleaned_data["failed_criteria"],
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, _("Screen failure recorded."))
            return redirect("visits:screening_log")
    return render(request, "visits/screen_fail.html", {"subject": subject, "form": form},
                  status=400 if form.errors else 200)


@login_required
def identity(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.VIEW_IDENTIFIERS, subject.site):
        raise PermissionDenied
    current = SubjectIdentity.objects.filter(subject=subject).first()

    class IdentityForm(forms.Form):
        full_name = forms.CharField(label=_("Full name"), max_length=200)
        birth_date = forms.DateField(label=_("Date of birth"), widget=DATE_WIDGET)
        hospital_record_number = forms.CharField(label=_("Hospital record number"),
                                                 max_length=50, required=False)
        phone = forms.CharField(label=_("Phone"), max_length=30, required=False)
        reason = forms.CharField(label=_("Reason for change"), max_length=bounds.REASON,
                                 required=current is not None)

    initial = {}
    if current is not None:
        initial = {k: getattr(current, k) for k in (
            "full_name", "birth_date", "hospital_record_number", "phone")}
    form = IdentityForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.subject_identity_save(subject=subject, user=request.user,
                                           **form.cleaned_data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, _("Identifiers saved."))
            return redirect("forms:casebook", subject_pk=subject.pk)
    return render(request, "visits/identity.html", {
        "subject": subject, "form": form, "identity": current,
    }, status=400 if form.errors else 200)


@login_required
def pharmacy(request: HttpRequest) -> HttpResponse:
    """The unblinded pharmacist's list: which bag to prepare for each kit."""
    if not can(request.user, Action.VIEW_ALLOCATION):
        raise PermissionDenied
    slots = scope_to_user(
        RandomizationSlot.objects.filter(subject__isnull=False).select_related(
            "subject", "site"), request.user,
    ).order_by("site__code", "allocated_at")
    rows = []
    for slot in slots:
        arm = protocol.arm(slot.arm)
        rows.append({"slot": slot, "arm": arm,
                     "bags": list(zip(slot.kits, arm.infusions, strict=True))})
    return render(request, "visits/pharmacy.html", {"rows": rows})


@login_required
@transaction.non_atomic_requests
def unblind(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.EMERGENCY_UNBLIND, subject.site):
        raise PermissionDenied
    form = UnblindForm(request.POST or None)
    revealed = None
    if request.method == "POST" and form.is_valid():
        if not password_confirms(request.user, form.cleaned_data["password"], request,
                                 prompt=Prompt.UNBLINDING):
            form.add_error("password", _("The password is not correct."))
        else:
            try:
                services.subject_unblind(subject=subject, user=request.user,
                                         reason=form.cleaned_data["reason"])
            except ValidationError as error:
                apply_errors(form, error)
            else:
                _notify_unblinding(subject, request.user, form.cleaned_data["reason"])
                revealed = protocol.arm(
                    RandomizationSlot.objects.get(subject=subject).arm)
    return render(request, "visits/unblind.html", {
        "subject": subject, "form": form, "revealed": revealed,
    }, status=400 if form.errors else 200)


def _notify_unblinding(subject: Subject, user: User, reason: str) -> None:
    """Tell the data managers and the sponsor contact, after commit, without the arm."""
    # One mail per reader language: each recipient reads it in their own, not the
    # investigator's (the sponsor's address in the site default, LANGUAGE_CODE).
    by_language: dict[str, list[str]] = {}
    for manager in User.objects.filter(role=Role.DATA_MANAGER, is_active=True).exclude(email=""):
        by_language.setdefault(reader_language(manager), []).append(manager.email)
    if settings.SPONSOR_CONTACT_EMAIL:
        by_language.setdefault(settings.LANGUAGE_CODE, []).append(settings.SPONSOR_CONTACT_EMAIL)
    when = timezone.localtime(timezone.now(), subject.site.zone)
    params = {"subject": subject.subject_id, "site": subject.site.code,
              "user": user.printed_name, "when": when.strftime("%Y-%m-%d %H:%M"),
              "reason": reason}
    for language, recipients in by_language.items():
        with translation.override(language):
            body = _(
                "The blind was broken for subject %(subject)s at site %(site)s by %(user)s on "
                "%(when)s (site time).\n\nReason given: %(reason)s\n\nThe allocation is not "
                "included in this message."
            ) % params
            subject_line = _("Emergency unblinding: subject %(subject)s") % params
        transaction.on_commit(partial(mail_send, subject=subject_line, body=body,
                                      recipients=recipients))


