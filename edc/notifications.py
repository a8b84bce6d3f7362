"""Reminders, sent exactly once: by e-mail and in the web application.

A job decides *what* is due (``visits.reminders``, ``forms.reminders``); :func:`notify`
delivers it. Each reminder item is claimed by inserting a :class:`NotificationLog` row whose
(kind, key, recipient) is unique, in the same transaction as the in-app notification and the
mail. A second run finds the row and sends nothing; a second worker racing the first blocks on
the unique index until the first commits (PostgreSQL), then fails its insert and sends nothing.
If the mail server refuses, the transaction rolls back, the claim is released and the Celery
task's retry sends it later. Mails never carry the treatment arm: bodies are built only from
the lines the jobs give, which never read the randomization list.
"""

import datetime as dt
import logging
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from edc import bounds
from edc.i18n import Text, reader_language
from edc.models import JobRun, Notification, NotificationLog, User

logger = logging.getLogger(__name__)

# What a broken broker raises when a task is queued (kombu wraps most connection errors).
try:
    from kombu.exceptions import OperationalError as _KombuOperationalError
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    BROKER_ERRORS: tuple[type[BaseException], ...] = (
        _KombuOperationalError, _RedisConnectionError, _RedisTimeoutError, ConnectionError,
    )
except ImportError:  # pragma: no cover
    BROKER_ERRORS = (ConnectionError,)

# A mail server that is down or refuses: the task retries with backoff.
MAIL_ERRORS = (smtplib.SMTPException, OSError)


@dataclass(frozen=True)
class Item:
    """One thing to remind of, claimed once per recipient: ``kind`` and ``key`` name it
    (e.g. ``sae-reminder``, ``sae-reminder:42:4h``), ``line`` says it in the mail."""

    kind: str
    key: str
    # Rendered for each recipient in their language (``edc.i18n.Text``) or plain text.
    line: "str | Text"


@dataclass
class Outcome:
    """What a job run did (or, dry, would do)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def summary(self) -> str:
        return f"sent {self.sent}, already sent {self.skipped}, failed {self.failed}"


def recipient_of(*, user: User | None, email: str) -> str:
    return f"user:{user.pk}" if user is not None else email.strip().lower()


def _claim(*, item: Item, recipient: str, user: User | None, now: dt.datetime) -> bool:
    try:
        with transaction.atomic():
            NotificationLog.objects.create(kind=item.kind, key=item.key, recipient=recipient,
                                           user=user, created_at=now)
    except IntegrityError:
        return False
    return True


def notify(
    *,
    outcome: Outcome,
    items: Iterable[Item],
    title: "str | Text",
    intro: "str | Text" = "",
    link: str = "",
    user: User | None = None,
    email: str = "",
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Deliver to one recipient (a user, or a bare address such as the sponsor's) the items
    they have not had yet, as one mail and one in-app notification. Nothing is sent when every
    item was sent before. Title, introduction and lines are rendered in the recipient's
    language (``edc.i18n.reader_language``; a bare address gets ``LANGUAGE_CODE``), not in
    the language of whoever or whatever triggered the job."""
    now = now or timezone.now()
    items = list(items)
    recipient = recipient_of(user=user, email=email)
    address = (user.email if user is not None else email).strip()
    if not items or (user is None and not address):
        return
    if dry_run:
        done = set(NotificationLog.objects.filter(
            recipient=recipient, key__in=[i.key for i in items]
        ).values_list("kind", "key"))
        new = [i for i in items if (i.kind, i.key) not in done]
        outcome.skipped += len(items) - len(new)
        if new:
            outcome.sent += len(new)
            with translation.override(reader_language(user)):
                outcome.lines.append(f"would send to {recipient} <{address or 'in-app only'}>: "
                                     f"{title}")
                outcome.lines.extend(f"  - {i.line}" for i in new)
        return
    try:
        with transaction.atomic():
            new = [i for i in items if _claim(item=i, recipient=recipient, user=user, now=now)]
            outcome.skipped += len(items) - len(new)
            if not new:
                return
            with translation.override(reader_language(user)):
                title = str(title)
                body = message_body(intro=str(intro), lines=[str(i.line) for i in new],
                                    link=link)
            if user is not None:
                Notification.objects.create(user=user, title=bounds.cut(title, 200),
                                            body=bounds.cut(body), link=link,
                                            created_at=now)
            if address:
                send_mail(title, body, None, [address], fail_silently=False)
    except MAIL_ERRORS as exc:
        logger.exception("Could not send %r to %s; it will be retried", title, recipient)
        outcome.failed += len(items)
        outcome.errors.append(exc)
        return
    outcome.sent += len(new)
    outcome.lines.append(f"sent to {recipient}: {title}")


def message_body(*, intro: str, lines: list[str], link: str = "") -> str:
    """The text of a reminder: an introduction, one line per item, where to act. Built only
    from what the job passes in, which never includes the treatment arm."""
    parts = [intro] if intro else []
    parts.append("\n".join(f"- {line}" for line in lines))
    if link:
        if link.startswith("/"):
            link = settings.SITE_URL.rstrip("/") + link
        parts.append(gettext("Open: %(link)s") % {"link": link})
    parts.append(f"-- {settings.TRIAL_NAME}")
    return "\n\n".join(parts)


def job_run(
    name: str, job: Callable[..., Outcome], *, worker: str, dry_run: bool = False,
    now: dt.datetime | None = None,
) -> Outcome:
    """Run a reminder job and record it in :class:`JobRun`. A mail that could not be sent
    fails the run and is raised again, so the Celery task retries (with backoff); items
    already sent are in the log and are not sent twice."""
    now = now or timezone.now()
    run = JobRun.objects.create(name=name, started_at=timezone.now(), worker=worker)
    try:
        outcome = job(now=now, dry_run=dry_run)
    except Exception as exc:
        run.finished_at = timezone.now()
        run.detail = bounds.cut(f"error: {exc!r}")
        run.save(update_fields=["finished_at", "detail"])
        raise
    run.finished_at = timezone.now()
    run.succeeded = not outcome.errors
    run.detail = bounds.cut(("dry run: " if dry_run else "") + outcome.summary())
    run.save(update_fields=["finished_at", "succeeded", "detail"])
    if outcome.errors:
        raise outcome.errors[0]
    return outcome


def task_enqueue(task, *args) -> bool:
    """Queue a Celery task; a broker that is down is logged, never raised: the data were
    saved, and the periodic jobs catch up with what this task would have done."""
    try:
        task.delay(*args)
    except BROKER_ERRORS:
        logger.exception("Could not queue %s%r: the broker is unavailable", task.name, args)
        return False
    return True


def worker_name(request) -> str:
    return "in-process" if request.is_eager else (request.hostname or "unknown worker")


# --- In the web application --------------------------------------------------------------------


def notifications_for(user: User):
    return Notification.objects.filter(user=user)


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


@transaction.atomic
def notifications_mark_read(*, user: User, pk: int | None = None) -> int:
    """Mark one of the user's notifications read, or all of them without ``pk``. Only the
    user's own notifications are touched."""
    unread = Notification.objects.select_for_update().filter(user=user, read_at__isnull=True)
    if pk is not None:
        unread = unread.filter(pk=pk)
    now = timezone.now()
    marked = 0
    for notification in unread:
        notification.read_at = now
        notification.save(update_fields=["read_at"])
        marked += 1
    return marked
