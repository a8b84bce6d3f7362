"""Writes to the study-wide core."""

import datetime as dt
import logging
import smtplib

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from edc.models import JobRun, User

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


def password_confirms(user: User, password: str, request=None) -> bool:
    """Re-authentication for signatures and unblinding: the password is asked again, never
    taken from the session (21 CFR 11.200). With the request, wrong passwords count towards
    the account lockout like failed logins."""
    return authenticate(request, username=user.get_username(), password=password) is not None


def mail_send(*, subject: str, body: str, recipients: list[str]) -> bool:
    """Send a notification. A mail server that is down is logged, never shown to the user as
    an error: the data were saved."""
    try:
        send_mail(subject, body, None, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not send %r to %s", subject, recipients)
        return False
    return True
