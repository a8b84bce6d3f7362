"""Database roles (issue 19 item 4): the application connects as a role that owns nothing, so
it can neither erase history (TRUNCATE, DELETE, UPDATE) nor lift the append-only triggers
(ALTER TABLE ... DISABLE TRIGGER), while the product's normal work succeeds through it.
PostgreSQL only: SQLite has no roles."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from edc.models import AuditEvent
from visits.models import Subject

ROOT = Path(__file__).resolve().parent.parent
HISTORY = Subject.history.model._meta.db_table
EVENTS = AuditEvent._meta.db_table

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles"),
]


@pytest.fixture
def roles():
    """The two roles on the test database, named after it; ownership handed back after."""
    name = connection.settings_dict["NAME"][:40]
    owner, app = f"{name}_owner", f"{name}_app"
    superuser = connection.settings_dict["USER"]
    # As docker-compose's migrate service runs it: its own process, a superuser's URL.
    created = manage(superuser, "db_roles", "--owner", owner, "--app", app,
                     "--admin-url", url_as(superuser))
    assert created.returncode == 0, created.stdout + created.stderr
    yield owner, app
    with connection.cursor() as cursor:
        for role in (owner, app):
            cursor.execute(f'REASSIGN OWNED BY "{role}" TO "{superuser}"')
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


def as_role(role: str) -> psycopg.Connection:
    settings_dict = connection.settings_dict
    return psycopg.connect(dbname=settings_dict["NAME"], user=role,
                           host=settings_dict["HOST"] or None,
                           port=settings_dict["PORT"] or None, autocommit=True)


def url_as(role: str) -> str:
    settings_dict = connection.settings_dict
    return (f"postgres://{role}@{settings_dict['HOST'] or 'localhost'}:"
            f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")


def manage(role: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DATABASE_URL": url_as(role)}
    environment.pop("REDIS_URL", None)  # tasks in-process: the work is the database's
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, check=False, timeout=600)


def test_the_application_role_works_but_cannot_erase_or_unprotect_history(roles):
    owner, app = roles
    # Normal work through the application: a synthetic trial entered through the services
    # (accounts, subjects, forms, queries, signatures, their history and chain links).
    seeded = manage(app, "seed_trial", "--subjects", "2", "--seed", "1")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    verified = manage(app, "verify_audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert Subject.objects.count() >= 2 and AuditEvent.objects.exists()

    refusals = {
        f'TRUNCATE "{EVENTS}"': "permission denied",
        f'DELETE FROM "{EVENTS}"': "permission denied",  # noqa: S608
        f'UPDATE "{HISTORY}" SET history_change_reason = %s': "permission denied",  # noqa: S608
        f'ALTER TABLE "{EVENTS}" DISABLE TRIGGER edc_append_only': "must be owner",
        f'ALTER TABLE "{HISTORY}" DISABLE TRIGGER ALL': "must be owner",
        f'DROP TABLE "{EVENTS}"': "must be owner",
        "SET session_replication_role = replica": "permission denied",
        'CREATE TABLE "edc_shadow" (id int)': "permission denied",
    }
    with as_role(app) as database:
        for statement, message in refusals.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
                database.execute(statement, ["x"] if "%s" in statement else None)
        assert database.execute(f'SELECT count(*) FROM "{EVENTS}"').fetchone()[0] > 0  # noqa: S608

    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S')")
        assert cursor.fetchall() == [(owner,)]


def test_a_migrate_as_the_owner_grants_the_application_role_new_tables(roles, settings):
    owner, app = roles
    settings.DATABASE_APP_ROLE = app
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{owner}"')
        try:
            cursor.execute('CREATE TABLE "edc_later_table" (id int)')
            call_command("migrate", verbosity=0)  # post_migrate: the grants
        finally:
            cursor.execute("RESET ROLE")
    with as_role(app) as database:
        database.execute('INSERT INTO "edc_later_table" VALUES (1)')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            database.execute(f'DELETE FROM "{EVENTS}"')  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute('DROP TABLE "edc_later_table"')
