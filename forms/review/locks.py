"""Data lock: a data manager locks a form, a visit, a subject, a site or the whole trial
(database lock). Locked data refuse every edit, through the pages and the service layer, and
locked forms take no new queries; unlocking needs a reason. Locks are never deleted: an unlock
closes the lock row, so the history shows every period a record was locked."""

from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from edc.audit import audit_event
from edc.history import audited_save
from edc.models import AuditAction, User
from edc.roles import Action, can
from forms.models.signoff import Lock, LockScope
from visits.models import Subject, Visit


def active_lock(*, subject: Subject, visit: Visit | None = None, record=None) -> Lock | None:
    """The lock in force over this record, visit or subject, if any."""
    condition = (Q(scope=LockScope.TRIAL) | Q(scope=LockScope.SITE, site_id=subject.site_id)
                 | Q(scope=LockScope.SUBJECT, subject=subject))
    if visit is not None:
        condition |= Q(scope=LockScope.VISIT, visit=visit)
    if record is not None and record.pk:
        condition |= Q(scope=LockScope.FORM, object_id=record.pk,
                       content_type=ContentType.objects.get_for_model(record))
    return Lock.objects.filter(condition, unlocked_at__isnull=True).first()


def locks_over(subject: Subject):
    """Every lock in force over any of the subject's data (its own, its visits' and forms',
    its site's, the trial's). Form and visit locks carry their subject (``lock_create``)."""
    condition = (Q(scope=LockScope.TRIAL) | Q(scope=LockScope.SITE, site_id=subject.site_id)
                 | Q(subject=subject))
    return Lock.objects.filter(condition, unlocked_at__isnull=True)


@dataclass(frozen=True)
class SubjectLocks:
    """The locks in force over any of a subject's data, read once: whether a record or visit
    is locked, without a query each."""

    subject: Subject
    locks: tuple[Lock, ...]

    @classmethod
    def of(cls, subject: Subject) -> "SubjectLocks":
        return cls(subject, tuple(locks_over(subject).order_by("pk")))

    @classmethod
    def none(cls, subject: Subject) -> "SubjectLocks":
        """No lock in force: the caller asked ``locks_over(subject).exists()`` in this
        transaction (with another read) and the answer was no."""
        return cls(subject, ())

    def covering(self, record) -> Lock | None:
        """The lock in force over ``record`` (a CRF or a Visit of the subject), if any."""
        if isinstance(record, Visit):
            visit_id, content_type_id = record.pk, None
        else:
            visit_id = record.visit_id
            content_type_id = ContentType.objects.get_for_model(record).pk
        for lock in self.locks:
            if (lock.scope in (LockScope.TRIAL, LockScope.SITE, LockScope.SUBJECT)
                    or (lock.scope == LockScope.VISIT and visit_id is not None
                        and lock.visit_id == visit_id)
                    or (lock.scope == LockScope.FORM and content_type_id is not None
                        and record.pk is not None and lock.content_type_id == content_type_id
                        and lock.object_id == record.pk)):
                return lock
        return None

    def covers(self, record) -> bool:
        return self.covering(record) is not None

    def refuse(self, record) -> None:
        """``refuse_if_locked`` for a record of this subject."""
        _refuse(self.covering(record))


def refuse_if_locked(*, subject: Subject, visit: Visit | None = None, record=None) -> None:
    _refuse(active_lock(subject=subject, visit=visit, record=record))


def _refuse(lock: Lock | None) -> None:
    if lock is not None:
        raise ValidationError(
            _("These data are locked (%(lock)s) since %(when)s: they cannot be changed until "
              "a data manager unlocks them.") % {
                "lock": lock, "when": timezone.localtime(lock.locked_at).strftime(
                    "%Y-%m-%d %H:%M")}
        )


@transaction.atomic
def lock_create(*, user: User, scope: str, target=None, reason: str = "") -> Lock:
    """Lock ``target`` (a CRF, Visit, Subject or Site; nothing for the whole trial)."""
    site = {
        LockScope.FORM: lambda t: t.subject.site, LockScope.VISIT: lambda t: t.subject.site,
        LockScope.SUBJECT: lambda t: t.site, LockScope.SITE: lambda t: t,
        LockScope.TRIAL: lambda t: None,
    }[scope](target)
    if not can(user, Action.LOCK_DATA, site):
        raise PermissionDenied(_("Only a data manager locks data."))
    lock = Lock(scope=scope, locked_by=user, locked_at=timezone.now(), reason=reason.strip())
    if scope == LockScope.FORM:
        lock.form = target
        lock.subject, lock.visit, lock.site = target.subject, target.visit, site
    elif scope == LockScope.VISIT:
        lock.visit, lock.subject, lock.site = target, target.subject, site
    elif scope == LockScope.SUBJECT:
        lock.subject, lock.site = target, site
    elif scope == LockScope.SITE:
        lock.site = target
    audited_save(lock, user=user, reason=gettext_noop("Locked"))
    audit_event(action=AuditAction.LOCKED, user=user, obj=lock, site=site,
                detail={"scope": scope, "lock": str(lock)})
    return lock


@transaction.atomic
def lock_release(*, lock: Lock, user: User, reason: str) -> Lock:
    lock = Lock.objects.select_for_update().get(pk=lock.pk)
    if not can(user, Action.UNLOCK_DATA, lock.site):
        raise PermissionDenied(_("Only a data manager unlocks data."))
    if not lock.is_active:
        raise ValidationError(_("This lock was already released."))
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for unlocking.")})
    lock.unlocked_by = user
    lock.unlocked_at = timezone.now()
    lock.unlock_reason = reason.strip()
    audited_save(lock, user=user, reason=reason)
    audit_event(action=AuditAction.UNLOCKED, user=user, obj=lock, site=lock.site,
                detail={"scope": lock.scope, "lock": str(lock), "reason": reason.strip()})
    return lock
