"""Queries (issue 5): manual queries by monitors and data managers, answered by the site, closed,
re-queried or cancelled, every step kept; system queries from edit checks, never duplicated,
closing themselves when the data pass again."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from edc.roles import Role
from forms.models import VitalSigns
from forms.quality import queries as q
from forms.quality.queries import MessageKind, Query, QueryStatus, Resolution
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject


@pytest.fixture
def monitor(site):
    return UserFactory(username="monitor", role=Role.MONITOR, sites=[site])


@pytest.fixture
def other_monitor(site):
    return UserFactory(username="monitor2", role=Role.MONITOR, sites=[site])


@pytest.fixture
def data_manager(db):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def vitals(subject, nurse):
    values = {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
              "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
              "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")}
    return save(VitalSigns, subject, nurse, values, visit=subject.visits.get(code="D2"))


@pytest.fixture
def query(vitals, monitor):
    return q.query_raise(target=vitals, field_name="systolic_bp",
                         text="Source shows 124 mmHg: please check.", user=monitor)


def steps(query):
    return [(m.kind, m.author, m.text) for m in query.messages.order_by("at", "pk")]


def test_the_whole_manual_life_cycle_is_kept(query, vitals, subject, monitor, nurse):
    assert query.status == QueryStatus.OPEN
    assert (query.subject, query.target, query.crf_code) == (subject, vitals, "vital_signs")
    assert query.visit.code == "D2"
    assert query.raised_by == monitor
    assert not query.is_system

    query = q.query_answer(query=query, text="Transcription error, corrected.", user=nurse)
    assert query.status == QueryStatus.ANSWERED
    assert query.answered_at is not None
    query = q.query_requery(query=query, text="The form still shows 142.", user=monitor)
    assert query.status == QueryStatus.OPEN
    query = q.query_answer(query=query, text="Now corrected.", user=nurse)
    query = q.query_close(query=query, user=monitor, text="Thank you.")

    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED
    assert query.resolution == Resolution.CLOSED_BY_RAISER == "closed by raiser"
    assert query.closed_by == monitor
    assert query.closed_at >= query.answered_at >= query.raised_at
    assert steps(query) == [
        (MessageKind.RAISED, monitor, "Source shows 124 mmHg: please check."),
        (MessageKind.ANSWERED, nurse, "Transcription error, corrected."),
        (MessageKind.REQUERIED, monitor, "The form still shows 142."),
        (MessageKind.ANSWERED, nurse, "Now corrected."),
        (MessageKind.CLOSED, monitor, "Thank you."),
    ]
    assert all(m.at is not None for m in query.messages.all())
    history = list(query.history.order_by("history_date", "history_id"))
    assert [h.status for h in history] == ["open", "answered", "open", "answered", "closed"]
    assert [h.history_user for h in history] == [monitor, nurse, monitor, nurse, monitor]
    # Closed queries stay visible, to the site and to the monitor.
    assert query in q.queries_for_user(nurse)
    assert query in q.queries_for_user(monitor)
    assert list(q.queries_for_target(vitals)) == [query]


def test_a_data_manager_raises_and_closes_at_any_site(vitals, data_manager, nurse):
    query = q.query_raise(target=vitals, field_name="weight", text="Weight plausible?",
                          user=data_manager)
    query = q.query_close(query=query, user=data_manager)
    assert query.status == QueryStatus.CLOSED
    assert steps(query)[-1] == (MessageKind.CLOSED, data_manager, "")


def test_site_staff_cannot_raise_or_close(vitals, query, nurse):
    with pytest.raises(PermissionDenied):
        q.query_raise(target=vitals, field_name="weight", text="?", user=nurse)
    with pytest.raises(PermissionDenied):
        q.query_close(query=query, user=nurse)
    q.query_answer(query=query, text="Checked.", user=nurse)
    with pytest.raises(PermissionDenied):
        q.query_requery(query=query, text="Again?", user=nurse)


def test_a_monitor_cannot_answer(query, monitor):
    with pytest.raises(PermissionDenied):
        q.query_answer(query=query, text="Answering my own query", user=monitor)
    query.refresh_from_db()
    assert query.status == QueryStatus.OPEN


def test_only_the_raiser_cancels(query, monitor, other_monitor, data_manager):
    for someone_else in (other_monitor, data_manager):
        with pytest.raises(PermissionDenied):
            q.query_cancel(query=query, user=someone_else, text="Not mine")
    query = q.query_cancel(query=query, user=monitor, text="Raised on the wrong item.")
    assert query.status == QueryStatus.CANCELLED
    assert query.resolution == "cancelled"
    assert query.closed_by == monitor
    assert steps(query)[-1] == (MessageKind.CANCELLED, monitor, "Raised on the wrong item.")


def test_staff_and_monitors_of_another_site_neither_see_nor_act(query, vitals, other_site):
    other_nurse = UserFactory(role=Role.SITE_STAFF, sites=[other_site])
    other_monitor = UserFactory(role=Role.MONITOR, sites=[other_site])
    assert not q.queries_for_user(other_nurse).exists()
    assert not q.queries_for_user(other_monitor).exists()
    with pytest.raises(PermissionDenied):
        q.query_answer(query=query, text="Not my patient", user=other_nurse)
    with pytest.raises(PermissionDenied):
        q.query_raise(target=vitals, field_name="weight", text="?", user=other_monitor)
    with pytest.raises(PermissionDenied):
        q.query_close(query=query, user=other_monitor)


def test_roles_without_clinical_data_see_no_queries(query, site):
    pharmacist = UserFactory(role=Role.UNBLINDED_PHARMACIST, sites=[site])
    statistician = UserFactory(role=Role.UNBLINDED_STATISTICIAN)
    administrator = UserFactory(role=Role.ADMINISTRATOR)
    for user in (pharmacist, statistician, administrator):
        assert not q.queries_for_user(user).exists()


def test_wrong_states_are_refused(query, monitor, nurse):
    with pytest.raises(ValidationError, match="open"):
        q.query_requery(query=query, text="Again?", user=monitor)
    q.query_answer(query=query, text="Checked.", user=nurse)
    with pytest.raises(ValidationError, match="answered"):
        q.query_answer(query=query, text="Twice", user=nurse)
    q.query_close(query=query, user=monitor)
    for refused in (
        lambda: q.query_answer(query=query, text="Late", user=nurse),
        lambda: q.query_requery(query=query, text="Again?", user=monitor),
        lambda: q.query_close(query=query, user=monitor),
        lambda: q.query_cancel(query=query, user=monitor, text="Too late"),
    ):
        with pytest.raises(ValidationError, match="closed"):
            refused()
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED
    assert query.messages.count() == 3


def test_empty_text_is_refused(vitals, query, monitor, nurse):
    with pytest.raises(ValidationError) as caught:
        q.query_raise(target=vitals, field_name="weight", text="  ", user=monitor)
    assert "text" in caught.value.message_dict
    with pytest.raises(ValidationError):
        q.query_answer(query=query, text="", user=nurse)
    with pytest.raises(ValidationError):
        q.query_cancel(query=query, user=monitor, text="")
    assert Query.objects.count() == 1


def test_the_item_must_exist_on_the_record(vitals, subject, monitor):
    for field_name in ("no_such_item", "status", "verified_at", "id"):
        with pytest.raises(ValidationError) as caught:
            q.query_raise(target=vitals, field_name=field_name, text="?", user=monitor)
        assert "field_name" in caught.value.message_dict
    visit = subject.visits.get(code="D2")
    with pytest.raises(ValidationError):
        q.query_raise(target=visit, field_name="planned_date", text="?", user=monitor)
    on_visit = q.query_raise(target=visit, field_name="actual_date",
                             text="Visit date differs from the clinic letter.", user=monitor)
    assert (on_visit.crf_code, on_visit.visit, on_visit.target) == ("", visit, visit)
    unsaved = VitalSigns(subject=subject)
    with pytest.raises(ValidationError):
        q.query_raise(target=unsaved, field_name="weight", text="?", user=monitor)


def test_system_query_is_opened_once_and_closes_itself(vitals, subject):
    first, created = q.query_open_system(target=vitals, field_name="temperature",
                                         check_code="VS-004", text="Temperature out of range")
    again, created_again = q.query_open_system(target=vitals, field_name="temperature",
                                               check_code="VS-004", text="Temperature out")
    assert (created, created_again) == (True, False)
    assert again == first
    assert first.is_system and first.raised_by is None
    assert steps(first) == [(MessageKind.RAISED, None, "Temperature out of range")]
    assert list(q.open_system_queries(subject_ids=[subject.pk])) == [first]
    assert not q.open_system_queries(check_codes=["VS-001"]).exists()

    closed = q.query_close_system(query=first)
    assert closed.status == QueryStatus.CLOSED
    assert closed.resolution == "resolved by data change"
    assert closed.closed_by is None and closed.closed_at is not None
    assert steps(closed)[-1][:2] == (MessageKind.AUTO_CLOSED, None)
    assert closed.history.latest().history_change_reason == "Closed: resolved by data change"
    assert not q.open_system_queries(subject_ids=[subject.pk]).exists()

    # The check fails again later: a new query, the closed one kept.
    reopened, created = q.query_open_system(target=vitals, field_name="temperature",
                                            check_code="VS-004", text="Temperature out")
    assert created and reopened != closed
    assert Query.objects.filter(check_code="VS-004").count() == 2


def test_an_answered_system_query_is_still_the_one_in_progress(vitals, nurse):
    query, _ = q.query_open_system(target=vitals, field_name="weight", check_code="VS-007",
                                   text="Weight out of range")
    q.query_answer(query=query, text="Weighed again: correct.", user=nurse)
    same, created = q.query_open_system(target=vitals, field_name="weight",
                                        check_code="VS-007", text="Weight out of range")
    assert same == query and not created
    assert same.status == QueryStatus.ANSWERED


def test_a_concurrent_run_does_not_open_a_second_system_query(vitals, monkeypatch):
    existing, _ = q.query_open_system(target=vitals, field_name="weight", check_code="VS-007",
                                      text="Weight out of range")
    real = q._active_system_query
    calls = []

    def not_seen_yet(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(q, "_active_system_query", not_seen_yet)
    query, created = q.query_open_system(target=vitals, field_name="weight",
                                         check_code="VS-007", text="Weight out of range")
    assert (query, created) == (existing, False)
    assert Query.objects.count() == 1


def test_the_database_refuses_a_duplicate_active_system_query(vitals):
    query, _ = q.query_open_system(target=vitals, field_name="weight", check_code="VS-007",
                                   text="Weight out of range")
    with pytest.raises(IntegrityError), transaction.atomic():
        Query.objects.create(subject=query.subject, content_type=query.content_type,
                             object_id=query.object_id, field_name="weight",
                             check_code="VS-007", text="duplicate")


def test_a_manual_query_does_not_close_itself(query):
    with pytest.raises(ValidationError):
        q.query_close_system(query=query)


def test_a_monitor_may_close_a_system_query(vitals, monitor):
    query, _ = q.query_open_system(target=vitals, field_name="weight", check_code="VS-007",
                                   text="Weight out of range")
    with pytest.raises(PermissionDenied):
        q.query_cancel(query=query, user=monitor, text="Not mine to cancel")
    query = q.query_close(query=query, user=monitor, text="Confirmed against source.")
    assert (query.status, query.closed_by) == (QueryStatus.CLOSED, monitor)


def test_query_age_in_days(query, monitor):
    raised = query.raised_at
    assert q.query_age_days(query, raised + dt.timedelta(days=3, hours=5)) == 3
    query = q.query_close(query=query, user=monitor)
    assert q.query_age_days(query, query.closed_at + dt.timedelta(days=30)) == 0


def test_the_query_list_reads_in_one_query(vitals, monitor, django_assert_num_queries):
    for name in ("weight", "heart_rate", "spo2"):
        q.query_raise(target=vitals, field_name=name, text="?", user=monitor)
    monitor = type(monitor).objects.get(pk=monitor.pk)
    with django_assert_num_queries(1):
        rows = [(x.subject.site.code, x.visit.code, x.raised_by.username, x.closed_by)
                for x in q.queries_for_user(monitor)]
    assert len(rows) == 3


def test_the_queries_of_a_record_read_with_their_messages(vitals, query, nurse,
                                                          django_assert_num_queries):
    q.query_answer(query=query, text="Checked.", user=nurse)
    with django_assert_num_queries(2):
        found = [(x.raised_by.username, [m.author.username for m in x.messages.all()])
                 for x in q.queries_for_target(vitals)]
    assert found == [("monitor", ["monitor", "nurse"])]
