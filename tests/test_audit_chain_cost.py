"""What the audit hash chain costs and what its head guarantees (issue 15): two statements per
history row (one locking read of the chain head with the row, one insert of the link, which
advances the head); the head holds the chain's end and moves only link by link; migration
edc 0009 brings existing heads up to date so that new links continue the existing chains."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from edc import audit
from edc.audit import audit_event
from edc.history import system_writes
from edc.models import AuditAction, AuditChainHead, AuditChainLink, AuditRowLayout, Site
from forms.entry import services
from forms.models import VitalSigns
from tests.eligible import save
from tests.factories import randomized_subject
from tests.test_audit_trail import chain, refused, triggers_lifted, verify

SITE_HISTORY = Site.history.model
SITE_TABLE = SITE_HISTORY._meta.db_table
CHAIN_TABLES = ("edc_auditchainhead", "edc_auditchainlink", "edc_auditrowlayout")
on_postgresql = connection.vendor == "postgresql"


def chain_statements(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries
            if any(table in query["sql"] for table in CHAIN_TABLES)]


def head(table: str) -> tuple[int, str]:
    return tuple(AuditChainHead.objects.filter(table=table)
                 .values_list("last_sequence", "last_hash").get())


def rename(site: Site, name: str) -> None:
    site.name = name
    with system_writes():  # test data written directly
        site.save()


def test_saving_an_audited_record_costs_two_chain_statements(site):
    rename(site, "Shenzhen People's Hospital")  # the table's column layout is recorded once
    with CaptureQueriesContext(connection) as captured:
        rename(site, "Shenzhen Second People's Hospital")
    # UPDATE the site, INSERT its history row, then the chain: lock-and-read, insert.
    assert len(captured) == 4
    [read, insert] = chain_statements(captured)
    assert read.startswith("SELECT") and "edc_auditchainhead" in read
    assert SITE_TABLE in read  # the row's values come with the head, not in a third statement
    assert ("FOR UPDATE OF" in read) == on_postgresql
    assert insert.startswith('INSERT INTO "edc_auditchainlink"')
    assert verify()[0]


def test_an_audit_event_costs_two_chain_statements(nurse):
    audit_event(action=AuditAction.LOGIN, user=nurse)
    with CaptureQueriesContext(connection) as captured:
        audit_event(action=AuditAction.LOGOUT, user=nurse)
    assert len(captured) == 3  # the event, then the chain
    assert len(chain_statements(captured)) == 2


def test_a_crf_save_costs_two_chain_statements_per_history_row(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    values = {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
              "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
              "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")}
    crf = save(VitalSigns, subject, nurse, values, visit=subject.visits.get(code="D2"))

    def correct(crf: VitalSigns, heart_rate: int) -> VitalSigns:
        return services.crf_save(crf=crf, values=values | {"heart_rate": heart_rate},
                                 user=nurse, expected_version=crf.version, complete=True,
                                 reason="Re-measured after rest")

    crf = correct(crf, 80)
    links, layouts = AuditChainLink.objects.count(), AuditRowLayout.objects.count()
    with CaptureQueriesContext(connection) as captured:
        correct(crf, 82)
    written = AuditChainLink.objects.count() - links
    assert written >= 1 and AuditRowLayout.objects.count() == layouts
    assert len(chain_statements(captured)) == 2 * written


def test_a_new_column_layout_costs_two_statements_once(site, monkeypatch):
    real = audit._columns

    def without_is_active(model):
        columns = real(model)
        if model is SITE_HISTORY:
            columns.pop("is_active")
        return columns

    monkeypatch.setattr(audit, "_columns", without_is_active)
    with CaptureQueriesContext(connection) as first:
        rename(site, "First with this layout")
    with CaptureQueriesContext(connection) as second:
        rename(site, "Second with this layout")
    assert (len(chain_statements(first)), len(chain_statements(second))) == (4, 2)
    monkeypatch.undo()
    assert verify()[0]


def test_the_head_holds_the_end_of_its_chain(site, other_site):
    for n in range(3):
        rename(site, f"Shenzhen {n}")
    last = chain(SITE_TABLE)[-1]
    assert head(SITE_TABLE) == (last.sequence, last.row_hash)


def test_a_link_that_does_not_continue_its_head_is_refused(site):
    last = chain(SITE_TABLE)[-1]
    forged = {"table": SITE_TABLE, "history_id": 10**9, "layout_id": last.layout_id,
              "row_hash": "f" * 64}
    for wrong in ({"sequence": last.sequence + 1, "prev_hash": "e" * 64},  # not the tip
                  {"sequence": last.sequence + 2, "prev_hash": last.row_hash}):  # a gap
        with pytest.raises(IntegrityError), transaction.atomic():
            AuditChainLink.objects.create(**forged, **wrong)
    assert head(SITE_TABLE) == (last.sequence, last.row_hash)
    assert chain(SITE_TABLE)[-1] == last


def test_links_inserted_many_per_statement_advance_the_head_one_by_one(db):
    """A set-based writer (a bulk load) may insert a chain's links in one statement, in order."""
    layout = AuditRowLayout.objects.create(table="bulk", columns=["id"], digest="b" * 64)
    AuditChainHead.objects.create(table="bulk")
    links, prev_hash = [], audit.GENESIS_HASH
    for sequence in (1, 2, 3):
        row_hash = audit.row_hash(table="bulk", sequence=sequence, prev_hash=prev_hash,
                                  row={"id": sequence})
        links.append(AuditChainLink(table="bulk", history_id=sequence, sequence=sequence,
                                    layout=layout, prev_hash=prev_hash, row_hash=row_hash))
        prev_hash = row_hash
    AuditChainLink.objects.bulk_create(links)
    assert head("bulk") == (3, prev_hash)


def test_nobody_moves_a_chain_head_by_hand(site):
    rename(site, "Renamed")
    last = chain(SITE_TABLE)[-1]
    refused('UPDATE "edc_auditchainhead" SET "last_sequence" = "last_sequence" + 1')
    refused('UPDATE "edc_auditchainhead" SET "last_hash" = %s', ["0" * 64])
    refused('UPDATE "edc_auditchainhead" SET "last_sequence" = %s, "last_hash" = %s '
            'WHERE "table" = %s', [last.sequence - 1, last.prev_hash, SITE_TABLE])
    refused('DELETE FROM "edc_auditchainhead"')
    assert head(SITE_TABLE) == (last.sequence, last.row_hash)


def test_verify_audit_finds_a_link_cut_from_the_end_of_a_chain(site):
    rename(site, "Renamed")
    links = chain(SITE_TABLE)
    with triggers_lifted("edc_auditchainlink") as cursor:
        cursor.execute('DELETE FROM "edc_auditchainlink" WHERE "id" = %s', [links[-1].pk])
    ok, output = verify()
    assert not ok
    assert (f"{SITE_TABLE}: -: link order broken (the chain ends at link "
            f"{len(links) - 1}, its head at link {len(links)})") in output


@pytest.mark.django_db(transaction=True)
def test_a_migrated_head_continues_the_existing_chain(site):
    for n in range(3):
        rename(site, f"Before the migration {n}")
    tip = chain(SITE_TABLE)[-1]
    assert tip.sequence == 4

    # Back to the schema before edc 0009 (heads without their chain's end), as pre_migrate
    # prepares it, then forward again as `manage.py migrate` does.
    audit._drop_sqlite_cross_table_triggers(DEFAULT_DB_ALIAS)
    before = ("edc", "0008_password_holder_and_administrator_rights")
    chain_tip = ("edc", "0009_audit_chain_head_holds_its_tip")
    # edc's later migrations (the history rows' source column) are only unrecorded and
    # recorded again (fake): undoing them for real would drop the column and with it the
    # values the rows written above were hashed with.
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("edc")
    MigrationExecutor(connection).migrate([chain_tip], fake=True)
    MigrationExecutor(connection).migrate([before])
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(
            cursor, "edc_auditchainhead")}
    assert "last_sequence" not in columns
    MigrationExecutor(connection).migrate([chain_tip])
    MigrationExecutor(connection).migrate(latest, fake=True)
    audit.audit_install()  # post_migrate
    assert head(SITE_TABLE) == (tip.sequence, tip.row_hash)
    # Then every later migration, so that the tests after this one find the whole schema.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    audit.audit_install()

    assert head(SITE_TABLE) == (tip.sequence, tip.row_hash)
    assert head("edc_auditevent") == (0, audit.GENESIS_HASH)  # no events yet: still at genesis
    rename(site, "After the migration")
    after = chain(SITE_TABLE)[-1]
    assert (after.sequence, after.prev_hash) == (tip.sequence + 1, tip.row_hash)
    assert audit.unprotected_tables() == []
    assert verify()[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditChainHead.objects.filter(table=SITE_TABLE).update(last_sequence=1)
