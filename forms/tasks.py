"""Background jobs about CRF data. Thin: each calls a service."""

from smtplib import SMTPException

from celery import shared_task
from django.db import transaction

from edc.notifications import job_run, task_enqueue, worker_name
from forms import reminders
from forms.models import AdverseEvent
from forms.quality.checks.runner import checks_rerun

SAE_NOTIFY = "sae-notify"
SAE_REMINDERS = "sae-reminders"
QUERY_REMINDERS = "query-reminders"
# A mail server that is down: retried with exponential backoff (1, 2, 4, ... seconds, jittered).
MAIL_RETRY = {"autoretry_for": (SMTPException, OSError), "retry_backoff": True,
              "max_retries": 5}


@shared_task(name="forms.tasks.edit_checks_rerun")
def edit_checks_rerun() -> dict[str, int]:
    """Re-run every edit check over the database; returns counts opened and closed."""
    report = checks_rerun()
    return {"subjects": report.subjects, "opened": sum(report.opened.values()),
            "closed": sum(report.closed.values())}


@shared_task(name="forms.tasks.sae_notify", **MAIL_RETRY)
def sae_notify(ae_id: int) -> str:
    """Tell the sponsor and the data managers of a serious adverse event just saved."""
    def job(*, now, dry_run):
        return reminders.sae_notify_initial(ae_id=ae_id, now=now, dry_run=dry_run)

    return job_run(SAE_NOTIFY, job, worker=worker_name(sae_notify.request)).summary()


@shared_task(name="forms.tasks.sae_reminders", **MAIL_RETRY)
def sae_reminders() -> str:
    """Serious adverse events: catch-up notices, reminders before, escalation after 24 h."""
    return job_run(SAE_REMINDERS, reminders.sae_reminders_send,
                   worker=worker_name(sae_reminders.request)).summary()


@shared_task(name="forms.tasks.query_reminders", **MAIL_RETRY)
def query_reminders() -> str:
    """Open queries to the site, answered queries to their raiser, once they have aged."""
    return job_run(QUERY_REMINDERS, reminders.query_reminders_send,
                   worker=worker_name(query_reminders.request)).summary()


def sae_saved(crf) -> None:
    """Called by ``crf_save`` after every save: a serious event queues the immediate notice
    once the transaction commits. A broker that is down is logged, never raised (the data are
    saved); the periodic job sends the notice later."""
    if not isinstance(crf, AdverseEvent) or not crf.is_serious:
        return
    ae_id = crf.pk
    transaction.on_commit(lambda: task_enqueue(sae_notify, ae_id), robust=True)
