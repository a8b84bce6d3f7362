"""Every write to subjects and visits. Each service is atomic, validates before saving and
records who made the change and why in the history row written by the same transaction."""

import datetime as dt
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds
from edc.audit import AuditAction, audit_event
from edc.history import audited_save
from edc.models import Site, User
from edc.protocol import (
    SCHEDULED_AFTER_RANDOMIZATION,
    SCREENING_VISIT,
    UNSCHEDULED_VISIT_CODE,
)
from edc.roles import Action, can
from edc.validation import field_values
from visits import schedule
from visits.models import (
    KitAssignment,
    RandomizationSlot,
    Subject,
    SubjectIdentity,
    SubjectStatus,
    Unblinding,
    Visit,
)
from visits.schedule import age_in_years

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


@contextmanager
def current_transaction():
    """The caller's transaction when there is one (a request's), without a savepoint of its
    own: a service that refuses (``ValidationError``) before its first write leaves it
    usable, with nothing written; from the first write on, ``_save`` dooms it on any error.
    Otherwise a transaction of its own."""
    if transaction.get_connection().in_atomic_block:
        yield
    else:
        with transaction.atomic():
            yield


def subject_hold(subject_id: int, *, exclusive: bool = False) -> None:
    """Hold the subject's row until the transaction ends: shared by every save of its data
    (``FOR SHARE``: saves do not wait for each other), exclusive for a signature over it
    (``FOR UPDATE``). A save that comes while a signature is being recorded waits for it,
    then reads in new statements that see it (and breaks it when it changes what it covers);
    a signature that comes while saves are in progress waits for them, then fingerprints what
    they wrote. Taken before any other row of the subject's data, by saves and signatures
    alike, so the two never wait for each other in a cycle. SQLite has one writer at a time
    and no row locks: nothing to do there."""
    connection = transaction.get_connection()
    if not connection.features.has_select_for_update:
        return
    quote = connection.ops.quote_name
    mode = "UPDATE" if exclusive else "SHARE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {quote(Subject._meta.db_table)} WHERE "  # noqa: S608
            f"{quote(Subject._meta.pk.column)} = %s FOR {mode}", [subject_id])


def _typed_reason(reason: str) -> str:
    return bounds.text_input(reason, limit=bounds.REASON, field="reason")


def _next_screening_number(site: Site) -> str:
    # Lock the site row so two screenings at one site never draw the same number.
    Site.objects.select_for_update().get(pk=site.pk)
    prefix = f"{site.code}-S"
    taken = Subject.objects.filter(screening_number__startswith=prefix).values_list(
        "screening_number", flat=True
    )
    highest = max((int(n[len(prefix):]) for n in taken if n[len(prefix):].isdigit()), default=0)
    return f"{prefix}{highest + 1:03d}"


def _require(user: User, action: Action, site: Site) -> None:
    if not can(user, action, site):
        raise PermissionDenied(_("Your role does not allow this at this site."))


@transaction.atomic
def subject_screen(
    *,
    site: Site,
    screened_at: dt.datetime,
    user: User,
    identity: dict | None = None,
) -> Subject:
    """Enter a patient in the screening log: a screening number, and (optionally) the direct
    identifiers, which are stored apart from clinical data."""
    _require(user, Action.SCREEN_SUBJECT, site)
    if screened_at > timezone.now():
        raise ValidationError({"screened_at": _("Screening cannot be in the future.")})
    if screened_at.date() < bounds.TRIAL_START:
        raise ValidationError({"screened_at": _(
            "A time before the trial began (%(start)s) is not possible.")
            % {"start": bounds.TRIAL_START.isoformat()}})
    subject = Subject(
        screening_number=_next_screening_number(site),
        site=site,
        status=SubjectStatus.SCREENING,
        screened_at=screened_at,
    )
    audited_save(subject, user=user, reason=_("Screened"), constraints="all")
    if identity:
        subject_identity_save(subject=subject, user=user, **identity)
    return subject


@transaction.atomic
def subject_identity_save(
    *,
    subject: Subject,
    user: User,
    full_name: str,
    birth_date: dt.date,
    hospital_record_number: str = "",
    phone: str = "",
    reason: str = "",
) -> SubjectIdentity:
    _require(user, Action.VIEW_IDENTIFIERS, subject.site)
    reason = _typed_reason(reason)
    identity = SubjectIdentity.objects.filter(subject=subject).first() or SubjectIdentity(
        subject=subject
    )
    if identity.pk and not reason:
        raise ValidationError({"reason": _("Give the reason for changing the identifiers.")})
    if birth_date > timezone.now().date():
        raise ValidationError({"birth_date": _("The date of birth cannot be in the future.")})
    if birth_date < bounds.EARLIEST_DATE:
        raise ValidationError({"birth_date": _("A date of birth before %(earliest)s is not "
                                               "plausible.")
                               % {"earliest": bounds.EARLIEST_DATE.isoformat()}})
    identity.full_name = full_name
    identity.birth_date = birth_date
    identity.hospital_record_number = hospital_record_number
    identity.phone = phone
    audited_save(identity, user=user, reason=reason, constraints="all")
    if subject.consented_at is not None:
        subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
        age = age_in_years(birth_date, schedule.local_date(subject.consented_at, subject.site.zone))
        if subject.age_at_consent != age:
            subject.age_at_consent = age
            audited_save(subject, user=user, reason=reason or _("Age derived from date of birth"),
                         constraints="all")
    return identity


@transaction.atomic
def subject_consent(
    *,
    subject: Subject,
    consented_at: dt.datetime,
    signed_by: str,
    form_version: str,
    user: User,
) -> Subject:
    """Record informed consent and open the screening visit, whose forms need a home from
    consent on. Age at consent is derived from the birth date and stored; the birth date is
    not."""
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
    _require(user, Action.SCREEN_SUBJECT, subject.site)
    if subject.status != SubjectStatus.SCREENING:
        raise ValidationError(_("Consent can only be recorded for a subject in screening."))
    if subject.consented_at is not None:
        raise ValidationError(_("Consent is already recorded for this subject."))
    if consented_at > timezone.now():
        raise ValidationError({"consented_at": _("Consent cannot be in the future.")})
    if consented_at.date() < bounds.TRIAL_START:
        raise ValidationError({"consented_at": _(
            "A time before the trial began (%(start)s) is not possible.")
            % {"start": bounds.TRIAL_START.isoformat()}})
    if consented_at < subject.screened_at - dt.timedelta(days=1):
        raise ValidationError(
            {"consented_at": _("Consent cannot be more than a day before screening.")}
        )
    subject.consented_at = consented_at
    subject.consent_signed_by = signed_by
    subject.consent_form_version = form_version.strip()
    identity = SubjectIdentity.objects.filter(subject=subject).first()
    if identity is not None:
        subject.age_at_consent = age_in_years(
            identity.birth_date, schedule.local_date(consented_at, subject.site.zone)
        )
    audited_save(subject, user=user, reason=_("Informed consent"), constraints="all")
    window = schedule.screening_window(schedule.local_date(consented_at, subject.site.zone))
    audited_save(
        Visit(
            subject=subject,
            code=SCREENING_VISIT.code,
            planned_date=window.planned,
            window_start=window.start,
            window_end=window.end,
        ),
        user=user,
        reason=_("Screening visit opened at consent"),
        constraints="all",
    )
    return subject


@transaction.atomic
def randomization_allocate(
    *, subject: Subject, stratum: str, randomized_at: dt.datetime, user: User
) -> Subject:
    """Allocate the next free row of the subject's stratum (site × NIHSS band), assign the
    subject ID and the three kits, and create the visit schedule, Day 1 being the randomization
    date in the site's time zone.

    Eligibility is checked by the caller, ``forms.entry.services.subject_randomize``, which is the
    only entry point. Randomizations at one site are serialized by a lock on the site's row, so
    two simultaneous randomizations can never draw the same list row.
    """
    subject = (Subject.objects.select_for_update(of=("self",)).select_related("site")
               .get(pk=subject.pk))
    _require(user, Action.RANDOMIZE, subject.site)
    Site.objects.select_for_update().get(pk=subject.site_id)
    if subject.status != SubjectStatus.SCREENING:
        raise ValidationError(
            _("Only a subject in screening can be randomized (this one is %(status)s).")
            % {"status": subject.get_status_display()}
        )
    if subject.consented_at is None:
        raise ValidationError(_("Informed consent must be recorded before randomization."))
    if randomized_at > timezone.now():
        raise ValidationError({"randomized_at": _("Randomization cannot be in the future.")})
    slot = (
        RandomizationSlot.objects.filter(site=subject.site, stratum=stratum, subject=None)
        .order_by("sequence")
        .first()
    )
    if slot is None:
        raise ValidationError(
            _("The randomization list has no free row for NIHSS stratum %(stratum)s at this "
              "site. Contact the data manager.") % {"stratum": stratum}
        )
    randomized_here = Subject.objects.filter(
        site=subject.site, subject_id__isnull=False
    ).count()
    subject.subject_id = f"{subject.site.code}-{randomized_here + 1:03d}"
    subject.randomization_number = slot.randomization_number
    subject.randomized_at = randomized_at
    subject.status = SubjectStatus.RANDOMIZED
    audited_save(subject, user=user, reason=_("Randomized"), constraints="all")
    slot.subject = subject
    slot.allocated_at = timezone.now()
    audited_save(slot, user=user, reason=_("Allocated"), constraints="all")
    for number, kit in enumerate(slot.kits, start=1):
        audited_save(KitAssignment(subject=subject, infusion_number=number, kit_number=kit),
                     user=user, reason=_("Allocated"), constraints="all")
    day1 = subject.day1
    for visit_def in SCHEDULED_AFTER_RANDOMIZATION:
        window = schedule.visit_window(visit_def, day1)
        audited_save(
            Visit(
                subject=subject,
                code=visit_def.code,
                planned_date=window.planned,
                window_start=window.start,
                window_end=window.end,
            ),
            user=user,
            reason=_("Scheduled at randomization"),
            constraints="all",
        )
    audit_event(action=AuditAction.RANDOMIZED, user=user, obj=subject, subject=subject,
                detail={"randomization_number": slot.randomization_number})
    return subject


@transaction.atomic
def subject_set_status(
    *,
    subject: Subject,
    status: str,
    user: User,
    reason: str,
    failed_criteria: list[str] | None = None,
) -> Subject:
    """End a subject's screening or participation: screen failure (with the criteria not met,
    for the CONSORT flow), completion, withdrawal, death. Needs a reason; randomization goes
    through :func:`randomization_allocate`."""
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
    _require(user, Action.ENTER_DATA, subject.site)
    reason = _typed_reason(reason)
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
    if status == SubjectStatus.SCREEN_FAILED:
        if not failed_criteria:
            raise ValidationError(
                {"failed_criteria": _("Choose the criteria the patient did not meet.")}
            )
        subject.screen_failure_criteria = sorted(set(failed_criteria))
    subject.status = status
    audited_save(subject, user=user, reason=reason, constraints="all")
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


def visit_record_date(
    *, visit: Visit, actual_date: dt.date, user: User, reason: str = ""
) -> Visit:
    """Record the date a visit took place (clears a 'missed' mark)."""
    with current_transaction():
        return _visit_record_date(visit=visit, actual_date=actual_date, user=user,
                                  reason=reason)


def _visit_record_date(*, visit: Visit, actual_date: dt.date, user: User, reason: str
                       ) -> Visit:
    visit = Visit.objects.select_for_update().select_related("subject__site").get(pk=visit.pk)
    stored = field_values(visit)
    _validate_visit_date(visit.subject, actual_date)
    reason = _typed_reason(reason)
    if visit.actual_date is not None and visit.actual_date != actual_date and not reason:
        raise ValidationError({"reason": _("Give the reason for changing the visit date.")})
    visit.actual_date = actual_date
    visit.is_missed = False
    visit.missed_reason = ""
    audited_save(visit, user=user, reason=reason, stored=stored)
    return visit


def visit_mark_missed(*, visit: Visit, reason: str, user: User) -> Visit:
    """Record that a visit did not take place, and why."""
    with current_transaction():
        return _visit_mark_missed(visit=visit, reason=reason, user=user)


def _visit_mark_missed(*, visit: Visit, reason: str, user: User) -> Visit:
    visit = Visit.objects.select_for_update().get(pk=visit.pk)
    stored = field_values(visit)
    if visit.actual_date is not None:
        raise ValidationError(_("A visit with a visit date cannot be marked missed."))
    if not reason.strip():
        raise ValidationError({"missed_reason": _("Give the reason the visit did not happen.")})
    visit.is_missed = True
    visit.missed_reason = reason
    audited_save(visit, user=user, reason=reason, stored=stored)
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
    audited_save(visit, user=user, reason=_("Unscheduled visit"), constraints="all")
    return visit


@transaction.atomic
def randomization_list_import(*, rows, list_name: str, user: User) -> int:
    """Load a validated randomization list (``visits.randomization.ListRow`` rows)."""
    if not can(user, Action.LOAD_RANDOMIZATION_LIST):
        raise PermissionDenied(_("Only the unblinded statistician loads randomization lists."))
    sites = {site.code: site for site in Site.objects.all()}
    for row in rows:
        slot = RandomizationSlot(
            site=sites[row.site_code], stratum=row.stratum, sequence=row.sequence,
            block_number=row.block_number, block_size=row.block_size,
            randomization_number=row.randomization_number, arm=row.arm,
            kit_1=row.kit_numbers[0], kit_2=row.kit_numbers[1], kit_3=row.kit_numbers[2],
            list_name=list_name,
        )
        audited_save(slot, user=user, constraints="all",
                     reason=_("Randomization list %(name)s loaded") % {"name": list_name})
    audit_event(action=AuditAction.LIST_LOADED, user=user,
                detail={"list_name": list_name, "rows": len(rows)})
    return len(rows)


@transaction.atomic
def subject_unblind(*, subject: Subject, user: User, reason: str) -> Unblinding:
    """Emergency unblinding of one subject by an investigator (the password has been checked
    by the caller). Audited; the subject is marked unblinded everywhere."""
    subject = Subject.objects.select_for_update().select_related("site").get(pk=subject.pk)
    _require(user, Action.EMERGENCY_UNBLIND, subject.site)
    if subject.randomization_number is None:
        raise ValidationError(_("Only a randomized subject has an allocation to reveal."))
    reason = _typed_reason(reason)
    if not reason:
        raise ValidationError({"reason": _("Give the medical reason for breaking the blind.")})
    unblinding = Unblinding(subject=subject, user=user, reason=reason.strip(),
                            unblinded_at=timezone.now())
    audited_save(unblinding, user=user, reason=_("Emergency unblinding"), constraints="all")
    if not subject.emergency_unblinded:
        subject.emergency_unblinded = True
        audited_save(subject, user=user, constraints="all",
                     reason=_("Emergency unblinding: %(reason)s") % {"reason": reason.strip()})
    audit_event(action=AuditAction.UNBLINDED, user=user, obj=unblinding, subject=subject,
                detail={"reason": reason.strip()})
    return unblinding
