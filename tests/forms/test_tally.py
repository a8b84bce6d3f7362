"""The form counts of each visit (``forms.tally``), kept by ``crf_save``, always equal a recount
from the forms themselves: after every kind of change a user can make, after a refused save,
after a synthetic trial entered through the services, and after a rebuild."""

import contextlib
import datetime as dt
import importlib
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from edc import protocol
from edc.history import system_writes
from edc.roles import Role
from forms.entry import services
from forms.models import (
    NIHSS,
    AdverseEvent,
    Infusion,
    LockScope,
    PKPDSample,
    VisitFormTally,
    VitalSigns,
)
from forms.models.base import EditConflict
from forms.review.locks import lock_create
from forms.tally import tally_recount, tally_stored, visits_expecting
from tests.factories import UserFactory, randomized_subject
from visits import services as visit_services
from visits.models import Subject, SubjectStatus


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 130,
            "diastolic_bp": 80, "heart_rate": 70, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 98, "weight": Decimal("70.0")} | changes


def save(model, subject, user, values=None, *, visit=None, slot="", complete=True,
         not_done="", reason="", pk=None):
    crf = services.crf_instance(model=model, subject=subject, visit=visit, slot=slot, pk=pk)
    return services.crf_save(crf=crf, values=values or {}, user=user,
                             expected_version=crf.version, complete=complete,
                             not_done_reason=not_done, reason=reason)


def assert_kept():
    """The kept counts are the recount's, and return them."""
    stored = tally_stored()
    assert stored == tally_recount()
    return stored


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def test_every_kind_of_change_keeps_the_counts_equal_to_a_recount(site, nurse, subject):
    data_manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    d1 = subject.visits.get(code="D1")
    assert assert_kept() == {}

    # Created in progress, then completed, edited while complete, and taken back to in
    # progress: one form, counted once, under its current status.
    form = save(VitalSigns, subject, nurse, vitals(), visit=d1, complete=False)
    assert assert_kept() == {d1.pk: (0, 1)}
    form = save(VitalSigns, subject, nurse, vitals(), visit=d1)
    assert assert_kept() == {d1.pk: (1, 0)}
    form = save(VitalSigns, subject, nurse, vitals(heart_rate=72), visit=d1,
                reason="Transcription error")
    assert assert_kept() == {d1.pk: (1, 0)}
    form = save(VitalSigns, subject, nurse, vitals(heart_rate=73), visit=d1, complete=False,
                reason="Value to be checked again")
    assert form.status == "in_progress"
    assert assert_kept() == {d1.pk: (0, 1)}

    # Created complete by marking the whole form not done.
    save(NIHSS, subject, nurse, visit=d1, not_done="not_done")
    assert assert_kept() == {d1.pk: (1, 1)}

    # PK/PD: one record per time point, each counted where the visit expects it.
    slots = [slot for code, slot in protocol.visit_def("D1").expected_forms()
             if code == "pkpd"]
    assert len(slots) >= 2
    save(PKPDSample, subject, nurse, {"sampled_at": timezone.now() - dt.timedelta(hours=1)},
         visit=d1, slot=slots[0], complete=False)
    save(PKPDSample, subject, nurse, visit=d1, slot=slots[1], not_done="not_done")
    assert assert_kept()[d1.pk] == (2, 2)

    # A form the visit does not expect is not counted there.
    d90 = subject.visits.get(code="D90")
    assert d90.code not in visits_expecting("infusion", "")
    with contextlib.suppress(ValidationError):  # if refused outright, nothing to count
        save(Infusion, subject, nurse, visit=d90, not_done="not_done")
    assert d90.pk not in assert_kept()

    # Log forms belong to no visit.
    save(AdverseEvent, subject, nurse, {"term": "Headache", "start_date": timezone.localdate()},
         complete=False)
    assert assert_kept()[d1.pk] == (2, 2)

    # A visit missed or recorded changes no count (the dashboard reads its status).
    d8 = subject.visits.get(code="D8")
    save(VitalSigns, subject, nurse, vitals(), visit=d8, complete=False)
    services.visit_missed(visit=d8, reason="Unreachable", user=nurse)
    d2 = subject.visits.get(code="D2")
    save(VitalSigns, subject, nurse, vitals(), visit=d2)
    services.visit_record(visit=d1, actual_date=d1.planned_date, user=nurse)
    assert assert_kept() == {d1.pk: (2, 2), d8.pk: (0, 1), d2.pk: (1, 0)}

    # An unscheduled visit expects its own forms.
    unscheduled = visit_services.visit_add_unscheduled(
        subject=subject, actual_date=timezone.localdate(), user=nurse)
    save(VitalSigns, subject, nurse, vitals(), visit=unscheduled)
    assert assert_kept()[unscheduled.pk] == (1, 0)

    # Refused saves count nothing: a stale version, a hard error, a locked form.
    stale = services.crf_instance(model=VitalSigns, subject=subject, visit=d1)
    with pytest.raises(EditConflict):
        services.crf_save(crf=stale, values=vitals(), user=nurse,
                          expected_version=stale.version - 1, complete=True)
    with pytest.raises(ValidationError):
        save(VitalSigns, subject, nurse, vitals(heart_rate=900),
             visit=subject.visits.get(code="D30"))
    lock_create(user=data_manager, scope=LockScope.FORM, target=form, reason="Query resolved")
    with pytest.raises(ValidationError):
        save(VitalSigns, subject, nurse, vitals(), visit=d1, reason="Complete it")
    assert assert_kept() == {d1.pk: (2, 2), d8.pk: (0, 1), d2.pk: (1, 0),
                             unscheduled.pk: (1, 0)}

    # A subject who leaves the study keeps the counts of the forms saved.
    visit_services.subject_set_status(subject=Subject.objects.get(pk=subject.pk),
                                      status=SubjectStatus.WITHDRAWN, user=nurse,
                                      reason="Consent withdrawn")
    assert len(assert_kept()) == 4


def test_a_synthetic_trial_entered_through_the_services_is_counted_exactly(db):
    with system_writes():  # the generator's set-up writes are the system's (test_seed_trial)
        call_command("seed_trial", "--subjects", "6", "--seed", "3", "--as-of", "2026-06-30",
                     stdout=StringIO())
    kept = assert_kept()
    assert sum(complete for complete, _ in kept.values()) > 50


def test_the_command_checks_and_rebuilds_the_counts(site, nurse, subject):
    d1 = subject.visits.get(code="D1")
    save(VitalSigns, subject, nurse, vitals(), visit=d1)
    save(NIHSS, subject, nurse, visit=d1, complete=False, not_done="")
    out = StringIO()
    call_command("tally_visit_forms", "--check", stdout=out)
    assert "match" in out.getvalue()

    VisitFormTally.objects.filter(visit=d1).delete()
    with pytest.raises(CommandError, match="1 visits counted differently"):
        call_command("tally_visit_forms", "--check", stdout=StringIO())
    call_command("tally_visit_forms", stdout=StringIO())
    assert assert_kept() == {d1.pk: (1, 1)}


def test_the_migration_counts_the_forms_saved_before_it(site, nurse, subject):
    d1 = subject.visits.get(code="D1")
    save(VitalSigns, subject, nurse, vitals(), visit=d1)
    save(PKPDSample, subject, nurse, visit=d1,
         slot=protocol.visit_def("D1").pkpd_timepoints[0],
         not_done="not_done")
    VisitFormTally.objects.all().delete()
    migration = importlib.import_module("forms.migrations.0008_visit_form_tally")
    migration.count_existing_forms(apps, None)
    assert assert_kept() == {d1.pk: (2, 0)}
