"""Every write to subjects and visits. Each service is atomic, validates before saving and
records who made the change and why in the history row written by the same transaction."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from edc.models import Site, User
from edc.protocol import (
    SCHEDULED_AFTER_RANDOMIZATION,
    SCREENING_VISIT,
    UNSCHEDULED_VISIT_CODE,
)
from visits import schedule
from visits.models import Subject, SubjectStatus, Visit

# Which status may follow which; randomization has its own service.
_STATUS_TRANSITIONS: dict[str, set[str]] = {
    SubjectStatus.SCREENING: {
        SubjectStatus.SCREEN_FAILED,
        SubjectStatus.WITHDRAWN,
        SubjectStatus.DIED,
    },
    SubjectStatus.RANDOMIZED: {
        SubjectStatus.COMPLETED,
        SubjectStatus.WITHDRAWN,
        SubjectStatus.DIED,
    },
}


def _save(instance, *, user: User, reason: str = "") -> None:
    """Validate and save ``instance`` with its author and reason on the history row."""
    instance.full_clean()
    instance._history_user = user
    if reason:
        instance._change_reason = reason
    instance.save()


def _next_screening_number(site: Site) -> str:
    # Lock the site row so two screenings at one site never draw the same number.
    Site.objects.select_for_update().get(pk=site.pk)
    prefix = f"{site.code}-S"
    taken = Subject.objects.filter(screening_number__startswith=prefix).values_list(
        "screening_number", flat=True
    )
    highest = max((int(n[len(prefix):]) for n in taken if n[len(prefix):].isdigit()), default=0)
    return f"{prefix}{highest + 1:03d}"


@transaction.atomic
def subject_screen(*, site: Site, consented_at: dt.datetime, user: User) -> Subject:
    """Register a consented patient: a screening number and the screening visit, whose forms
    need a home from consent on."""
    if consented_at > timezone.now():
        raise ValidationError({"consented_at": _("Consent cannot be in the future.")})
    subject = Subject(
        screening_number=_next_screening_number(site),
        site=site,
        status=SubjectStatus.SCREENING,
        consented_at=consented_at,
    )
    _save(subject, user=user, reason=_("Screened"))
    window = schedule.screening_window(schedule.local_date(consented_at, site.zone))
    _save(
        Visit(
            subject=subject,
            code=SCREENING_VISIT.code,
            planned_date=window.planned,
            window_start=window.start,
            window_end=window.end,
        ),
        user=user,
        reason=_("Screening visit opened at consent"),
    )
    return subject


@transaction.atomic
def subject_enrol(
    *, subject: Subject, subject_id: str, randomized_at: dt.datetime, user: User
) -> Subject:
    """Mark a screened subject randomized and create the visit schedule, Day 1 being the
    randomization date in the site's time zone (PROTOCOL.md, Visit schedule)."""
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
    if subject.status != SubjectStatus.SCREENING:
        raise ValidationError(
            _("Only a subject in screening can be randomized (this one is %(status)s).")
            % {"status": subject.get_status_display()}
        )
    if randomized_at > timezone.now():
        raise ValidationError({"randomized_at": _("Randomization cannot be in the future.")})
    subject.subject_id = subject_id
    subject.randomized_at = randomized_at
    subject.status = SubjectStatus.RANDOMIZED
    _save(subject, user=user, reason=_("Randomized"))
    day1 = subject.day1
    for visit_def in SCHEDULED_AFTER_RANDOMIZATION:
        window = schedule.visit_window(visit_def, day1)
        _save(
            Visit(
                subject=subject,
                code=visit_def.code,
                planned_date=window.planned,
                window_start=window.start,
                window_end=window.end,
            ),
            user=user,
            reason=_("Scheduled at randomization"),
        )
    return subject


@transaction.atomic
def subject_set_status(*, subject: Subject, status: str, user: User, reason: str) -> Subject:
    """End a subject's screening or participation: screen failure, completion, withdrawal,
    death. Needs a reason; randomization goes through :func:`subject_enrol`."""
    subject = Subject.objects.select_for_update().get(pk=subject.pk)
    if status not in _STATUS_TRANSITIONS.get(subject.status, set()):
        raise ValidationError(
            _("A subject who is %(current)s cannot become %(new)s.")
            % {
                "current": subject.get_status_display(),
                "new": SubjectStatus(status).label,
            }
        )
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for this change of status.")})
    subject.status = status
    _save(subject, user=user, reason=reason)
    return subject


def _site_today(subject: Subject) -> dt.date:
    return schedule.local_date(timezone.now(), subject.site.zone)


def _validate_visit_date(subject: Subject, actual_date: dt.date) -> None:
    if actual_date > _site_today(subject):
        raise ValidationError({"actual_date": _("The visit date cannot be in the future.")})
    if actual_date < schedule.local_date(subject.consented_at, subject.site.zone):
        raise ValidationError(
            {"actual_date": _("The visit date cannot be before informed consent.")}
        )


@transaction.atomic
def visit_record_date(
    *, visit: Visit, actual_date: dt.date, user: User, reason: str = ""
) -> Visit:
    """Record the date a visit took place (clears a 'missed' mark)."""
    visit = Visit.objects.select_for_update().select_related("subject__site").get(pk=visit.pk)
    _validate_visit_date(visit.subject, actual_date)
    if visit.actual_date is not None and visit.actual_date != actual_date and not reason:
        raise ValidationError({"reason": _("Give the reason for changing the visit date.")})
    visit.actual_date = actual_date
    visit.is_missed = False
    visit.missed_reason = ""
    _save(visit, user=user, reason=reason)
    return visit


@transaction.atomic
def visit_mark_missed(*, visit: Visit, reason: str, user: User) -> Visit:
    """Record that a visit did not take place, and why."""
    visit = Visit.objects.select_for_update().get(pk=visit.pk)
    if visit.actual_date is not None:
        raise ValidationError(_("A visit with a visit date cannot be marked missed."))
    if not reason.strip():
        raise ValidationError({"missed_reason": _("Give the reason the visit did not happen.")})
    visit.is_missed = True
    visit.missed_reason = reason
    _save(visit, user=user, reason=reason)
    return visit


@transaction.atomic
def visit_add_unscheduled(*, subject: Subject, actual_date: dt.date, user: User) -> Visit:
    """Add an unscheduled visit that took place on ``actual_date``."""
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
    if subject.status in (SubjectStatus.SCREEN_FAILED,):
        raise ValidationError(_("A screen-failed subject has no further visits."))
    _validate_visit_date(subject, actual_date)
    last = (
        Visit.objects.filter(subject=subject, code=UNSCHEDULED_VISIT_CODE)
        .order_by("-sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    visit = Visit(
        subject=subject,
        code=UNSCHEDULED_VISIT_CODE,
        sequence=(last or 0) + 1,
        actual_date=actual_date,
    )
    _save(visit, user=user, reason=_("Unscheduled visit"))
    return visit
