"""Chain tips kept outside the database (issue 19 item 5): whoever can lift the triggers can
cut or rewrite the tail of a chain together with its links and head, and the chain still
verifies; the tips recorded in a file elsewhere show it."""

import json
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from edc import audit, tasks
from edc.audit_tips import tips_check, tips_record
from edc.models import AuditChainHead, AuditChainLink, AuditRowLayout
from tests.factories import screened_subject
from visits import services
from visits.models import Subject

HISTORY = Subject.history.model
TABLE = HISTORY._meta.db_table


@contextmanager
def every_trigger_lifted():
    """What an attacker holding the database owner's rights does: every audit trigger off."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP TRIGGER "{name}"')
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")
    if connection.vendor != "postgresql":
        audit.audit_install()
    assert audit.unprotected_tables() == []


def verify(*args) -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as error:
        return False, out.getvalue() + str(error)
    return True, out.getvalue()


@pytest.fixture
def subject(site, nurse):
    subject = screened_subject(site=site, user=nurse)
    services.subject_set_status(subject=subject, status="withdrawn", user=nurse,
                                reason="Withdrew consent")
    return subject


def last_link() -> AuditChainLink:
    return AuditChainLink.objects.filter(table=TABLE).order_by("-sequence").first()


def test_the_job_appends_every_chain_tip_and_an_untouched_trail_verifies(
    subject, tmp_path, settings
):
    settings.AUDIT_TIPS_FILE = tmp_path / "tips" / "audit-tips.jsonl"
    assert tasks.audit_tips.apply().get() > 3  # the task, run here
    call_command("audit_tips", stdout=StringIO())
    lines = settings.AUDIT_TIPS_FILE.read_text().splitlines()
    assert len(lines) == 2
    tips = json.loads(lines[-1])["tips"]
    link = last_link()
    assert tips[TABLE] == [link.sequence, link.row_hash]
    assert set(tips) == set(AuditChainHead.objects.filter(last_sequence__gt=0)
                            .values_list("table", flat=True))
    ok, output = verify("--tips", str(settings.AUDIT_TIPS_FILE))
    assert ok, output


def test_the_beat_schedule_records_the_tips(settings):
    assert settings.CELERY_BEAT_SCHEDULE["audit-tips"]["task"] == "edc.tasks.audit_tips"


def test_a_deleted_last_row_with_its_link_and_head_shows_only_against_the_tips(
    subject, tmp_path
):
    tips = tmp_path / "tips.jsonl"
    tips_record(path=tips)
    link = last_link()
    with every_trigger_lifted() as cursor:
        cursor.execute(f'DELETE FROM "{TABLE}" WHERE history_id = %s',  # noqa: S608
                       [link.history_id])
        cursor.execute('DELETE FROM "edc_auditchainlink" WHERE id = %s', [link.pk])
        cursor.execute('UPDATE "edc_auditchainhead" SET last_sequence = %s, last_hash = %s '
                       'WHERE "table" = %s', [link.sequence - 1, link.prev_hash, TABLE])
    ok, output = verify()
    assert ok, output  # what the database alone can tell
    ok, output = verify("--tips", str(tips))
    assert not ok
    assert f"{TABLE}: -: recorded tip missing (link {link.sequence}, recorded at" in output
    assert "the chain was cut" in output


def test_a_rewritten_tail_shows_against_tips_recorded_before_and_after_it(subject, tmp_path):
    tips = tmp_path / "tips.jsonl"
    tips_record(path=tips)
    link = last_link()
    columns = AuditRowLayout.objects.get(pk=link.layout_id).columns
    with every_trigger_lifted() as cursor:
        cursor.execute(f'UPDATE "{TABLE}" SET history_change_reason = %s '  # noqa: S608
                       "WHERE history_id = %s", ["Moved away", link.history_id])
        row = audit._rows(HISTORY, [link.history_id], audit._columns(HISTORY),
                          "default")[link.history_id]
        forged = audit.row_hash(table=TABLE, sequence=link.sequence, prev_hash=link.prev_hash,
                                row={column: row[column] for column in columns})
        cursor.execute('UPDATE "edc_auditchainlink" SET row_hash = %s WHERE id = %s',
                       [forged, link.pk])
        cursor.execute('UPDATE "edc_auditchainhead" SET last_hash = %s WHERE "table" = %s',
                       [forged, TABLE])
    ok, output = verify()
    assert ok, output
    tips_record(path=tips)  # a later recording holds the forged tip ...
    [problem] = tips_check(path=tips)  # ... the earlier one still shows the rewrite
    assert (problem.table, problem.history_id, problem.problem) == (
        TABLE, link.history_id, "recorded tip rewritten")
    ok, output = verify("--tips", str(tips))
    assert not ok and "recorded tip rewritten" in output


def test_an_unreadable_tips_file_fails_the_check(subject, tmp_path):
    tips = tmp_path / "tips.jsonl"
    tips.write_text('{"at": "2026-11-30", "tips": {"x": [1]}}\n')
    ok, output = verify("--tips", str(tips))
    assert not ok and "tips file unreadable (line 1 is not a tips record" in output
    ok, output = verify("--tips", str(tmp_path / "absent.jsonl"))
    assert not ok and "tips file unreadable" in output
