"""Exports as background jobs: a data manager asks for one (``export_start``), a Celery worker
runs it (``export_execute``), the page shows its progress and offers the zip when done.

Progress goes through the cache, not the database: the export reads in a read-only snapshot
transaction, and a progress row written there would be invisible to the page until the end.
"""

import datetime as dt
import logging

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from edc import bounds
from edc.exports import package
from edc.exports.datasets import may_export
from edc.exports.dictionary import Profile
from edc.models import ExportRun, ExportStatus, User

logger = logging.getLogger(__name__)


def _progress_key(pk: int) -> str:
    return f"export-progress:{pk}"


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
    from edc.tasks import export_run

    transaction.on_commit(lambda: export_run.delay(run.pk))
    return run


def export_execute(run_pk: int) -> ExportRun:
    """Run a queued export; a failure is recorded on the run, never lost silently."""
    run = ExportRun.objects.select_related("requested_by").get(pk=run_pk)
    if run.status != ExportStatus.QUEUED:
        return run
    run.status, run.started_at = ExportStatus.RUNNING, timezone.now()
    run.save(update_fields=["status", "started_at"])
    request = package.ExportRequest(run.requested_by, tuple(run.formats), Profile(run.profile),
                                    run.as_of, run.language)

    def progress(done: int, total: int, label: str) -> None:
        cache.set(_progress_key(run.pk), (done, total, label), timeout=24 * 3600)

    try:
        result = package.build(request, package.export_path(run.pk), progress=progress)
    except Exception as error:
        logger.exception("export %s failed", run.pk)
        run.status = ExportStatus.FAILED
        run.error = bounds.cut(f"{type(error).__name__}: {error}")
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        return run
    run.status, run.finished_at = ExportStatus.DONE, timezone.now()
    run.step = run.steps
    run.data_cut, run.file_name = result.data_cut, result.path.name
    run.size, run.sha256 = result.size, result.sha256
    run.save(update_fields=["status", "finished_at", "step", "data_cut", "file_name", "size",
                            "sha256"])
    cache.delete(_progress_key(run.pk))
    return run


def export_progress(run: ExportRun) -> tuple[int, int, str]:
    """(steps done, steps, what it is working on) of a run."""
    if run.status == ExportStatus.RUNNING:
        cached = cache.get(_progress_key(run.pk))
        if cached:
            return tuple(cached)
    return run.step, run.steps, run.step_label
