"""Run a background job now, e.g. ``manage.py run_job sae-reminders --dry-run``."""

from django.core.management.base import BaseCommand, CommandError

from edc.notifications import job_run
from edc.services import job_heartbeat
from forms import reminders as form_reminders
from visits.reminders import visit_reminders_send

JOBS = {
    "visit-reminders": visit_reminders_send,
    "sae-reminders": form_reminders.sae_reminders_send,
    "query-reminders": form_reminders.query_reminders_send,
}


class Command(BaseCommand):
    help = "Run a reminder job (or the heartbeat) now; --dry-run prints what would be sent."

    def add_arguments(self, parser):
        parser.add_argument("job", choices=[*JOBS, "heartbeat"])
        parser.add_argument("--dry-run", action="store_true",
                            help="Print what would be sent; send and record nothing.")

    def handle(self, *args, job: str, dry_run: bool, **options):
        if job == "heartbeat":
            if not dry_run:
                job_heartbeat(worker="manage.py run_job")
            self.stdout.write("heartbeat recorded" if not dry_run else "would record heartbeat")
            return
        try:
            outcome = job_run(job, JOBS[job], worker="manage.py run_job", dry_run=dry_run)
        except OSError as exc:
            raise CommandError(f"{job}: mail could not be sent ({exc}); run it again") from exc
        for line in outcome.lines:
            self.stdout.write(line)
        self.stdout.write(f"{job}: {'dry run, ' if dry_run else ''}{outcome.summary()}")
