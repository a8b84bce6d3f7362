"""The eligibility checklist and randomization pages: the investigator confirms each criterion
beside what the system derived, and randomizes an eligible subject. Writes go through
``forms.entry.services``."""


from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds
from edc.roles import Action, can
from forms.entry import eligibility as eligibility_rules
from forms.entry import services
from forms.models import CRFStatus
from visits.selectors import subject_for_page


@login_required
def eligibility(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    can_enter = can(request.user, Action.ENTER_DATA, subject.site)
    if not subject.has_consented:
        messages.error(request, _("Record informed consent before the eligibility checklist."))
        return redirect("forms:casebook", subject_pk=subject.pk)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if not can_enter:
            raise PermissionDenied
        confirmations = {}
        for criterion in eligibility_rules.CRITERIA:
            answer = request.POST.get(f"confirm_{criterion.code}", "")
            confirmations[criterion.code] = {"yes": True, "no": False}.get(answer)
        planned_raw = request.POST.get("planned_first_infusion_at", "")
        planned = None
        version = bounds.int_param(request.POST.get("version", "0") or "0")
        if version is None:
            errors["__all__"] = [_("The form was sent incomplete: reload the page.")]
        if planned_raw:
            try:
                planned = timezone.make_aware(
                    timezone.datetime.fromisoformat(planned_raw), subject.site.zone)
            except ValueError:
                errors["planned_first_infusion_at"] = [_("Enter a valid date and time.")]
        if not errors:
            try:
                services.eligibility_confirm(
                    subject=subject, user=request.user, planned_first_infusion_at=planned,
                    confirmations=confirmations,
                    expected_version=version,
                    reason=request.POST.get("reason", ""),
                )
            except services.EditConflict:
                errors["__all__"] = [_("Someone else saved this checklist while you were "
                                       "editing it: reload and review.")]
            except ValidationError as error:
                errors = error.message_dict if hasattr(error, "error_dict") else {
                    "__all__": error.messages}
            else:
                messages.success(request, _("Eligibility checklist saved."))
                return redirect("forms:eligibility", subject_pk=subject.pk)
    checklist, derived, verdict = services.eligibility_review(subject)
    posted = request.POST if request.method == "POST" else None
    rows = []
    for criterion in eligibility_rules.CRITERIA:
        confirmed = (checklist.confirmations.get(criterion.code) if checklist else None)
        if posted is not None:
            confirmed = {"yes": True, "no": False}.get(posted.get(f"confirm_{criterion.code}"))
        rows.append({
            "criterion": criterion, "derived": derived.get(criterion.code),
            "confirmed": confirmed,
            "contradiction": criterion.code in verdict.contradictions,
        })
    planned_value = (posted.get("planned_first_infusion_at") if posted else
                     timezone.localtime(checklist.planned_first_infusion_at, subject.site.zone)
                     .strftime("%Y-%m-%dT%H:%M")
                     if checklist and checklist.planned_first_infusion_at else "")
    return render(request, "forms/entry/eligibility.html", {
        "subject": subject, "checklist": checklist, "rows": rows, "verdict": verdict,
        "can_enter": can_enter, "errors": errors, "planned_value": planned_value,
        "version": checklist.version if checklist else 0,
        "needs_reason": bool(checklist and checklist.ever_completed),
    }, status=400 if errors else 200)



@login_required
def randomize(request: HttpRequest, subject_pk: int) -> HttpResponse:
    subject = subject_for_page(request, subject_pk)
    if not can(request.user, Action.RANDOMIZE, subject.site):
        raise PermissionDenied
    checklist, _derived, verdict = services.eligibility_review(subject)
    error = None
    if request.method == "POST":
        try:
            subject = services.subject_randomize(subject=subject, user=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, _(
                "%(subject)s randomized: randomization number %(number)s.") % {
                "subject": subject.subject_id, "number": subject.randomization_number})
            return redirect(reverse("forms:casebook", kwargs={"subject_pk": subject.pk}))
    return render(request, "forms/entry/randomize.html", {
        "subject": subject, "checklist": checklist, "verdict": verdict, "error": error,
        "confirmed": bool(checklist and checklist.confirmed_by_id),
        "complete": bool(checklist and checklist.status == CRFStatus.COMPLETE),
    }, status=400 if error else 200)
