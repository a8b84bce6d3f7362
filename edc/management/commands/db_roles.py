"""Create the PostgreSQL owner and application roles and their privileges (``edc.db_roles``).
Run once, as a superuser, on the application's database; ``migrate`` then runs as the owner
and the application connects as the application role."""

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from edc.backup import connection_alias_for
from edc.db_roles import db_roles_create


class Command(BaseCommand):
    help = ("Create the owner role (migrations) and the application role (owns nothing, cannot "
            "change or erase history and audit tables); give every object to the owner.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--owner", default="edc_owner")
        parser.add_argument("--app", default="edc_app")
        parser.add_argument("--owner-password-env", default="DATABASE_OWNER_PASSWORD",
                            help="environment variable holding the owner's password")
        parser.add_argument("--app-password-env", default="DATABASE_APP_PASSWORD",
                            help="environment variable holding the application's password")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--admin-url", default=os.environ.get("DATABASE_ADMIN_URL", ""),
                            help="connect as this superuser instead (default: "
                                 "DATABASE_ADMIN_URL, else the --database connection)")

    def handle(self, *args, owner: str, app: str, owner_password_env: str,
               app_password_env: str, database: str, admin_url: str, **options) -> None:
        if admin_url:
            database = connection_alias_for(admin_url)
        if connections[database].vendor != "postgresql":
            raise CommandError("database roles are for PostgreSQL; SQLite has none")
        try:
            db_roles_create(owner=owner, app=app,
                            owner_password=os.environ.get(owner_password_env) or None,
                            app_password=os.environ.get(app_password_env) or None,
                            using=database)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"roles ready: {owner} owns the database, {app} connects to it")
