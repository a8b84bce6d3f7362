"""Background jobs about visits. Thin: each calls a service and records a JobRun."""

from smtplib import SMTPException

from celery import shared_task

from edc.notifications import job_run, worker_name
from visits.reminders import visit_reminders_send

VISIT_REMINDERS = "visit-reminders"


@shared_task(name="visits.tasks.visit_reminders", autoretry_for=(SMTPException, OSError),
             retry_backoff=True, max_retries=5)
def visit_reminders() -> str:
    """The daily digest of visits due, closing or overdue, to each site staff member."""
    return job_run(VISIT_REMINDERS, visit_reminders_send,
                   worker=worker_name(visit_reminders.request)).summary()
