"""The history rows of one save linked together at its end (``edc.audit.chain_batch``, issue
15 item 1): the same chain as one link at a time, in fewer statements; a row rolled back by a
savepoint is not linked; an error leaves nothing unlinked to commit."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from edc.audit import audit_event, chain_batch
from edc.models import AuditAction, AuditChainLink, AuditEvent, Site
from tests.test_audit_chain_cost import CHAIN_TABLES, chain_statements, rename
from tests.test_audit_trail import assert_one_chain, verify

SITE_TABLE = Site.history.model._meta.db_table
EVENT_TABLE = AuditEvent._meta.db_table


def linked(model, pk) -> bool:
    return AuditChainLink.objects.filter(table=model._meta.db_table, history_id=pk).exists()


def test_rows_of_two_tables_are_linked_in_order_in_one_insert(site):
    rename(site, "Shenzhen People's Hospital")  # layouts recorded, chains started
    audit_event(action=AuditAction.EXPORTED, site=site)
    with CaptureQueriesContext(connection) as captured, chain_batch():
        rename(site, "Shenzhen No. 2 Hospital")
        first = audit_event(action=AuditAction.EXPORTED, site=site, detail={"n": 1})
        rename(site, "Shenzhen No. 3 Hospital")
        second = audit_event(action=AuditAction.EXPORTED, site=site, detail={"n": 2})
        assert not linked(AuditEvent, first.pk)  # linked at the end of the block
    statements = [s for s in chain_statements(captured)
                  if not s.startswith('SELECT 1 AS "a"')]  # the test's own look-up
    # One locking read of each table's head with its rows, one INSERT of the four links.
    assert len(statements) == 3, statements
    assert sum(s.startswith('INSERT INTO "edc_auditchainlink"') for s in statements) == 1
    assert linked(AuditEvent, first.pk) and linked(AuditEvent, second.pk)
    history = list(Site.history.order_by("history_id").values_list("history_id", flat=True))
    assert_one_chain(SITE_TABLE, history)
    events = [link.history_id for link in AuditChainLink.objects.filter(table=EVENT_TABLE)
              .order_by("sequence")]
    assert events[-2:] == [first.pk, second.pk]
    assert verify()[0]
    assert all(any(t in s for t in CHAIN_TABLES) for s in statements)


def test_a_row_rolled_back_by_a_savepoint_is_not_linked(site):
    audit_event(action=AuditAction.EXPORTED, site=site)
    with chain_batch():
        with pytest.raises(RuntimeError), transaction.atomic():
            audit_event(action=AuditAction.EXPORTED, site=site, detail={"lost": True})
            raise RuntimeError("the insert lost a race")
        # (SQLite gives the next row the rolled-back row's id: one link for both.)
        kept = audit_event(action=AuditAction.EXPORTED, site=site, detail={"kept": True})
    assert not AuditEvent.objects.filter(detail__lost=True).exists()
    assert linked(AuditEvent, kept.pk)
    assert AuditChainLink.objects.filter(table=EVENT_TABLE).count() == 2
    assert verify()[0]


def test_an_error_in_a_batch_leaves_its_transaction_to_roll_back(site):
    with transaction.atomic():
        with pytest.raises(ValueError), chain_batch():
            audit_event(action=AuditAction.EXPORTED, site=site)
            raise ValueError("a check failed after the write")
        # The event is written but not linked: this transaction can no longer commit.
        assert transaction.get_rollback()
