"""Back up the database with the audit chain tips (``edc.backup``): PostgreSQL with
``pg_dump --format=custom``, SQLite with its online backup API."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from edc.backup import BackupError, backup_create, backup_directory_name


class Command(BaseCommand):
    help = ("Back up the database, the audit chain tips and a manifest (checksums, audit row "
            "counts) into a new directory under BACKUP_DIR (or --output).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", default=None,
                            help="the backup's directory (default: a new one under "
                                 "BACKUP_DIR named by the time)")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, output: str | None, database: str, **options) -> None:
        directory = Path(output) if output else Path(settings.BACKUP_DIR) / backup_directory_name()
        try:
            manifest = backup_create(directory=directory, using=database)
        except BackupError as error:
            raise CommandError(str(error)) from None
        rows = sum(manifest["audit_rows"].values())
        self.stdout.write(f"backup written to {directory} ({manifest['engine']}, {rows} audit "
                          f"rows in {len(manifest['audit_rows'])} tables)")
