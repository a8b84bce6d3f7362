"""Writes to the study-wide core."""

import datetime as dt
import logging
import smtplib

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import authenticate, logout
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.transaction import TransactionManagementError
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from edc.audit import audit_event
from edc.history import audited_save
from edc.i18n import language_code
from edc.models import AuditAction, JobRun, RoleGrantRequest, RoleGrantStatus, User
from edc.ratelimit import rate_limit_hit
from edc.roles import UNBLINDED_ROLES, Action, Role, administrator_rights, can

logger = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"


@transaction.atomic
def job_heartbeat(*, worker: str) -> JobRun:
    now = timezone.now()
    return JobRun.objects.create(
        name=HEARTBEAT, started_at=now, finished_at=now, worker=worker, succeeded=True
    )


def last_heartbeat() -> JobRun | None:
    return JobRun.objects.filter(name=HEARTBEAT, succeeded=True).first()


def heartbeat_is_stale(run: JobRun | None, *, now: dt.datetime | None = None) -> bool:
    if run is None:
        return True
    now = now or timezone.now()
    age = (now - run.finished_at).total_seconds()
    return age > settings.HEARTBEAT_STALE_AFTER_SECONDS


class Prompt:
    """Where a password is asked again; recorded with each failed attempt."""

    SIGNATURE = "signature"
    UNBLINDING = "unblinding"
    PASSWORD_CHANGE = "password_change"  # noqa: S105 (a prompt name, not a password)


def _in_transaction_that_may_roll_back(using: str = DEFAULT_DB_ALIAS) -> bool:
    """True inside any ``atomic`` block other than the one a test case wraps around a test
    (the test's wrapper is not a transaction the application could roll back)."""
    connection = transaction.get_connection(using)
    return any(not block._from_testcase for block in connection.atomic_blocks)


def password_confirms(user: User, password: str, request: HttpRequest | None = None, *,
                      prompt: str = "", username: str | None = None) -> bool:
    """Re-authentication for signatures, unblinding and password changes: the password is
    asked again, never taken from the session (21 CFR 11.200).

    Every prompt feeds the login lockout (django-axes, per username): a wrong password counts
    as a failed login and leaves a ``login_failed`` audit event naming the ``prompt``; a
    locked account is refused even with the right password; the attempt that reaches the limit
    locks the account, ends this session and is recorded (``account_locked``). The counter and
    the events must outlive whatever the caller does next, so this refuses to run inside a
    transaction that may roll back: callers check the password first, then open their
    transaction (views that ask for a password are ``non_atomic_requests``).

    ``username`` (the first signature of a session asks for both components, 21 CFR
    11.200(a)(1)(i)): it must name this account, in any letter case. A user ID that names
    anyone else is a failed attempt of this account like a wrong password (counted, audited,
    the password not even tried).
    """
    if _in_transaction_that_may_roll_back():
        raise TransactionManagementError(
            "password_confirms must run outside any transaction: a rollback would erase "
            "the failed attempt and the lockout counter."
        )
    if request is not None:
        # A person at a prompt, not a service signing for a script (seed_trial).
        rate_limit_hit(scope="reauthentication", key=f"user:{user.pk}")
    request = request if request is not None else HttpRequest()
    user_id_wrong = username is not None and not (
        User.objects.by_username(username).filter(pk=user.pk).exists())
    # authenticate() without a password fails through the same backends and signals as a
    # wrong one: the lockout counts it, refuses a locked account, and the audit records it.
    extra = {"user_id_typed": username} if user_id_wrong else {}
    confirmed = authenticate(request, username=user.get_username(),
                             password=None if user_id_wrong else password,
                             prompt=prompt, **extra) is not None
    if confirmed and settings.AXES_RESET_ON_SUCCESS:
        AxesProxyHandler.reset_attempts(username=user.get_username())
    if getattr(request, "axes_locked_out", False) and getattr(request, "session", None):
        logout(request)
    return confirmed


def password_set_refusal(*, actor: User | None, user: User) -> str | None:
    """Why ``actor`` (None: someone other than the holder, as in Django admin) may not set
    ``user``'s password. Nobody but the holder sets the password of an account that holds an
    unblinded role: whoever knew it could read the allocation alone."""
    if actor is not None and actor.pk == user.pk:
        return None
    if user.role in UNBLINDED_ROLES:
        return _(
            "%(user)s holds an unblinded role, so nobody else sets their password: they change "
            "it themself (Change password, /accounts/password/). For a lost password, remove "
            "the unblinded role, set a temporary password, let them choose their own at "
            "sign-in, then ask again for the role: a second administrator approves it."
        ) % {"user": user.get_username()}
    return None


@transaction.atomic
def user_password_set(*, user: User, password: str, actor: User) -> None:
    """Set a new password (already validated against the policy) and record who did it.

    Refused when someone other than the holder sets the password of an unblinded account
    (:func:`password_set_refusal`). A password set by anyone else (an administrator) marks
    the account ``password_chosen_by_holder = False``: an unblinded role is not approved
    until the holder has chosen their own (:func:`role_grant_decide`)."""
    current = User.objects.select_for_update().get(pk=user.pk)
    refusal = password_set_refusal(actor=actor, user=current)
    if refusal:
        raise ValidationError(refusal)
    own = actor.pk == user.pk
    user.set_password(password)
    user.password_chosen_by_holder = own
    audited_save(user, user=actor, clean=False,
                 update_fields=["password", "password_chosen_by_holder"])
    audit_event(action=AuditAction.PASSWORD_CHANGED, user=actor, obj=user,
                detail={"username": user.get_username(), "own": own})


# --- Accounts: separation of duties (DESIGN.md) ----------------------------------------------

# What nobody may change on their own account.
OWN_ACCOUNT_FIELDS = ("role", "sites", "is_active", "is_staff", "is_superuser", "groups",
                      "user_permissions")


def _ids(values) -> set:
    return {getattr(value, "pk", value) for value in values}


def is_administrator(user: User) -> bool:
    """An administrator account: the administrator role, or Django admin rights."""
    return user.role == Role.ADMINISTRATOR or user.is_staff or user.is_superuser


def account_change_refusals(*, actor: User, before: User | None, proposed: dict) -> list[str]:
    """Why ``actor`` may not make the ``proposed`` account values (field name → value; sites
    and groups as iterables) to the account now stored as ``before`` (None: a new account).
    Used by the admin's forms, to show the message, and by :func:`user_save`."""
    refusals = []
    if before is not None and before.pk == actor.pk:
        changed = []
        for name in OWN_ACCOUNT_FIELDS:
            if name not in proposed:
                continue
            if name in {"sites", "groups", "user_permissions"}:
                current = _ids(getattr(before, name).all())
                if _ids(proposed[name]) != current:
                    changed.append(name)
            elif proposed[name] != getattr(before, name):
                changed.append(name)
        if changed:
            refusals.append(_(
                "Nobody changes their own role, sites, active state or administrator rights: "
                "ask another administrator (you tried to change: %(fields)s)."
            ) % {"fields": ", ".join(changed)})
    role = proposed.get("role", before.role if before is not None else "")
    staff = proposed.get("is_staff", before.is_staff if before is not None else False)
    superuser = proposed.get("is_superuser",
                             before.is_superuser if before is not None else False)
    if role in UNBLINDED_ROLES and (staff or superuser):
        refusals.append(_("An administrator account (staff or superuser) is never given an "
                          "unblinded role."))
    return refusals


def administrator_makers(user_pk) -> set:
    """Who created the account ``user_pk`` or gave it administrator rights (role
    administrator, staff, superuser), from the account's history rows (``history_user``)."""
    makers = set()
    rights_before = frozenset()
    for row in User.history.filter(id=user_pk).order_by("history_date", "history_id"):
        rights = administrator_rights(row)
        if row.history_user_id is not None and row.history_user_id != user_pk and (
                row.history_type == "+" or rights - rights_before):
            makers.add(row.history_user_id)
        rights_before = rights
    return makers


def _lineage(user_pk) -> set:
    """Every account whose administrator rights (or creation) lead back, directly or through
    accounts it made, to ``user_pk``'s makers: the makers of its makers, and so on."""
    seen, todo = set(), [user_pk]
    while todo:
        for maker in administrator_makers(todo.pop()):
            if maker not in seen:
                seen.add(maker)
                todo.append(maker)
    return seen


def independent_administrators(requester: User, approver: User) -> bool:
    """False when one of the two created the other's account or gave it administrator rights,
    directly or through accounts they made (a "sock-puppet" second administrator)."""
    return (requester.pk not in _lineage(approver.pk)
            and approver.pk not in _lineage(requester.pk))


@transaction.atomic
def user_save(*, actor: User, user: User, sites=None, groups=None) -> RoleGrantRequest | None:
    """Save an account as an administrator changed it (Django admin's add and change forms).

    - Nobody changes their own role, sites, active state or administrator rights.
    - An unblinded role is not given here: the account keeps its role and a pending
      :class:`RoleGrantRequest` waits for a second administrator (returned).
    - An administrator account never holds an unblinded role (also a database constraint).
    Role, site and active-state changes are audit events with old and new values
    (``edc.audit``, from the account's history).
    """
    if not can(actor, Action.MANAGE_USERS) and not actor.is_superuser:
        raise PermissionDenied(_("Only an administrator changes accounts."))
    before = (User.objects.select_for_update().filter(pk=user.pk).first()
              if user.pk is not None else None)
    proposed = {name: getattr(user, name) for name in ("role", "is_active", "is_staff",
                                                       "is_superuser")}
    if sites is not None:
        proposed["sites"] = sites
    if groups is not None:
        proposed["groups"] = groups
    refusals = account_change_refusals(actor=actor, before=before, proposed=proposed)
    if refusals:
        raise ValidationError(refusals)
    current_role = before.role if before is not None else ""
    requested_role = None
    if user.role in UNBLINDED_ROLES and user.role != current_role:
        requested_role, user.role = user.role, current_role
    audited_save(user, user=actor, exclude=["password"])
    if sites is not None:
        user.sites.set(sites)
    if groups is not None:
        user.groups.set(groups)
    if requested_role is None:
        return None
    return role_grant_request(user=user, role=requested_role, requester=actor)


@transaction.atomic
def role_grant_request(*, user: User, role: str, requester: User) -> RoleGrantRequest:
    """Ask for ``user`` to be given an unblinded ``role``; nothing changes until a second
    administrator approves (:func:`role_grant_decide`). Audited."""
    if not can(requester, Action.MANAGE_USERS) and not requester.is_superuser:
        raise PermissionDenied(_("Only an administrator asks for an unblinded role."))
    if role not in UNBLINDED_ROLES:
        raise ValidationError(_("Only an unblinded role needs a second administrator."))
    if requester.pk == user.pk:
        raise ValidationError(_("Nobody asks for a role for themself."))
    user = User.objects.select_for_update().get(pk=user.pk)
    if is_administrator(user):
        raise ValidationError(_("An administrator account is never given an unblinded role."))
    if user.role_grant_requests.filter(status=RoleGrantStatus.PENDING).exists():
        raise ValidationError(_("%(user)s already has an unblinded role waiting for approval.")
                              % {"user": user.get_username()})
    grant = RoleGrantRequest(user=user, role=role, requested_by=requester)
    grant.full_clean()
    grant.save()
    audit_event(action=AuditAction.ROLE_GRANT_REQUESTED, user=requester, obj=user,
                detail={"username": user.get_username(), "request": grant.pk,
                        "from": user.role, "to": role})
    return grant


@transaction.atomic
def role_grant_decide(*, grant: RoleGrantRequest, approver: User,
                      approve: bool) -> RoleGrantRequest:
    """A second administrator approves (the role is given) or refuses a pending request.
    Neither the requester nor the person concerned decides; an administrator account is never
    given the role. Audited, with requester, approver and both times."""
    if not can(approver, Action.MANAGE_USERS) and not approver.is_superuser:
        raise PermissionDenied(_("Only an administrator decides on an unblinded role."))
    grant = (RoleGrantRequest.objects.select_for_update().select_related("requested_by")
             .get(pk=grant.pk))
    if grant.status != RoleGrantStatus.PENDING:
        raise ValidationError(_("This request was already decided."))
    if approver.pk == grant.requested_by_id:
        raise ValidationError(_("The administrator who asked for an unblinded role cannot "
                                "decide on it: a second administrator approves or refuses."))
    if approver.pk == grant.user_id:
        raise ValidationError(_("Nobody decides on their own role."))
    if not independent_administrators(grant.requested_by, approver):
        raise ValidationError(_(
            "%(approver)s cannot decide on a request by %(requester)s: one of them created the "
            "other's account or gave it administrator rights. An administrator independent of "
            "%(requester)s decides.") % {"approver": approver.get_username(),
                                         "requester": grant.requested_by.get_username()})
    user = User.objects.select_for_update().get(pk=grant.user_id)
    if approve:
        if not user.password_chosen_by_holder:
            raise ValidationError(_(
                "%(user)s still has a password an administrator set: they sign in and choose "
                "their own (Change password, /accounts/password/) before an unblinded role is "
                "approved.") % {"user": user.get_username()})
        if is_administrator(user):
            raise ValidationError(_("%(user)s is an administrator account, which is never "
                                    "given an unblinded role.") % {"user": user.get_username()})
        user.role = grant.role
        audited_save(user, user=approver, exclude=["password"])
    grant.status = RoleGrantStatus.APPROVED if approve else RoleGrantStatus.REFUSED
    grant.decided_by = approver
    grant.decided_at = timezone.now()
    grant.full_clean()
    grant.save()
    audit_event(action=(AuditAction.ROLE_GRANT_APPROVED if approve
                        else AuditAction.ROLE_GRANT_REFUSED),
                user=approver, obj=user,
                detail={"username": user.get_username(), "request": grant.pk,
                        "role": grant.role,
                        "requested_by": grant.requested_by.get_username(),
                        "requested_at": grant.requested_at.isoformat()})
    return grant


def mail_send(*, subject: str, body: str, recipients: list[str]) -> bool:
    """Send a notification. A mail server that is down is logged, never shown to the user as
    an error: the data were saved."""
    try:
        send_mail(subject, body, None, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not send %r to %s", subject, recipients)
        return False
    return True


# --- The reader's language ----------------------------------------------------------------


@transaction.atomic
def user_language_set(*, user: User, language: str) -> None:
    """Set the language a person reads the EDC in (their own choice, never an
    administrator's): "" falls back to the browser's. Kept in the account's history."""
    if language and not language_code(language):
        raise ValidationError({"language": _("%(language)s is not a language of the EDC.")
                               % {"language": language}})
    if user.language == language:
        return
    user.language = language
    audited_save(user, user=user, exclude=["password"], constraints={"language"},
                 update_fields=["language"])

