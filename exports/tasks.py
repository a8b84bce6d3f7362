"""The exports' background job: a data manager's request is recorded and queued
(``export_start``), a worker runs it (``export_run``, which calls ``services.export_execute``).
The task keeps its historical name, so queued messages and running workers still match."""

import datetime as dt

from celery import shared_task
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext

from edc.models import ExportRun, User
from exports import package
from exports.datasets import may_export
from exports.dictionary import Profile
from exports.services import export_execute


@shared_task(name="edc.tasks.export_run")
def export_run(run_pk: int) -> str:
    """Run one queued dataset export; returns its final status."""
    return export_execute(run_pk).status


def export_start(*, user: User, formats: list[str], profile: Profile,
                 as_of: dt.datetime | None = None, language: str = "en") -> ExportRun:
    """Record an export request and queue it for a worker (after the commit)."""
    if not may_export(user, profile):
        raise PermissionDenied(gettext("Your role does not allow this export."))
    if (error := package.as_of_error(as_of)) is not None:
        raise ValidationError({"as_of": error})
    request = package.ExportRequest(user, tuple(formats), profile, as_of, language)
    run = ExportRun.objects.create(
        requested_by=user, formats=list(request.formats), profile=str(profile), as_of=as_of,
        language=language, steps=package.steps(request),
    )
    transaction.on_commit(lambda: export_run.delay(run.pk))
    return run
