"""Study-wide background jobs. Tasks are thin: they call services and return plain data."""

from celery import shared_task

from edc.services import job_heartbeat


@shared_task(name="edc.tasks.heartbeat")
def heartbeat() -> int:
    """Record that a worker picked up a job, so data managers can see the queue is alive."""
    request = heartbeat.request
    worker = "in-process" if request.is_eager else (request.hostname or "unknown worker")
    return job_heartbeat(worker=worker).pk

