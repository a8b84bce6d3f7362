"""Background jobs about CRF data. Thin: each calls a service."""

from celery import shared_task

from forms.checks.runner import checks_rerun


@shared_task(name="forms.tasks.edit_checks_rerun")
def edit_checks_rerun() -> dict[str, int]:
    """Re-run every edit check over the database; returns counts opened and closed."""
    report = checks_rerun()
    return {"subjects": report.subjects, "opened": sum(report.opened.values()),
            "closed": sum(report.closed.values())}
