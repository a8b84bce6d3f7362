"""Infusion, PK/PD, adverse event, deviation and end-of-study CRFs, saved through crf_save."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from edc import protocol
from forms.entry import services
from forms.models import (
    CRF_MODELS,
    AdverseEvent,
    CRFStatus,
    Death,
    EarlyTermination,
    EndOfStudy,
    Infusion,
    PKPDSample,
    ProtocolDeviation,
)
from tests.factories import randomized_subject

REQUIRED = "Required to complete the form: enter a value or mark it missing."


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def days_ago(days: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=days)


def save(model, subject, user, values, *, visit_code=None, complete=True, crf=None, slot=""):
    visit = subject.visits.get(code=visit_code) if visit_code else None
    crf = crf or services.crf_instance(model=model, subject=subject, visit=visit, slot=slot)
    return services.crf_save(crf=crf, values=values, user=user,
                             expected_version=crf.version, complete=complete)


def refused(model, subject, user, values, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        save(model, subject, user, values, **kwargs)
    return caught.value.message_dict


def assert_saved_by(crf, user):
    assert crf.status == CRFStatus.COMPLETE
    assert crf.history.count() == 1
    assert crf.history.get().history_user == user


def test_every_protocol_crf_has_a_model():
    for crf in protocol.CRFS:
        if crf.code != "consent":
            assert CRF_MODELS[crf.code].crf_code == crf.code


# Infusion


def infusion_values(**changes):
    started = timezone.now() - dt.timedelta(minutes=90)
    return {
        "given": True, "kit_number": "K0001", "weight_for_dosing": Decimal("70.5"),
        "volume_prepared_ml": Decimal(100), "volume_infused_ml": Decimal(98),
        "started_at": started, "stopped_at": started + dt.timedelta(minutes=60),
        "rate_ml_per_hour": Decimal(100), "interrupted": False,
        "pre_systolic_bp": 140, "pre_diastolic_bp": 85, "pre_heart_rate": 72,
        "pre_temperature": Decimal("36.8"),
        "during_systolic_bp": 138, "during_diastolic_bp": 82, "during_heart_rate": 75,
        "during_temperature": Decimal("37.0"),
        "post_systolic_bp": 135, "post_diastolic_bp": 80, "post_heart_rate": 70,
        "post_temperature": Decimal("36.9"),
    } | changes


@pytest.mark.parametrize(("visit_code", "number"), [("D1", 1), ("D8", 2), ("D15", 3)])
def test_infusion_number_is_derived_from_the_visit(subject, nurse, visit_code, number):
    infusion = save(Infusion, subject, nurse, infusion_values(infusion_number=9),
                    visit_code=visit_code)
    assert infusion.infusion_number == number
    assert infusion.planned_dose_cells_per_kg == Decimal("1.0")
    assert_saved_by(infusion, nurse)


def test_infusion_hard_errors_are_reported_together(subject, nurse):
    started = timezone.now() - dt.timedelta(hours=2)
    errors = refused(Infusion, subject, nurse, infusion_values(
        weight_for_dosing=Decimal(300), volume_infused_ml=Decimal(120),
        started_at=started, stopped_at=started - dt.timedelta(minutes=1),
        pre_diastolic_bp=140, during_temperature=Decimal("43.5"), post_heart_rate=10,
        rate_ml_per_hour=Decimal(-5), interrupted=True,
    ), visit_code="D1")
    assert set(errors) == {
        "weight_for_dosing", "volume_infused_ml", "stopped_at", "pre_diastolic_bp",
        "during_temperature", "post_heart_rate", "rate_ml_per_hour", "interruption_reason",
    }
    assert errors["pre_diastolic_bp"] == ["Diastolic pressure must be below systolic pressure."]


def test_infusion_not_given_needs_only_the_reason(subject, nurse):
    errors = refused(Infusion, subject, nurse, {"given": False}, visit_code="D1")
    assert set(errors) == {"not_given_reason"}
    infusion = save(Infusion, subject, nurse,
                    {"given": False, "not_given_reason": "Fever 38.6 °C on the morning"},
                    visit_code="D1")
    assert infusion.status == CRFStatus.COMPLETE


def test_infusion_completion_lists_the_missing_required_items(subject, nurse):
    errors = refused(Infusion, subject, nurse, {"given": True}, visit_code="D1")
    assert set(errors) == set(Infusion.required_items) - {"given"}
    assert errors["kit_number"] == [REQUIRED]
    assert save(Infusion, subject, nurse, {"given": True}, visit_code="D1",
                complete=False).status == CRFStatus.IN_PROGRESS


def test_infusion_interruption_links_an_adverse_event_of_the_same_subject(site, subject, nurse):
    event = save(AdverseEvent, subject, nurse, adverse_event_values())
    other = save(AdverseEvent, randomized_subject(site=site, user=nurse), nurse,
                 adverse_event_values())
    interrupted = {"interrupted": True, "interruption_reason": "Chills"}
    errors = refused(Infusion, subject, nurse,
                     infusion_values(**interrupted, interruption_adverse_event=other),
                     visit_code="D1")
    assert set(errors) == {"interruption_adverse_event"}
    infusion = save(Infusion, subject, nurse,
                    infusion_values(**interrupted, interruption_adverse_event=event),
                    visit_code="D1")
    assert infusion.interruption_adverse_event == event


# PK/PD


def pkpd_values(**changes):
    collected = timezone.now() - dt.timedelta(hours=1)
    return {
        "collected": True, "collected_at": collected,
        "tube_type": "edta", "processed_at": collected + dt.timedelta(minutes=30),
        "freezer_id": "F-80-02", "storage_location": "Rack 3 / box 12 / A4",
    } | changes


def test_pkpd_sample_saves(subject, nurse):
    sample = save(PKPDSample, subject, nurse, pkpd_values(), visit_code="D1", slot="pre_dose")
    assert_saved_by(sample, nurse)
    assert sample.timepoint == "pre_dose"


def test_pkpd_sample_hard_errors(subject, nurse):
    collected = timezone.now() - dt.timedelta(hours=1)
    errors = refused(PKPDSample, subject, nurse, pkpd_values(
        collected=False, collected_at=collected,
        processed_at=collected - dt.timedelta(minutes=5),
    ), visit_code="D1", slot="pre_dose")
    assert set(errors) == {"not_collected_reason", "processed_at"}


def test_pkpd_sample_not_collected_needs_only_the_reason(subject, nurse):
    sample = save(PKPDSample, subject, nurse, {
        "collected": False, "not_collected_reason": "No venous access",
    }, visit_code="D1", slot="pre_dose")
    assert sample.status == CRFStatus.COMPLETE


def test_day1_pre_dose_and_1_hour_samples_are_two_records(subject, nurse):
    """Issue 14: the form offered time points but one record per visit, so the Day 1 1 h
    sample could not be recorded beside the pre-dose one."""
    pre = save(PKPDSample, subject, nurse, pkpd_values(), visit_code="D1", slot="pre_dose")
    after = save(PKPDSample, subject, nurse, pkpd_values(), visit_code="D1",
                 slot="post_dose_1h")
    assert pre.pk != after.pk
    d1 = subject.visits.get(code="D1")
    assert sorted(PKPDSample.objects.filter(visit=d1).values_list("timepoint", flat=True)) == [
        "post_dose_1h", "pre_dose"]
    # Opening the pre-dose sample again finds the saved record, not a new one.
    again = services.crf_instance(model=PKPDSample, subject=subject, visit=d1, slot="pre_dose")
    assert again.pk == pre.pk
    # The time point is not an item: a value typed for it changes nothing.
    resaved = services.crf_save(crf=again, values={"timepoint": "post_dose_1h"}, user=nurse,
                                expected_version=again.version, complete=True,
                                reason="Re-entered")
    assert PKPDSample.objects.get(pk=resaved.pk).timepoint == "pre_dose"


def test_the_database_holds_one_sample_per_visit_and_time_point(subject, nurse):
    from django.db import IntegrityError, transaction

    save(PKPDSample, subject, nurse, pkpd_values(), visit_code="D1", slot="pre_dose")
    with pytest.raises(IntegrityError), transaction.atomic():
        PKPDSample.objects.create(subject=subject, visit=subject.visits.get(code="D1"),
                                  timepoint="pre_dose")


def test_a_time_point_not_planned_at_the_visit_is_refused(subject, nurse):
    errors = refused(PKPDSample, subject, nurse, pkpd_values(), visit_code="D1", slot="24h")
    assert "timepoint" in errors
    assert not PKPDSample.objects.exists()


# Adverse events


def adverse_event_values(**changes):
    return {
        "term": "Fever", "start_date": days_ago(3), "end_date": days_ago(2),
        "ctcae_grade": 2, "is_serious": False, "relationship_to_product": "possibly",
        "relationship_to_procedure": "unlikely", "action_taken": "dose_not_changed",
        "outcome": "recovered", "infusion_number": 1, "special_interest": "fever",
    } | changes


def test_adverse_event_saves_and_describes_itself(subject, nurse):
    event = save(AdverseEvent, subject, nurse, adverse_event_values())
    assert_saved_by(event, nurse)
    assert str(event) == f"Fever (grade 2) from {days_ago(3).isoformat()}"


def test_serious_adverse_event_needs_the_time_the_site_became_aware(subject, nurse):
    serious = adverse_event_values(is_serious=True, serious_hospitalization=True)
    errors = refused(AdverseEvent, subject, nurse, serious)
    assert set(errors) == {"site_aware_at"}
    aware = timezone.now() - dt.timedelta(days=2)
    assert save(AdverseEvent, subject, nurse, serious | {"site_aware_at": aware}).is_serious


def test_serious_adverse_event_without_criteria_is_not_refused(subject, nurse):
    event = save(AdverseEvent, subject, nurse, adverse_event_values(
        is_serious=True, site_aware_at=timezone.now() - dt.timedelta(days=2)))
    assert event.serious_criteria() == []


def test_adverse_event_hard_errors_are_reported_together(subject, nurse):
    errors = refused(AdverseEvent, subject, nurse, adverse_event_values(
        start_date=days_ago(2), end_date=days_ago(3), ctcae_grade=5,
        serious_death=True, serious_life_threatening=True,
    ))
    assert set(errors) == {"end_date", "outcome", "is_serious"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ongoing": True, "outcome": "not_recovered"}, "ongoing"),
        ({"outcome": "fatal", "ctcae_grade": 3}, "ctcae_grade"),
        ({"ctcae_grade": 5, "outcome": "recovering"}, "outcome"),
    ],
)
def test_adverse_event_inconsistencies_are_refused(subject, nurse, changes, field):
    errors = refused(AdverseEvent, subject, nurse, adverse_event_values(**changes),
                     complete=False)
    assert set(errors) == {field}


# Protocol deviations


def test_protocol_deviation_saves_and_is_not_reported_before_it_occurred(subject, nurse):
    values = {"occurred_on": days_ago(5), "category": "visit_out_of_window",
              "description": "D8 visit on day 10", "is_major": False, "reported_on": days_ago(4)}
    deviation = save(ProtocolDeviation, subject, nurse, values)
    assert_saved_by(deviation, nurse)
    assert str(deviation) == f"Visit out of window on {days_ago(5).isoformat()}"
    errors = refused(ProtocolDeviation, subject, nurse, values | {"reported_on": days_ago(6)})
    assert set(errors) == {"reported_on"}


# End of study, early termination, death


def test_end_of_study_not_completed_needs_a_reason(subject, nurse):
    values = {"completed": False, "last_contact_date": days_ago(1)}
    errors = refused(EndOfStudy, subject, nurse, values, visit_code="D180")
    assert set(errors) == {"reason_not_completed"}
    end = save(EndOfStudy, subject, nurse, values | {"reason_not_completed": "lost_to_follow_up"},
               visit_code="D180")
    assert_saved_by(end, nurse)


def test_early_termination_is_one_per_subject(subject, nurse):
    values = {"terminated_on": days_ago(1), "reason": "withdrew_consent",
              "last_dose_infusion_number": 1}
    termination = save(EarlyTermination, subject, nurse, values)
    assert_saved_by(termination, nurse)
    assert str(termination) == f"Early termination on {days_ago(1).isoformat()}: Withdrew consent"
    with pytest.raises(ValidationError):
        save(EarlyTermination, subject, nurse, values)


def test_death_links_an_adverse_event_of_the_same_subject(site, subject, nurse):
    fatal = adverse_event_values(term="Malignant cerebral edema", ctcae_grade=5,
                                 outcome="fatal", end_date=days_ago(1))
    event = save(AdverseEvent, subject, nurse, fatal)
    other = save(AdverseEvent, randomized_subject(site=site, user=nurse), nurse, fatal)
    values = {"died_on": days_ago(1), "primary_cause": "Malignant cerebral edema",
              "relationship_to_product": "unlikely", "autopsy": False}
    errors = refused(Death, subject, nurse, values | {"related_adverse_event": other})
    assert set(errors) == {"related_adverse_event"}
    death = save(Death, subject, nurse, values | {"related_adverse_event": event})
    assert_saved_by(death, nurse)
    assert str(death) == f"Death on {days_ago(1).isoformat()}: Malignant cerebral edema"


@pytest.mark.parametrize(
    ("model", "visit_code"),
    [(PKPDSample, "D1"), (AdverseEvent, None), (ProtocolDeviation, None), (EndOfStudy, "D180"),
     (EarlyTermination, None), (Death, None)],
)
def test_completion_lists_the_missing_required_items(subject, nurse, model, visit_code):
    errors = refused(model, subject, nurse, {}, visit_code=visit_code,
                     slot="pre_dose" if model.slot_item else "")
    expected = set(model.required_items) - ({"site_aware_at"} if model is AdverseEvent else set())
    assert set(errors) == expected
    assert all(messages == [REQUIRED] for messages in errors.values())
