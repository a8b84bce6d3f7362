"""Run every edit check over all saved data (after a check changed), opening and closing
system queries idempotently, and report what changed."""

from django.core.management.base import BaseCommand

from forms.quality.checks.runner import checks_rerun


class Command(BaseCommand):
    help = "Run every edit check over all subjects and reconcile the system queries."

    def add_arguments(self, parser):
        parser.add_argument("--subject", type=int, action="append", dest="subjects",
                            help="Only this subject (database id); may be repeated.")

    def handle(self, *args, subjects=None, **options):
        report = checks_rerun(subject_ids=subjects)
        for line in report.lines():
            self.stdout.write(line)
