"""Append the tip of every audit chain to the tips file (``AUDIT_TIPS_FILE``), as the periodic
job does; ``verify_audit --tips FILE`` checks them later (``edc.audit_tips``)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS

from edc.audit_tips import tips_record


class Command(BaseCommand):
    help = "Append the tip of every audit chain to the tips file, kept outside the database."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", default=None,
                            help=f"default: AUDIT_TIPS_FILE ({settings.AUDIT_TIPS_FILE})")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, file: str | None, database: str, **options) -> None:
        path = file or settings.AUDIT_TIPS_FILE
        line = tips_record(path=path, using=database)
        self.stdout.write(f"{len(line['tips'])} chain tips appended to {path}")
