"""Check the audit trail's tamper evidence: recompute every hash chain from the tables' current
contents and check that every audit table still refuses UPDATE and DELETE (21 CFR 11.10(e));
with ``--tips FILE``, that every chain tip recorded outside the database is still there
(``edc.audit_tips``). Exit status 1 when anything is broken."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from edc.audit import audit_verify
from edc.audit_tips import tips_check


class Command(BaseCommand):
    help = ("Verify the audit trail: every history row and audit event unchanged, in its "
            "chain, and every audit table append-only.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--tips", metavar="FILE",
            help="also check every chain tip recorded in FILE (manage.py audit_tips, the "
                 "periodic job): a rewritten or cut tail shows there")

    def handle(self, *args, database: str, verbosity: int, tips: str | None = None,
               **options) -> None:
        report = audit_verify(using=database)
        if tips:
            report.breaks.extend(tips_check(path=tips, using=database))
        for broken in report.breaks:
            self.stdout.write(str(broken))
        for table in report.unprotected:
            self.stdout.write(f"{table}: append-only trigger missing or disabled")
        if verbosity >= 2:
            # The chain tips, to be kept elsewhere: a rewritten tail then shows.
            for table, tip in sorted(report.tips.items()):
                self.stdout.write(f"tip {table} {tip}")
        if not report.intact:
            raise CommandError(
                f"audit trail broken: {len(report.breaks)} table(s) with a broken chain, "
                f"{len(report.unprotected)} table(s) not append-only"
            )
        self.stdout.write(f"audit trail intact: {report.rows} rows in {report.tables} tables")
