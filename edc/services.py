"""Writes to the study-wide core."""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from edc.models import JobRun

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
