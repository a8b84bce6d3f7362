"""The home page: what each role needs to see first (subjects, site summaries, job health).
It reads subjects, so it sits above the core, in the wiring."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from edc.models import User
from edc.roles import Action, Role, can, has_all_sites
from edc.services import heartbeat_is_stale, last_heartbeat
from visits.models import SubjectStatus
from visits.selectors import site_summaries, subject_rows, subjects_for_user

# What each role's home page shows.
_SUBJECT_LIST_ROLES = {
    Role.SITE_STAFF,
    Role.INVESTIGATOR,
    Role.MONITOR,
    Role.DATA_MANAGER,
    Role.UNBLINDED_PHARMACIST,
}
_SITE_SUMMARY_ROLES = {Role.MONITOR, Role.DATA_MANAGER, Role.UNBLINDED_STATISTICIAN}
_JOB_HEALTH_ROLES = {Role.DATA_MANAGER, Role.ADMINISTRATOR}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user: User = request.user
    context: dict = {
        "sites": user.sites.all() if not has_all_sites(user) else None,
        "all_sites": has_all_sites(user),
    }
    if user.role in _SUBJECT_LIST_ROLES and can(user, Action.VIEW_SUBJECTS):
        subjects = subjects_for_user(user)
        if user.role == Role.UNBLINDED_PHARMACIST:
            subjects = subjects.filter(status=SubjectStatus.RANDOMIZED)
        context["subject_rows"] = subject_rows(subjects, now=timezone.now())
    if user.role in _SITE_SUMMARY_ROLES:
        context["site_summaries"] = site_summaries(user)
    if user.role in _JOB_HEALTH_ROLES:
        run = last_heartbeat()
        context["heartbeat"] = run
        context["heartbeat_stale"] = heartbeat_is_stale(run)
    context["can_manage_users"] = can(user, Action.MANAGE_USERS)
    status = 200 if user.role else 403
    return render(request, "wiring/home.html", context, status=status)
