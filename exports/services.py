"""Exports as background jobs: a data manager asks for one (``exports.tasks.export_start``),
a Celery worker runs it (``export_execute``), the page shows its progress and offers the zip
when done.

Progress goes through the cache, not the database: the export reads in a read-only snapshot
transaction, and a progress row written there would be invisible to the page until the end.
"""

import logging

from django.core.cache import cache
from django.utils import timezone

from edc import bounds
from edc.models import ExportRun, ExportStatus
from exports import package
from exports.dictionary import Profile

logger = logging.getLogger(__name__)


def _progress_key(pk: int) -> str:
    return f"export-progress:{pk}"


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
