"""Backup and restore (issue 19 item 6; checklist ER-03): a seeded trial backed up and restored
into an empty database has the same audit rows, and its audit trail verifies in a process of
its own against the tips the backup carries. Runs on SQLite (online backup API) and on
PostgreSQL (pg_dump custom format, pg_restore)."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from edc.audit import audit_verify
from edc.backup import audit_row_counts

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def empty_database(tmp_path):
    """The URL of an empty database of the same engine."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    settings_dict = connection.settings_dict
    name = f"{settings_dict['NAME']}_restored"[:63]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    user = settings_dict["USER"] + (f":{settings_dict['PASSWORD']}"
                                    if settings_dict.get("PASSWORD") else "")
    yield (f"postgres://{user}@{settings_dict['HOST'] or 'localhost'}:"
           f"{settings_dict['PORT'] or 5432}/{name}")
    from django.db import connections

    for alias in list(connections.settings):
        if alias.startswith("edc_restore_"):
            connections[alias].close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a process of its own, its database the restored one: as in a drill."""
    environment = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, check=False, timeout=600)


def test_a_seeded_trial_round_trips_through_backup_and_restore(tmp_path, settings,
                                                                empty_database):
    settings.AUDIT_TIPS_FILE = tmp_path / "tips" / "audit-tips.jsonl"
    call_command("seed_trial", "--subjects", "3", "--seed", "1", stdout=StringIO())
    counts, verified = audit_row_counts(), audit_verify()
    assert verified.intact and verified.rows > 100

    out = StringIO()
    call_command("backup", "--output", str(tmp_path / "backup"), stdout=out)
    assert f"backup written to {tmp_path / 'backup'}" in out.getvalue()
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["audit_rows"] == counts

    restored = manage(empty_database, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "as backed up; audit trail intact" in restored.stdout
    result = manage(empty_database, "verify_audit", "--tips",
                    str(tmp_path / "backup" / "audit-tips.jsonl"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"audit trail intact: {verified.rows} rows in {verified.tables} tables"
            in result.stdout)

    again = manage(empty_database, "restore", str(tmp_path / "backup"))
    assert again.returncode != 0 and "target database is not empty" in again.stderr


def test_a_backup_file_that_changed_is_not_restored(tmp_path, settings, empty_database, site):
    settings.AUDIT_TIPS_FILE = tmp_path / "audit-tips.jsonl"
    call_command("backup", "--output", str(tmp_path / "backup"), stdout=StringIO())
    with (tmp_path / "backup" / "audit-tips.jsonl").open("a") as tips:
        tips.write("\n")
    with pytest.raises(CommandError, match="SHA-256 differs from the manifest"):
        call_command("restore", str(tmp_path / "backup"), "--database-url", empty_database,
                     stdout=StringIO())
    with pytest.raises(CommandError, match="already holds a backup"):
        call_command("backup", "--output", str(tmp_path / "backup"), stdout=StringIO())
