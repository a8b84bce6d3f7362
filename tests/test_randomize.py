"""Eligibility gates randomization; allocation takes the next free row of the stratum,
atomically, and assigns the subject ID, kits and visit schedule (issue 3)."""

import datetime as dt
import os
import threading
import time
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from forms.entry import services
from tests.eligible import confirm_all, enter_screening_data
from tests.factories import UserFactory, randomization_list, screened_subject
from visits import services as visit_services
from visits.models import RandomizationSlot, Subject, SubjectStatus


@pytest.fixture
def investigator(site):
    return UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])


@pytest.fixture
def eligible_subject(site, nurse, investigator):
    randomization_list(site)
    subject = screened_subject(site=site, user=nurse, birth_date=dt.date(1966, 4, 2))
    enter_screening_data(subject, nurse)
    confirm_all(subject, investigator)
    return subject


def test_an_eligible_confirmed_subject_is_randomized(eligible_subject, nurse, site):
    subject = services.subject_randomize(subject=eligible_subject, user=nurse)
    assert subject.status == SubjectStatus.RANDOMIZED
    assert subject.subject_id == "SZ01-001"
    slot = RandomizationSlot.objects.get(subject=subject)
    assert (slot.stratum, slot.sequence) == ("8-14", 1)
    assert subject.randomization_number == slot.randomization_number
    assert [k.kit_number for k in subject.kits.all()] == list(slot.kits)
    assert subject.visits.count() == len(protocol.VISITS)
    assert slot.history.first().history_user == nurse
    assert subject.history.first().history_change_reason == "Randomized"


def test_stratum_follows_the_screening_nihss(site, nurse, investigator):
    randomization_list(site)
    subject = screened_subject(site=site, user=nurse)
    severe = {"loc": "1", "loc_questions": "2", "loc_commands": "1", "best_gaze": "1",
              "visual": "2", "facial_palsy": "2", "motor_arm_left": "0",
              "motor_arm_right": "4", "motor_leg_left": "0", "motor_leg_right": "3",
              "limb_ataxia": "0", "sensory": "1", "best_language": "0", "dysarthria": "1",
              "extinction": "0"}
    enter_screening_data(subject, nurse, nihss=severe)
    confirm_all(subject, investigator)
    subject = services.subject_randomize(subject=subject, user=nurse)
    assert RandomizationSlot.objects.get(subject=subject).stratum == "15-20"


def test_unconfirmed_criterion_blocks_randomization(site, nurse, investigator):
    randomization_list(site)
    subject = screened_subject(site=site, user=nurse)
    enter_screening_data(subject, nurse)
    confirm_all(subject, investigator, answers={"EX14": None})
    with pytest.raises(ValidationError, match="not confirmed eligible"):
        services.subject_randomize(subject=subject, user=nurse)
    assert Subject.objects.get(pk=subject.pk).status == SubjectStatus.SCREENING
    assert not RandomizationSlot.objects.filter(subject__isnull=False).exists()


def test_confirmation_by_site_staff_alone_does_not_make_a_subject_eligible(site, nurse):
    randomization_list(site)
    subject = screened_subject(site=site, user=nurse)
    enter_screening_data(subject, nurse)
    checklist = confirm_all(subject, nurse)
    assert checklist.eligible and checklist.confirmed_by is None
    with pytest.raises(ValidationError, match="confirmed by an investigator"):
        services.subject_randomize(subject=subject, user=nurse)


def test_derived_value_contradicting_the_confirmation_is_flagged(site, nurse, investigator):
    subject = screened_subject(site=site, user=nurse)
    # AST 101 U/L against a ULN of 40 is 2.53 × ULN: exclusion EX06 applies.
    enter_screening_data(subject, nurse, ast=Decimal(101))
    checklist = confirm_all(subject, investigator)
    assert checklist.contradictions == ["EX06"]
    assert not checklist.eligible
    assert checklist.derived["EX06"]["met"] is False


def test_no_randomization_after_72_hours_from_onset(eligible_subject, nurse):
    # Onset was 20 h ago; 53 h later it is 73 h.
    with time_machine.travel(timezone.now() + dt.timedelta(hours=53)), \
            pytest.raises(ValidationError, match="within 72 hours"):
        services.subject_randomize(subject=eligible_subject, user=nurse)


def test_empty_stratum_gives_a_clear_error(site, nurse, investigator):
    subject = screened_subject(site=site, user=nurse)
    enter_screening_data(subject, nurse)
    confirm_all(subject, investigator)
    with pytest.raises(ValidationError, match="no free row"):
        services.subject_randomize(subject=subject, user=nurse)


def test_monitor_cannot_randomize(eligible_subject, site):
    from django.core.exceptions import PermissionDenied

    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    with pytest.raises(PermissionDenied):
        services.subject_randomize(subject=eligible_subject, user=monitor)


on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql" and not os.environ.get("CI"),
    reason="row locking is tested on PostgreSQL (CI); SQLite locks the whole file",
)


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_randomizations_never_share_a_row(site, nurse, monkeypatch):
    assert connection.vendor == "postgresql", "CI runs this on PostgreSQL"
    randomization_list(site)
    subjects = [screened_subject(site=site, user=nurse) for _ in range(6)]
    real_save = visit_services.audited_save

    def slow_save(instance, **kwargs):
        # Widen the race: each transaction pauses between reading its free row and writing.
        if isinstance(instance, Subject) and instance.status == SubjectStatus.RANDOMIZED:
            time.sleep(0.2)
        real_save(instance, **kwargs)

    monkeypatch.setattr(visit_services, "audited_save", slow_save)
    barrier = threading.Barrier(len(subjects))
    failures: list[BaseException] = []

    def randomize(subject):
        try:
            barrier.wait()
            visit_services.randomization_allocate(
                subject=subject, stratum="8-14", randomized_at=timezone.now(), user=nurse)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=randomize, args=(s,)) for s in subjects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    allocated = RandomizationSlot.objects.filter(subject__isnull=False)
    assert sorted(allocated.values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]
    ids = Subject.objects.exclude(subject_id=None).values_list("subject_id", flat=True)
    assert sorted(ids) == [f"SZ01-{n:03d}" for n in range(1, 7)]
