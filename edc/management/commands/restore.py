"""Restore a backup (``manage.py backup``) into an empty database, then check it: the audit
tables' row counts against the manifest, every chain recomputed and matched with the tips the
backup carries (``edc.backup``). Exit status 1 on any difference."""

import os

from django.core.management.base import BaseCommand, CommandError

from edc.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = "Restore a backup directory into an EMPTY database and verify the audit trail."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""),
                            help="the empty database to restore into (default: DATABASE_URL)")

    def handle(self, *args, directory: str, database_url: str, **options) -> None:
        if not database_url:
            raise CommandError("name the empty database to restore into: --database-url")
        try:
            report = backup_restore(directory=directory, database_url=database_url)
        except BackupError as error:
            raise CommandError(str(error)) from None
        for problem in report.problems:
            self.stdout.write(problem)
        if report.problems:
            raise CommandError(f"restored, but {len(report.problems)} difference(s) from the "
                               f"backup: do not use this database")
        rows = sum(report.counts.values())
        self.stdout.write(f"restored {directory}: {rows} audit rows in {len(report.counts)} "
                          f"tables, as backed up; audit trail intact")
