"""Reads of subjects and visits, scoped to the user and with their joins owned here."""

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from edc.models import Site, User
from edc.roles import Action, can, scope_to_user
from visits import schedule
from visits.models import Subject, SubjectStatus, Visit


def subjects_for_user(user: User):
    return scope_to_user(Subject.objects.with_site_and_visits(), user)


def subject_for_page(request, subject_pk: int) -> Subject:
    """The subject a page is about: 403 for a role that sees no subjects, 404 for one outside
    the user's sites; times on the page are then shown in the subject's site zone."""
    if not can(request.user, Action.VIEW_SUBJECTS):
        raise PermissionDenied
    subject = get_object_or_404(subjects_for_user(request.user), pk=subject_pk)
    timezone.activate(subject.site.zone)
    return subject


@dataclass(frozen=True)
class SubjectRow:
    subject: Subject
    next_visit: Visit | None
    next_visit_status: schedule.VisitStatus | None
    overdue_visits: int


def subject_rows(subjects, *, now: dt.datetime) -> list[SubjectRow]:
    """Each subject with its next open visit and how many visits are overdue, on the site's
    local date. Expects visits prefetched (``with_site_and_visits``)."""
    rows = []
    for subject in subjects:
        today = schedule.local_date(now, subject.site.zone)
        open_visits = []
        overdue = 0
        for visit in subject.visits.all():
            status = visit.status_on(today)
            if status == schedule.VisitStatus.OVERDUE:
                overdue += 1
            if status in (
                schedule.VisitStatus.UPCOMING,
                schedule.VisitStatus.DUE,
                schedule.VisitStatus.OVERDUE,
            ):
                open_visits.append((visit.window_end or today, visit, status))
        open_visits.sort(key=lambda item: (item[0], item[1].pk))
        first = open_visits[0] if open_visits else None
        rows.append(
            SubjectRow(
                subject=subject,
                next_visit=first[1] if first else None,
                next_visit_status=first[2] if first else None,
                overdue_visits=overdue,
            )
        )
    return rows


@dataclass(frozen=True)
class SiteSummary:
    site: Site
    screened: int
    screening: int
    screen_failed: int
    randomized: int
    completed: int
    withdrawn: int
    died: int


def site_summaries(user: User) -> list[SiteSummary]:
    """Subjects per status at each of the user's sites, in one query."""
    per_status = {
        f"n_{status}": Count("subjects", filter=Q(subjects__status=status))
        for status in SubjectStatus
    }
    sites = scope_to_user(Site.objects.all(), user, site_field="pk").annotate(
        screened=Count("subjects"), **per_status
    )
    return [
        SiteSummary(
            site=site,
            screened=site.screened,
            screening=site.n_screening,
            screen_failed=site.n_screen_failed,
            randomized=site.n_randomized,
            completed=site.n_completed,
            withdrawn=site.n_withdrawn,
            died=site.n_died,
        )
        for site in sites
    ]
