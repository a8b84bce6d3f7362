"""Writes to the study-wide core."""

import datetime as dt
import logging
import smtplib

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import authenticate, logout
from django.core.mail import send_mail
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.transaction import TransactionManagementError
from django.http import HttpRequest
from django.utils import timezone

from edc.audit import audit_event
from edc.models import AuditAction, JobRun, User

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
                      prompt: str = "") -> bool:
    """Re-authentication for signatures, unblinding and password changes: the password is
    asked again, never taken from the session (21 CFR 11.200).

    Every prompt feeds the login lockout (django-axes, per username): a wrong password counts
    as a failed login and leaves a ``login_failed`` audit event naming the ``prompt``; a
    locked account is refused even with the right password; the attempt that reaches the limit
    locks the account, ends this session and is recorded (``account_locked``). The counter and
    the events must outlive whatever the caller does next, so this refuses to run inside a
    transaction that may roll back: callers check the password first, then open their
    transaction (views that ask for a password are ``non_atomic_requests``).
    """
    if _in_transaction_that_may_roll_back():
        raise TransactionManagementError(
            "password_confirms must run outside any transaction: a rollback would erase "
            "the failed attempt and the lockout counter."
        )
    request = request if request is not None else HttpRequest()
    confirmed = authenticate(request, username=user.get_username(), password=password,
                             prompt=prompt) is not None
    if confirmed and settings.AXES_RESET_ON_SUCCESS:
        AxesProxyHandler.reset_attempts(username=user.get_username())
    if getattr(request, "axes_locked_out", False) and getattr(request, "session", None):
        logout(request)
    return confirmed


@transaction.atomic
def user_password_set(*, user: User, password: str, actor: User) -> None:
    """Set a new password (already validated against the policy) and record who did it."""
    user.set_password(password)
    user._history_user = actor
    user.save(update_fields=["password"])
    audit_event(action=AuditAction.PASSWORD_CHANGED, user=actor, obj=user,
                detail={"username": user.get_username(), "own": actor.pk == user.pk})


def mail_send(*, subject: str, body: str, recipients: list[str]) -> bool:
    """Send a notification. A mail server that is down is logged, never shown to the user as
    an error: the data were saved."""
    try:
        send_mail(subject, body, None, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not send %r to %s", subject, recipients)
        return False
    return True
