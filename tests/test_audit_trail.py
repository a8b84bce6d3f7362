"""The audit trail (issue 6): history and audit tables are append-only in the database itself,
every row is hash-chained and ``verify_audit`` finds tampering, and workflow and account
events are recorded, never with the treatment arm (21 CFR 11.10(e); ICH E6(R3) 4.2.2;
checklist AT-03, AT-06, AT-07, AT-08, AT-11)."""

import datetime as dt
import itertools
import threading
from contextlib import contextmanager
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from edc import audit, protocol
from edc.audit import audit_event
from edc.history import system_writes
from edc.models import AuditAction, AuditChainLink, AuditEvent, AuditRowLayout, Site
from edc.roles import Role
from forms.models import VitalSigns
from forms.quality import queries as q
from forms.quality.sdv import crf_verify
from tests.eligible import save
from tests.factories import PASSWORD, UserFactory, randomized_subject, screened_subject
from visits import services
from visits.models import RandomizationSlot, Subject
from visits.randomization import generate_list

HISTORY_TABLE = Subject.history.model._meta.db_table  # visits_historicalsubject
on_postgresql = connection.vendor == "postgresql"


def refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(sql, params)


def row(table: str, pk_column: str, pk: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}" WHERE "{pk_column}" = %s', [pk])  # noqa: S608
        return cursor.fetchone()


@contextmanager
def triggers_lifted(table: str):
    """What an attacker with the database owner's rights does; the trigger comes back."""
    with connection.cursor() as cursor:
        if on_postgresql:
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            for operation in ("UPDATE", "DELETE"):
                name = audit._sqlite_trigger_name(operation, table)
                cursor.execute(f'DROP TRIGGER "{name}"')
        yield cursor
        if on_postgresql:
            cursor.execute("SET LOCAL session_replication_role = origin")
    if not on_postgresql:
        audit.audit_install()
    assert audit.unprotected_tables() == []


def verify() -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as error:
        return False, out.getvalue() + str(error)
    return True, out.getvalue()


def chain(table: str) -> list[AuditChainLink]:
    return list(AuditChainLink.objects.filter(table=table).order_by("sequence"))


def assert_one_chain(table: str, history_ids) -> None:
    links = chain(table)
    assert [link.sequence for link in links] == list(range(1, len(links) + 1))
    assert links[0].prev_hash == audit.GENESIS_HASH
    for before, after in itertools.pairwise(links):
        assert after.prev_hash == before.row_hash
    assert sorted(link.history_id for link in links) == sorted(history_ids)


@pytest.fixture
def subject(site, nurse):
    return screened_subject(site=site, user=nurse)


@pytest.fixture
def administrator(db):
    return UserFactory(username="admin", role=Role.ADMINISTRATOR)


# --- Append-only -------------------------------------------------------------------------------


def test_every_history_table_and_audit_table_is_protected(db):
    tables = {m._meta.db_table for m in audit.append_only_models()}
    assert {HISTORY_TABLE, "forms_historicalnihss", "edc_historicaluser_sites",
            "edc_auditevent", "edc_auditchainlink"} <= tables
    assert audit.unprotected_tables() == []


def test_the_database_refuses_to_update_or_delete_a_history_row(subject):
    history_id = subject.history.earliest().history_id
    before = row(HISTORY_TABLE, "history_id", history_id)
    refused(f'UPDATE "{HISTORY_TABLE}" SET "status" = %s WHERE "history_id" = %s',  # noqa: S608
            ["randomized", history_id])
    refused(f'DELETE FROM "{HISTORY_TABLE}" WHERE "history_id" = %s', [history_id])  # noqa: S608
    refused(f'DELETE FROM "{HISTORY_TABLE}"')  # noqa: S608
    assert row(HISTORY_TABLE, "history_id", history_id) == before


def test_the_orm_cannot_rewrite_history_either(subject):
    rows = subject.history.all()
    count = rows.count()
    with pytest.raises(DatabaseError), transaction.atomic():
        rows.update(history_change_reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        rows.delete()
    assert subject.history.count() == count
    assert "rewritten" not in set(subject.history.values_list("history_change_reason", flat=True))


def test_audit_events_and_chain_links_are_append_only(nurse):
    event = audit_event(action=AuditAction.LOGIN, user=nurse)
    before = row("edc_auditevent", "id", event.pk)
    refused('UPDATE "edc_auditevent" SET "action" = %s WHERE "id" = %s', ["logout", event.pk])
    refused('DELETE FROM "edc_auditevent" WHERE "id" = %s', [event.pk])
    refused('UPDATE "edc_auditchainlink" SET "row_hash" = %s', ["0" * 64])
    refused('DELETE FROM "edc_auditchainlink"')
    assert row("edc_auditevent", "id", event.pk) == before


@pytest.mark.django_db(transaction=True)
def test_flush_still_empties_the_database_and_the_triggers_stay(site, nurse):
    screened_subject(site=site, user=nurse)
    call_command("flush", interactive=False, verbosity=0)
    assert not Subject.history.exists() and not AuditChainLink.objects.exists()
    # post_migrate put the chain heads back; the triggers were never lifted for anyone else.
    assert audit.unprotected_tables() == []
    with system_writes():  # test data written directly
        site = Site.objects.create(code="SZ09", name="again")
    refused(f'DELETE FROM "{Site.history.model._meta.db_table}"')  # noqa: S608
    assert site.history.count() == 1


# --- Tamper evidence ---------------------------------------------------------------------------


def test_verify_audit_passes_on_an_untouched_trail(site, nurse):
    randomized_subject(site=site, user=nurse)
    ok, output = verify()
    assert ok, output
    rows = AuditChainLink.objects.count()
    tables = len(audit.chained_models())
    assert f"audit trail intact: {rows} rows in {tables} tables" in output
    assert rows > 20


def test_verify_audit_names_an_altered_history_row(subject, nurse):
    services.subject_set_status(subject=subject, status="withdrawn", user=nurse,
                                reason="Withdrew consent")
    target = subject.history.earliest().history_id
    with triggers_lifted(HISTORY_TABLE) as cursor:
        cursor.execute(f'UPDATE "{HISTORY_TABLE}" SET "age_at_consent" = 40 '  # noqa: S608
                       'WHERE "history_id" = %s', [target])
    ok, output = verify()
    assert not ok
    assert f"{HISTORY_TABLE}: history id {target}: row altered" in output


def test_verify_audit_names_a_deleted_history_row(subject):
    target = subject.history.latest().history_id
    with triggers_lifted(HISTORY_TABLE) as cursor:
        cursor.execute(f'DELETE FROM "{HISTORY_TABLE}" WHERE "history_id" = %s',  # noqa: S608
                       [target])
    ok, output = verify()
    assert not ok
    assert f"{HISTORY_TABLE}: history id {target}: row missing" in output


def test_verify_audit_finds_a_link_taken_out_of_the_chain(subject):
    links = chain(HISTORY_TABLE)
    assert len(links) >= 2
    with triggers_lifted("edc_auditchainlink") as cursor:
        cursor.execute('DELETE FROM "edc_auditchainlink" WHERE "id" = %s', [links[0].pk])
    ok, output = verify()
    assert not ok
    assert f"{HISTORY_TABLE}: history id {links[1].history_id}: link order broken" in output


def test_verify_audit_finds_a_row_written_around_the_application(site):
    historical_site = Site.history.model
    [stray] = historical_site.objects.bulk_create([historical_site(
        id=site.pk, code=site.code, name="forged", time_zone=site.time_zone, is_active=True,
        history_date=site.history.latest().history_date, history_type="~",
    )])
    ok, output = verify()
    assert not ok
    assert f"edc_historicalsite: history id {stray.pk}: row not chained" in output


def test_verify_audit_reports_a_table_whose_trigger_is_gone(db):
    connection.check_constraints()  # PostgreSQL alters no table with deferred checks pending
    with connection.cursor() as cursor:
        if on_postgresql:
            cursor.execute(f'ALTER TABLE "{HISTORY_TABLE}" DISABLE TRIGGER {audit.PG_TRIGGER}')
        else:
            cursor.execute(f'DROP TRIGGER "{audit._sqlite_trigger_name("DELETE", HISTORY_TABLE)}"')
    ok, output = verify()
    assert not ok
    assert f"{HISTORY_TABLE}: append-only trigger missing or disabled" in output
    audit.audit_install()
    assert verify()[0]


def test_each_table_has_one_chain_in_write_order(site, other_site, nurse):
    for _ in range(3):
        screened_subject(site=site, user=nurse)
        screened_subject(site=other_site, user=UserFactory(sites=[other_site]))
    history_ids = Subject.history.values_list("history_id", flat=True)
    assert_one_chain(HISTORY_TABLE, history_ids)
    assert_one_chain("edc_auditevent", AuditEvent.objects.values_list("pk", flat=True))


@pytest.mark.skipif(not on_postgresql, reason="SQLite has one writer at a time by design")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_chain():
    with system_writes():  # test data written directly
        sites = [Site.objects.create(code=f"C{n:02d}", name=f"Concurrent {n}") for n in range(6)]
    start = threading.Barrier(len(sites))
    errors = []

    def rename(site_pk: int) -> None:
        try:
            start.wait()
            for round_ in range(5):
                with transaction.atomic():
                    site = Site.objects.select_for_update().get(pk=site_pk)
                    site.name = f"{site.name} {round_}"
                    with system_writes():  # test data written directly
                        site.save()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rename, args=[site.pk]) for site in sites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    historical_site = Site.history.model
    assert historical_site.objects.count() == 6 * 6
    assert_one_chain(historical_site._meta.db_table,
                     historical_site.objects.values_list("history_id", flat=True))
    assert verify()[0]


# --- Account events ----------------------------------------------------------------------------


def test_login_failed_login_and_logout_are_recorded(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": "wrong"})
    assert response.status_code == 200
    client.post(reverse("login"), {"username": "nurse", "password": PASSWORD})
    client.post(reverse("logout"))
    events = list(AuditEvent.objects.order_by("pk").filter(
        action__in=[AuditAction.LOGIN, AuditAction.LOGIN_FAILED, AuditAction.LOGOUT]))
    assert [(e.action, e.user, e.username_attempted) for e in events] == [
        (AuditAction.LOGIN_FAILED, None, "nurse"),
        (AuditAction.LOGIN, nurse, ""),
        (AuditAction.LOGOUT, nurse, ""),
    ]
    assert {e.ip_address for e in events} == {"127.0.0.1"}
    assert "wrong" not in str([e.detail for e in events])


def test_account_changes_are_recorded_with_their_author(administrator, site, other_site):
    user = UserFactory(username="inv", role=Role.SITE_STAFF, sites=[site])
    created = AuditEvent.objects.get(action=AuditAction.USER_CREATED, object_id=str(user.pk))
    assert created.detail["username"] == "inv"

    user.role = Role.INVESTIGATOR
    user._history_user = administrator
    user.save()
    role = AuditEvent.objects.get(action=AuditAction.ROLE_CHANGED)
    assert (role.user, role.object_type, role.object_id) == (administrator, "edc.user",
                                                             str(user.pk))
    assert role.detail == {"username": "inv", "from": "site_staff", "to": "investigator"}

    user.sites.add(other_site)
    sites = AuditEvent.objects.filter(action=AuditAction.SITES_CHANGED).latest("pk")
    assert (sites.detail["added"], sites.detail["removed"]) == (["GZ02"], [])

    user.is_active = False
    user._history_user = administrator
    user.save()
    assert AuditEvent.objects.filter(action=AuditAction.USER_DEACTIVATED,
                                     object_id=str(user.pk), user=administrator).exists()


def test_a_login_stamping_last_login_is_not_an_account_change(client, nurse):
    before = AuditEvent.objects.exclude(action=AuditAction.LOGIN).count()
    client.force_login(nurse)
    assert AuditEvent.objects.exclude(action=AuditAction.LOGIN).count() == before
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN, user=nurse).count() == 1


# --- Workflow events ---------------------------------------------------------------------------


def assert_blind(events) -> None:
    """No event carries the arm: no arm key, no arm code as a value, no arm label."""
    labels = {str(arm.label) for arm in protocol.ARMS}
    codes = {arm.code for arm in protocol.ARMS}
    for event in events:
        text = audit.canonical_json(event.detail)
        assert not audit.BLINDING_KEYS & {key.lower() for key in event.detail}
        assert not codes & {str(value) for value in event.detail.values()}
        assert not any(label in text for label in labels)


def test_randomization_and_unblinding_are_recorded_without_the_arm(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    slot = RandomizationSlot.objects.get(subject=subject)
    event = AuditEvent.objects.get(action=AuditAction.RANDOMIZED)
    assert (event.user, event.subject, event.site) == (nurse, subject, site)
    assert event.detail == {"randomization_number": subject.randomization_number}

    investigator = UserFactory(role=Role.INVESTIGATOR, sites=[site])
    unblinding = services.subject_unblind(subject=subject, user=investigator,
                                          reason="Anaphylaxis during infusion")
    event = AuditEvent.objects.get(action=AuditAction.UNBLINDED)
    assert (event.user, event.subject, event.object_id) == (investigator, subject,
                                                            str(unblinding.pk))
    assert slot.arm not in event.detail.values()
    assert_blind(AuditEvent.objects.all())


def test_loading_a_randomization_list_is_recorded_without_the_arms(site):
    statistician = UserFactory(role=Role.UNBLINDED_STATISTICIAN)
    rows = list(generate_list(site_codes=[site.code], rows_per_stratum=3, seed=3))
    services.randomization_list_import(rows=rows, list_name="v1", user=statistician)
    event = AuditEvent.objects.get(action=AuditAction.LIST_LOADED)
    assert event.user == statistician
    assert event.detail == {"list_name": "v1", "rows": len(rows)}
    assert_blind([event])


def test_an_event_refuses_to_carry_the_arm(nurse):
    with pytest.raises(ValueError, match="blind"):
        audit_event(action=AuditAction.RANDOMIZED, user=nurse, detail={"Arm": "A"})


@pytest.fixture
def monitor(site):
    return UserFactory(username="monitor", role=Role.MONITOR, sites=[site])


@pytest.fixture
def vitals(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    values = {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
              "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
              "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")}
    return save(VitalSigns, subject, nurse, values, visit=subject.visits.get(code="D2"),
                complete=True)


def test_source_data_verification_is_recorded(vitals, monitor):
    crf_verify(crf=vitals, user=monitor)
    event = AuditEvent.objects.get(action=AuditAction.SOURCE_VERIFIED)
    assert (event.user, event.subject_id, event.site_id) == (monitor, vitals.subject_id,
                                                             vitals.subject.site_id)
    assert (event.object_type, event.object_id) == ("forms.vitalsigns", str(vitals.pk))
    assert event.detail == {"form": "vital_signs", "items": None}


def test_every_query_action_is_recorded(vitals, monitor, nurse):
    query = q.query_raise(target=vitals, field_name="systolic_bp", text="Check", user=monitor)
    q.query_answer(query=query, text="Checked", user=nurse)
    q.query_requery(query=query, text="Still 142", user=monitor)
    q.query_answer(query=query, text="Corrected", user=nurse)
    q.query_close(query=query, user=monitor)
    other = q.query_raise(target=vitals, field_name="heart_rate", text="Check", user=monitor)
    q.query_cancel(query=other, user=monitor, text="Raised in error")
    system, _ = q.query_open_system(target=vitals, field_name="weight", check_code="VS-007",
                                    text="Weight out of range")
    q.query_close_system(query=system)

    events = AuditEvent.objects.filter(object_type="forms.query").order_by("pk")
    assert [(e.action, e.user, e.object_id) for e in events] == [
        (AuditAction.QUERY_RAISED, monitor, str(query.pk)),
        (AuditAction.QUERY_ANSWERED, nurse, str(query.pk)),
        (AuditAction.QUERY_REQUERIED, monitor, str(query.pk)),
        (AuditAction.QUERY_ANSWERED, nurse, str(query.pk)),
        (AuditAction.QUERY_CLOSED, monitor, str(query.pk)),
        (AuditAction.QUERY_RAISED, monitor, str(other.pk)),
        (AuditAction.QUERY_CANCELLED, monitor, str(other.pk)),
        (AuditAction.QUERY_RAISED, None, str(system.pk)),
        (AuditAction.QUERY_AUTO_CLOSED, None, str(system.pk)),
    ]
    assert {e.subject_id for e in events} == {vitals.subject_id}
    assert events[0].detail == {"form": "vital_signs", "item": "systolic_bp"}
    assert_blind(events)
    assert verify()[0]


def test_rows_hashed_before_a_column_was_added_still_verify(site, monkeypatch):
    real = audit._columns

    def without_is_active(model):
        columns = real(model)
        if model is Site.history.model:
            columns.pop("is_active")
        return columns

    # As if the column came with a later migration: rows before it are hashed without it.
    monkeypatch.setattr(audit, "_columns", without_is_active)
    site.name = "Before the migration"
    with system_writes():  # test data written directly
        site.save()
    monkeypatch.undo()
    site.name = "After the migration"
    with system_writes():  # test data written directly
        site.save()
    assert verify()[0]
    layouts = AuditRowLayout.objects.filter(table=Site.history.model._meta.db_table)
    assert layouts.count() == 2


def test_every_history_table_keeps_the_whole_reason_for_a_change(db):
    """Reasons are free text (500 characters on the data-entry form, unbounded for locks);
    a 100-character history column made PostgreSQL refuse the save (found by the load test)."""
    reasons = [field for model in audit.history_models() for field in model._meta.fields
               if field.name == "history_change_reason"]
    assert len(reasons) > 20
    assert [f.model._meta.label for f in reasons if f.max_length is not None] == []


def test_a_long_reason_for_change_is_saved_whole_from_the_page(client, vitals, nurse):
    reason = ("Heart rate re-measured after the patient had rested for ten minutes; the first "
              "reading was taken during physiotherapy and is not representative. " * 3).strip()
    assert 100 < len(reason) <= 500
    url = reverse("forms:visit_crf", args=[vitals.subject_id, vitals.visit_id, "vital_signs"])
    posted = {"measured_at": timezone.localtime(vitals.measured_at, vitals.subject.site.zone)
              .strftime("%Y-%m-%dT%H:%M"), "systolic_bp": 142, "diastolic_bp": 85,
              "heart_rate": 64, "temperature": "36.8", "respiratory_rate": 16, "spo2": 97,
              "weight": "70.0", "version": vitals.version, "action": "complete",
              "reason": reason}
    client.force_login(nurse)
    response = client.post(url, posted)
    assert response.status_code == 302
    latest = VitalSigns.history.filter(id=vitals.pk).latest("history_id")
    assert (latest.heart_rate, latest.history_change_reason) == (64, reason)
