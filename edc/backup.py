"""Backup and restore (issue 19 item 6; checklist ER-03).

A backup is one directory:

- ``database.dump``: PostgreSQL's own ``pg_dump`` in its custom format (a consistent snapshot,
  restored with ``pg_restore``), or ``database.sqlite3``: SQLite's online backup API (a
  consistent copy while the demo keeps running);
- ``audit-tips.jsonl``: the chain tips file (``edc.audit_tips``), to which the backup first
  appends the tips as of this moment, so the backup carries what its restore must match;
- ``manifest.json``: when, which engine, the SHA-256 of each file, and the row count of every
  audit table (history tables, audit events, chain links) as of the backup.

:func:`backup_restore` writes a backup into an **empty** database only (nothing is merged or
overwritten), checks the files against the manifest first, and afterwards compares the row
counts of every audit table with the manifest and recomputes every chain (``audit_verify``)
against the tips the backup carries; any difference fails the restore loudly.
"""

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dj_database_url
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from edc.audit import AuditReport, audit_verify, chained_models
from edc.audit_tips import tips_check, tips_record
from edc.models import AuditChainLink

MANIFEST = "manifest.json"
TIPS = "audit-tips.jsonl"
DUMPS = {"postgresql": "database.dump", "sqlite": "database.sqlite3"}


class BackupError(Exception):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def audit_row_counts(using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Rows of every audit table that exists: each history table, the events, the links."""
    existing = set(connections[using].introspection.table_names())
    counts = {}
    for model in [*chained_models(), AuditChainLink]:
        table = model._meta.db_table
        if table in existing:
            counts[table] = model._base_manager.using(using).count()
    return dict(sorted(counts.items()))


def _pg_environment(settings_dict: dict) -> dict[str, str]:
    """libpq's variables for ``pg_dump``/``pg_restore``: the password never on a command line."""
    environment = {**os.environ, "PGDATABASE": str(settings_dict["NAME"])}
    for key, variable in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"),
                          ("PASSWORD", "PGPASSWORD")):
        if settings_dict.get(key):
            environment[variable] = str(settings_dict[key])
    return environment


def _run(command: list[str], environment: dict[str, str]) -> None:
    # pg_dump or pg_restore with arguments from the settings; no shell.
    result = subprocess.run(command, env=environment, capture_output=True, text=True,  # noqa: S603
                            check=False)
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")


def backup_create(*, directory: str | Path, using: str = DEFAULT_DB_ALIAS) -> dict:
    """Write a backup of database ``using`` into ``directory`` (created; must not hold a
    backup already). Returns the manifest."""
    directory = Path(directory)
    if (directory / MANIFEST).exists():
        raise BackupError(f"{directory} already holds a backup")
    directory.mkdir(parents=True, exist_ok=True)
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in DUMPS:
        raise BackupError(f"no backup for {vendor} databases")
    tips_record(path=settings.AUDIT_TIPS_FILE, using=using)
    counts = audit_row_counts(using)
    dump = directory / DUMPS[vendor]
    if vendor == "postgresql":
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dump)],
             _pg_environment(connection.settings_dict))
    else:
        connection.ensure_connection()
        target = sqlite3.connect(dump)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
    shutil.copyfile(settings.AUDIT_TIPS_FILE, directory / TIPS)
    manifest = {
        "created": timezone.now().isoformat(),
        "engine": vendor,
        "files": {name: _sha256(directory / name) for name in (DUMPS[vendor], TIPS)},
        "audit_rows": counts,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass
class RestoreReport:
    manifest: dict
    counts: dict[str, int] = field(default_factory=dict)
    verification: AuditReport | None = None

    @property
    def problems(self) -> list[str]:
        found = []
        expected = self.manifest["audit_rows"]
        for table in sorted(set(expected) | set(self.counts)):
            if expected.get(table) != self.counts.get(table):
                found.append(f"{table}: {self.counts.get(table)} rows restored, "
                             f"{expected.get(table)} in the backup")
        if self.verification is not None:
            found += [str(problem) for problem in self.verification.breaks]
            found += [f"{table}: append-only trigger missing or disabled"
                      for table in self.verification.unprotected]
        return found


def connection_alias_for(database_url: str) -> str:
    """A connection to ``database_url`` under a new alias, with Django's defaults."""
    alias = "edc_restore_" + hashlib.sha256(database_url.encode()).hexdigest()[:12]
    if alias not in connections.settings:
        configured = connections.configure_settings(
            {DEFAULT_DB_ALIAS: dj_database_url.parse(database_url)})
        connections.settings[alias] = configured[DEFAULT_DB_ALIAS]
    return alias


def backup_restore(*, directory: str | Path, database_url: str) -> RestoreReport:
    """Restore the backup in ``directory`` into the empty database at ``database_url``, then
    compare its audit tables with the manifest and verify every chain against the tips."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{directory}: no readable {MANIFEST} ({error})") from None
    for name, digest in manifest["files"].items():
        if not (directory / name).exists() or _sha256(directory / name) != digest:
            raise BackupError(f"{directory / name}: missing or not the file backed up "
                              f"(SHA-256 differs from the manifest)")
    alias = connection_alias_for(database_url)
    connection = connections[alias]
    if connection.vendor != manifest["engine"]:
        raise BackupError(f"a {manifest['engine']} backup restores into {manifest['engine']}, "
                          f"not {connection.vendor}")
    try:
        if connection.introspection.table_names():
            raise BackupError("the target database is not empty: a backup is restored into "
                              "an empty database only, nothing is merged or overwritten")
        dump = directory / DUMPS[manifest["engine"]]
        if connection.vendor == "postgresql":
            connection.close()
            _run(["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction",
                  "--dbname", str(connection.settings_dict["NAME"]), str(dump)],
                 _pg_environment(connection.settings_dict))
        else:
            connection.ensure_connection()
            source = sqlite3.connect(dump)
            try:
                source.backup(connection.connection)
            finally:
                source.close()
        report = RestoreReport(manifest=manifest, counts=audit_row_counts(alias))
        report.verification = audit_verify(using=alias)
        report.verification.breaks += tips_check(path=directory / TIPS, using=alias)
        return report
    finally:
        connection.close()


def backup_directory_name(now: dt.datetime | None = None) -> str:
    return (now or timezone.now()).astimezone(dt.UTC).strftime("edc-backup-%Y%m%dT%H%M%SZ")
