"""The one write path for CRFs: hard checks (all errors at once), derived values, required
items on completion, missing-data reasons, reasons for change, consent first, optimistic
locking (issue 4)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from edc import protocol
from edc.history import system_writes
from edc.roles import Role
from forms.entry import services
from forms.models import CRF_MODELS, NIHSS, CRFStatus, LabPanel, LabReferenceRange, VitalSigns
from forms.models.screening import Demographics
from tests.eligible import NIHSS_12, lab_ranges, save
from tests.factories import (
    UserFactory,
    randomization_list,
    randomized_subject,
    screened_subject,
)
from visits.models import Subject

NOW = timezone.now


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def visit(subject, code):
    return subject.visits.get(code=code)


def good_vitals():
    return {"measured_at": NOW() - dt.timedelta(minutes=5), "systolic_bp": 142,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")}


def test_every_hard_error_is_reported_at_once(subject, nurse):
    values = good_vitals() | {"systolic_bp": 300, "diastolic_bp": 20, "heart_rate": 10,
                              "temperature": Decimal("45.0"),
                              "measured_at": NOW() + dt.timedelta(days=1)}
    with pytest.raises(ValidationError) as caught:
        save(VitalSigns, subject, nurse, values, visit=visit(subject, "D2"))
    assert set(caught.value.message_dict) == {"systolic_bp", "heart_rate", "temperature",
                                              "measured_at"}
    assert "between 50 and 280" in caught.value.message_dict["systolic_bp"][0]
    assert not VitalSigns.objects.exists()


def test_diastolic_must_be_below_systolic(subject, nurse):
    with pytest.raises(ValidationError) as caught:
        save(VitalSigns, subject, nurse, good_vitals() | {"systolic_bp": 120,
                                                          "diastolic_bp": 120},
             visit=visit(subject, "D2"))
    assert list(caught.value.message_dict) == ["diastolic_bp"]


def test_nihss_total_is_computed_with_untestable_items_stored_as_un(subject, nurse):
    items = NIHSS_12 | {"motor_arm_right": "UN"}
    with pytest.raises(ValidationError) as caught:
        save(NIHSS, subject, nurse, {"assessed_at": NOW(), **items}, visit=visit(subject, "D2"))
    assert list(caught.value.message_dict) == ["un_explanation"]
    nihss = save(NIHSS, subject, nurse, {"assessed_at": NOW(), **items,
                                         "un_explanation": "Right arm amputated"},
                 visit=visit(subject, "D2"))
    nihss.refresh_from_db()
    assert nihss.motor_arm_right == "UN"
    assert nihss.total == 12 - 3


def test_un_is_refused_on_an_item_that_does_not_allow_it(subject, nurse):
    with pytest.raises(ValidationError) as caught:
        save(NIHSS, subject, nurse, {"assessed_at": NOW(), **NIHSS_12, "loc": "UN",
                                     "un_explanation": "x"}, visit=visit(subject, "D2"))
    assert "loc" in caught.value.message_dict


def test_completion_requires_the_required_items_or_a_missing_reason(subject, nurse):
    d2 = visit(subject, "D2")
    partial = {k: v for k, v in good_vitals().items() if k not in ("spo2", "temperature")}
    draft = save(VitalSigns, subject, nurse, partial, visit=d2, complete=False)
    assert draft.status == CRFStatus.IN_PROGRESS
    with pytest.raises(ValidationError) as caught:
        services.crf_save(crf=draft, values=partial, user=nurse, expected_version=1,
                          complete=True)
    assert set(caught.value.message_dict) == {"spo2", "temperature"}
    done = services.crf_save(crf=draft, values=partial, user=nurse, expected_version=1,
                             complete=True,
                             missing_items={"spo2": "not_done", "temperature": "unknown"})
    assert done.status == CRFStatus.COMPLETE
    assert done.missing_items == {"spo2": "not_done", "temperature": "unknown"}


def test_an_item_cannot_have_a_value_and_a_missing_reason(subject, nurse):
    with pytest.raises(ValidationError) as caught:
        services.crf_save(crf=VitalSigns(subject=subject, visit=visit(subject, "D2")),
                          values=good_vitals(), user=nurse, expected_version=0,
                          missing_items={"spo2": "not_done"})
    assert list(caught.value.message_dict) == ["spo2"]


def test_whole_form_not_done_completes_without_items(subject, nurse):
    crf = services.crf_save(crf=VitalSigns(subject=subject, visit=visit(subject, "D2")),
                            values={}, user=nurse, expected_version=0, complete=True,
                            not_done_reason="not_done")
    assert (crf.status, crf.not_done_reason) == (CRFStatus.COMPLETE, "not_done")


def test_changing_a_completed_form_needs_a_reason_recorded_in_history(subject, nurse):
    crf = save(VitalSigns, subject, nurse, good_vitals(), visit=visit(subject, "D2"))
    changed = good_vitals() | {"heart_rate": 88}
    with pytest.raises(ValidationError, match="reason"):
        services.crf_save(crf=crf, values=changed, user=nurse, expected_version=1,
                          complete=True)
    services.crf_save(crf=crf, values=changed, user=nurse, expected_version=1, complete=True,
                      reason="Transcription error")
    latest, previous = crf.history.all()[:2]
    assert (previous.heart_rate, latest.heart_rate) == (78, 88)
    assert latest.history_change_reason == "Transcription error"
    assert latest.history_user == nurse


def test_second_save_from_a_stale_copy_is_refused(subject, nurse):
    crf = save(VitalSigns, subject, nurse, good_vitals(), visit=visit(subject, "D2"),
               complete=False)
    other = UserFactory(role=Role.SITE_STAFF, sites=[subject.site])
    services.crf_save(crf=crf, values=good_vitals() | {"heart_rate": 90}, user=other,
                      expected_version=1)
    with pytest.raises(services.EditConflict) as caught:
        services.crf_save(crf=crf, values=good_vitals() | {"heart_rate": 70}, user=nurse,
                          expected_version=1)
    assert caught.value.current.heart_rate == 90
    assert VitalSigns.objects.get().heart_rate == 90


def test_conflicting_save_in_the_browser_keeps_the_input(client, subject, nurse):
    d2 = visit(subject, "D2")
    crf = save(VitalSigns, subject, nurse, good_vitals(), visit=d2, complete=False)
    url = reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"])
    services.crf_save(crf=crf, values=good_vitals() | {"heart_rate": 90}, user=nurse,
                      expected_version=1)
    client.force_login(nurse)
    posted = {k: (v.strftime("%Y-%m-%dT%H:%M") if isinstance(v, dt.datetime) else v)
              for k, v in (good_vitals() | {"heart_rate": 66}).items()}
    response = client.post(url, posted | {"version": 1, "action": "draft"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "Someone else saved this form" in html
    assert 'value="66"' in html
    assert "Saved meanwhile: 90" in html
    assert VitalSigns.objects.get().heart_rate == 90


def test_bad_input_in_the_browser_is_a_400_with_errors_beside_fields(client, subject, nurse):
    d2 = visit(subject, "D2")
    client.force_login(nurse)
    response = client.post(
        reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]),
        {"version": 0, "action": "complete", "systolic_bp": "300", "diastolic_bp": "abc",
         "heart_rate": "80"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_diastolic_bp_error"' in html
    assert 'value="300"' in html and 'value="80"' in html
    assert not VitalSigns.objects.exists()


def test_no_clinical_data_before_consent(client, site, nurse):
    subject = screened_subject(site=site, user=nurse, consent=False)
    with pytest.raises(ValidationError, match="before informed consent"):
        services.crf_save(crf=Demographics(subject=subject), values={"sex": "F"}, user=nurse,
                          expected_version=0)
    client.force_login(nurse)
    response = client.post(reverse("forms:log_new", args=[subject.pk, "concomitant_medication"]),
                           {"version": 0, "medication": "Aspirin", "action": "draft"})
    assert response.status_code == 400
    assert "before informed consent" in response.content.decode()


def test_monitor_cannot_enter_data(subject, site):
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    with pytest.raises(PermissionDenied):
        save(VitalSigns, subject, monitor, good_vitals(), visit=visit(subject, "D2"))


@pytest.mark.parametrize(
    ("ast", "flag", "x_uln"),
    [(Decimal(40), "normal", Decimal("1.00")), (Decimal(41), "high", Decimal("1.03")),
     (Decimal(100), "high", Decimal("2.50"))],
)
def test_lab_flags_and_times_uln_at_the_boundaries(subject, nurse, ast, flag, x_uln):
    lab_ranges(subject.site)
    save(Demographics, subject, nurse, {"sex": "F", "ethnicity": "han", "height": 160,
                                        "weight": 60}, visit=visit(subject, "SCR"))
    labs = save(LabPanel, subject, nurse, {
        "sampled_at": NOW(), "ast": ast, "alt": Decimal(20), "creatinine": Decimal("88.4"),
        "hemoglobin": 130, "wbc": Decimal(6), "platelets": 200}, visit=visit(subject, "D2"))
    assert (labs.ast_flag, labs.ast_x_uln) == (flag, x_uln)
    assert labs.ranges_used["ast"] == ["0.000", "40.000", "U/L"]
    # CKD-EPI 2021, woman, creatinine 1.0 mg/dL (88.4 µmol/L): see test_derivations.
    assert labs.egfr is not None


def test_sex_specific_reference_range_in_force_on_the_sample_date(subject, nurse):
    site = subject.site
    with system_writes():  # test data written directly
        LabReferenceRange.objects.create(site=site, analyte="hemoglobin", low=130, high=175,
                                         sex="M", effective_from=dt.date(2020, 1, 1))
    with system_writes():  # test data written directly
        LabReferenceRange.objects.create(site=site, analyte="hemoglobin", low=115, high=150,
                                         sex="F", effective_from=dt.date(2020, 1, 1),
                                         effective_to=dt.date(2024, 12, 31))
    with system_writes():  # test data written directly
        LabReferenceRange.objects.create(site=site, analyte="hemoglobin", low=120, high=155,
                                         sex="F", effective_from=dt.date(2025, 1, 1))
    save(Demographics, subject, nurse, {"sex": "F", "ethnicity": "han", "height": 160,
                                        "weight": 60}, visit=visit(subject, "SCR"))
    labs = save(LabPanel, subject, nurse, {"sampled_at": NOW(), "hemoglobin": 118},
                visit=visit(subject, "D2"), complete=False)
    assert labs.hemoglobin_flag == "low"
    assert labs.ranges_used["hemoglobin"][:2] == ["120.000", "155.000"]


def _matrix_subjects(site, nurse, count):
    randomization_list(site, rows_per_stratum=count)
    for _ in range(count):
        randomized_subject(site=site, user=nurse)


@pytest.mark.parametrize("count", [5, 50])
def test_matrix_query_count_does_not_depend_on_subjects(client, site, nurse, count,
                                                        django_assert_max_num_queries):
    _matrix_subjects(site, nurse, count)
    client.force_login(nurse)
    budget = 10 + len(CRF_MODELS)
    with django_assert_max_num_queries(budget):
        response = client.get(reverse("forms:matrix"))
    assert response.status_code == 200
    assert len(response.context["rows"]) == count
    assert Subject.objects.count() == count


def test_casebook_lists_every_visit_and_expected_crf(client, subject, nurse):
    client.force_login(nurse)
    response = client.get(reverse("forms:casebook", args=[subject.pk]))
    rows = response.context["visit_rows"]
    assert [r.visit.code for r in rows] == [v.code for v in protocol.VISITS]
    for row in rows:
        visit = protocol.visit_def(row.visit.code)
        assert list(dict.fromkeys(f.code for f in row.forms)) == list(visit.crfs)
        assert [(f.code, f.slot) for f in row.forms] == list(visit.expected_forms())


def test_links_to_adverse_events_offer_only_this_subjects_events(client, site, nurse):
    from forms.models.adverse_events import AdverseEvent

    mine, theirs = (randomized_subject(site=site, user=nurse) for _ in range(2))
    for who, term in ((mine, "Headache"), (theirs, "Rash of another subject")):
        services.crf_save(crf=AdverseEvent(subject=who), user=nurse, expected_version=0,
                          values={"term": term, "start_date": timezone.localdate()})
    client.force_login(nurse)
    d1 = mine.visits.get(code="D1")
    html = client.get(reverse("forms:visit_crf", args=[mine.pk, d1.pk, "infusion"])).content
    assert b"Headache" in html
    assert b"Rash of another subject" not in html


def test_every_saved_date_shows_its_study_day(client, subject, nurse):
    d2 = visit(subject, "D2")
    day1 = subject.day1
    measured = timezone.make_aware(dt.datetime.combine(day1 + dt.timedelta(days=1),
                                                       dt.time(9, 0)), subject.site.zone)
    measured = min(measured, NOW())  # not in the future (before 09:00 on the day after Day 1)
    save(VitalSigns, subject, nurse, good_vitals() | {"measured_at": measured}, visit=d2)
    client.force_login(nurse)
    html = client.get(reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]))
    # Day 1 is study day 1 and the next calendar day (at the site) study day 2, at any hour.
    expected = (timezone.localdate(measured, subject.site.zone) - day1).days + 1
    assert f"Study day {expected}" in html.content.decode()
