"""Every edit check raises its query on the right item and the query closes itself when the
data pass again; re-runs are idempotent (issue 5). Each check code must appear in this file:
test_every_check_has_a_test enforces it."""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from edc.protocol import ELIGIBILITY_CRITERIA
from forms.entry import services
from forms.models import NIHSS, ConcomitantMedication, LabPanel, VitalSigns
from forms.models.adverse_events import AdverseEvent
from forms.models.deviations import ProtocolDeviation
from forms.models.infusion import Infusion
from forms.models.study_end import Death
from forms.quality.checks import ALL_CHECKS, CHECKS_BY_CODE
from forms.quality.checks.runner import checks_rerun
from forms.quality.queries import Query
from tests.eligible import NIHSS_12, lab_ranges, save
from tests.factories import randomized_subject

NOW = timezone.now


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def at(subject, code):
    return subject.visits.get(code=code)


def today(subject):
    return timezone.localdate(NOW(), subject.site.zone)


def queries(check_code, status=("open", "answered")):
    return list(Query.objects.filter(check_code=check_code, status__in=status))


def resave(crf, user, values, **kwargs):
    crf.refresh_from_db()
    return services.crf_save(crf=crf, values=values, user=user, expected_version=crf.version,
                             complete=crf.status == "complete", reason="Corrected", **kwargs)


def vitals(**changes):
    return {"measured_at": NOW() - dt.timedelta(minutes=5), "systolic_bp": 140,
            "diastolic_bp": 70, "heart_rate": 80, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


def assert_raised_then_resolved(check_code, field, crf, user, bad_to_good):
    [query] = queries(check_code)
    assert query.field_name == field and query.raised_by is None
    assert query.object_id == crf.pk
    resave(crf, user, bad_to_good)
    assert queries(check_code) == []
    closed = Query.objects.get(pk=query.pk)
    assert (closed.status, closed.resolution) == ("closed", "resolved by data change")
    assert closed.messages.filter(kind="auto_closed").exists()


@pytest.mark.parametrize(("code", "field", "bad", "good"), [
    ("VS-001", "systolic_bp", 190, 150), ("VS-001", "systolic_bp", 85, 100),
    ("VS-002", "diastolic_bp", 115, 90), ("VS-003", "heart_rate", 44, 60),
    ("VS-004", "temperature", Decimal("35.4"), Decimal("36.0")),
    ("VS-005", "respiratory_rate", 29, 20), ("VS-006", "spo2", 93, 95),
    ("VS-007", "weight", Decimal("151.0"), Decimal("80.0")),
])
def test_vital_sign_soft_ranges(subject, nurse, code, field, bad, good):
    crf = save(VitalSigns, subject, nurse, vitals(**{field: bad}), visit=at(subject, "D2"))
    assert_raised_then_resolved(code, field, crf, nurse, vitals(**{field: good}))


def test_soft_range_edges_raise_nothing(subject, nurse):
    save(VitalSigns, subject, nurse, vitals(systolic_bp=185, diastolic_bp=110, heart_rate=45,
                                            temperature=Decimal("37.9"), respiratory_rate=28,
                                            spo2=94, weight=Decimal("150.0")),
         visit=at(subject, "D2"))
    assert not Query.objects.exists()


def test_fever_without_fever_adverse_event(subject, nurse):
    crf = save(VitalSigns, subject, nurse, vitals(temperature=Decimal("38.4")),
               visit=at(subject, "D2"))
    [query] = queries("VS-008")
    assert query.field_name == "temperature"
    services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                      values={"term": "Fever", "start_date": today(subject),
                              "special_interest": "fever", "ctcae_grade": 1})
    assert queries("VS-008") == []
    assert crf.pk == query.object_id


def infusion_vitals(**changes):
    return {f"{timepoint}_{name}": value for timepoint in ("pre", "during", "post")
            for name, value in (("systolic_bp", 140), ("diastolic_bp", 80), ("heart_rate", 75),
                                ("temperature", Decimal("36.7")))} | changes


@pytest.mark.parametrize(("code", "field", "bad", "good"), [
    ("INF-003", "pre_systolic_bp", 186, 185), ("INF-003", "post_systolic_bp", 89, 90),
    ("INF-004", "during_diastolic_bp", 111, 110), ("INF-005", "post_heart_rate", 121, 120),
    ("INF-005", "pre_heart_rate", 44, 45),
    ("INF-006", "during_temperature", Decimal("35.4"), Decimal("35.5")),
    ("INF-007", "weight_for_dosing", Decimal("151.0"), Decimal("150.0")),
    ("INF-007", "weight_for_dosing", Decimal("39.9"), Decimal("40.0")),
])
def test_infusion_vital_signs_and_weight_soft_ranges(subject, nurse, code, field, bad, good):
    """Issue 14: the soft ranges of PROTOCOL.md apply to the infusion record's vital signs
    before, during and after the infusion, and to the weight used for dosing."""
    d1 = at(subject, "D1")
    crf = save(Infusion, subject, nurse, infusion_vitals(**{field: bad}), visit=d1,
               complete=False)
    assert [q.field_name for q in queries(code)] == [field]
    assert_raised_then_resolved(code, field, crf, nurse, infusion_vitals(**{field: good}))


def test_infusion_vital_signs_at_the_range_edges_raise_nothing(subject, nurse):
    save(Infusion, subject, nurse, infusion_vitals(
        pre_systolic_bp=90, during_systolic_bp=185, post_diastolic_bp=40,
        pre_heart_rate=120, during_temperature=Decimal("37.9"), weight_for_dosing=40),
        visit=at(subject, "D1"), complete=False)
    assert not Query.objects.exists()


def test_demographics_weight_soft_range(site, nurse):
    from forms.models.screening import Demographics
    from tests.factories import screened_subject

    subject = screened_subject(site=site, user=nurse)
    crf = save(Demographics, subject, nurse, {"sex": "F", "weight": Decimal("39.5")},
               visit=at(subject, "SCR"), complete=False)
    assert_raised_then_resolved("DM-001", "weight", crf, nurse,
                                {"sex": "F", "weight": Decimal("40.0")})


def test_fever_around_the_infusion_without_fever_adverse_event(subject, nurse):
    d1 = at(subject, "D1")
    crf = save(Infusion, subject, nurse, infusion_vitals(post_temperature=Decimal("38.3")),
               visit=d1, complete=False)
    [query] = queries("INF-008")
    assert (query.field_name, query.object_id) == ("post_temperature", crf.pk)
    assert queries("INF-006") != []  # 38.3 is also above the soft range
    services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                      values={"term": "Fever after infusion", "start_date": today(subject),
                              "special_interest": "fever", "ctcae_grade": 1})
    assert queries("INF-008") == []


@pytest.mark.parametrize(("code", "field"), [("LAB-001", "ast"), ("LAB-002", "alt")])
def test_liver_enzymes_above_two_and_a_half_times_uln(subject, nurse, code, field):
    lab_ranges(subject.site)
    values = {"sampled_at": NOW(), "ast": Decimal(30), "alt": Decimal(30),
              "creatinine": Decimal(80)}
    crf = save(LabPanel, subject, nurse, values | {field: Decimal("100.5")},
               visit=at(subject, "D2"), complete=False)
    assert_raised_then_resolved(code, field, crf, nurse, values | {field: Decimal(100)})


def test_lab_sample_date_differs_from_visit_date(subject, nurse):
    d2 = at(subject, "D2")
    services.visit_record(visit=d2, actual_date=today(subject), user=nurse)
    crf = save(LabPanel, subject, nurse, {"sampled_at": NOW() - dt.timedelta(days=1)},
               visit=d2, complete=False)
    assert_raised_then_resolved("LAB-003", "sampled_at", crf, nurse, {"sampled_at": NOW()})


def test_nihss_coma_consistency(subject, nurse):
    coma = NIHSS_12 | {"loc": "3", "loc_questions": "2", "loc_commands": "2",
                       "limb_ataxia": "0", "sensory": "2", "best_language": "3",
                       "dysarthria": "2", "extinction": "1"}
    crf = save(NIHSS, subject, nurse, {"assessed_at": NOW(), **coma}, visit=at(subject, "D2"))
    [query] = queries("NIHSS-001")
    assert query.field_name == "extinction"
    resave(crf, nurse, {"assessed_at": crf.assessed_at, **coma, "extinction": "2"})
    assert queries("NIHSS-001") == []


def test_nihss_worsening_without_adverse_event(subject, nurse):
    save(NIHSS, subject, nurse, {"assessed_at": NOW() - dt.timedelta(days=1), **NIHSS_12},
         visit=at(subject, "SCR"))
    worse = NIHSS_12 | {"motor_leg_left": "4"}  # 12 → 16
    save(NIHSS, subject, nurse, {"assessed_at": NOW(), **worse}, visit=at(subject, "D2"))
    [query] = queries("NIHSS-002")
    assert query.field_name == "total"
    services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                      values={"term": "Neurological deterioration",
                              "start_date": today(subject),
                              "special_interest": "neurological_worsening"})
    assert queries("NIHSS-002") == []


def test_screening_nihss_outside_range_while_eligibility_says_met(subject, nurse):
    mild = NIHSS_12 | {"facial_palsy": "0", "motor_arm_right": "0", "motor_leg_right": "0"}
    crf = save(NIHSS, subject, nurse, {"assessed_at": NOW() - dt.timedelta(hours=3), **mild},
               visit=at(subject, "SCR"))
    assert crf.total == 5
    checklist = services.crf_instance(model=services.EligibilityChecklist, subject=subject,
                                      visit=at(subject, "SCR"))
    services.crf_save(crf=checklist, user=nurse, expected_version=0,
                      values={"confirmations": {c.code: True for c in ELIGIBILITY_CRITERIA}})
    [query] = queries("NIHSS-003")
    assert (query.object_id, query.field_name) == (crf.pk, "total")
    resave(crf, nurse, {"assessed_at": crf.assessed_at, **NIHSS_12})
    assert queries("NIHSS-003") == []


def test_adverse_event_end_before_start_is_refused(subject, nurse):
    with pytest.raises(ValidationError) as caught:
        services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                          values={"term": "Headache", "start_date": today(subject),
                                  "end_date": today(subject) - dt.timedelta(days=1)})
    assert "end_date" in caught.value.message_dict
    assert CHECKS_BY_CODE["AE-001"].severity == "hard"
    assert not AdverseEvent.objects.exists()


def ae(subject, user, **values):
    return services.crf_save(crf=AdverseEvent(subject=subject), user=user, expected_version=0,
                             values={"term": "Pneumonia", "start_date": today(subject)} | values)


def test_serious_adverse_event_without_criterion(subject, nurse):
    crf = ae(subject, nurse, is_serious=True)
    assert_raised_then_resolved("AE-002", "is_serious", crf, nurse,
                                {"is_serious": True, "serious_hospitalization": True})


def test_fatal_outcome_and_death_report_go_together(subject, nurse):
    event = ae(subject, nurse, is_serious=True, serious_death=True, outcome="fatal",
               ctcae_grade=5)
    assert [q.field_name for q in queries("AE-003")] == ["outcome"]
    services.crf_save(crf=Death(subject=subject), user=nurse, expected_version=0,
                      values={"died_on": today(subject), "primary_cause": "Pneumonia"})
    assert queries("AE-003") == [] and queries("DTH-001") == []
    resave(event, nurse, {"outcome": "recovered", "ctcae_grade": 3, "serious_death": False})
    assert [q.field_name for q in queries("DTH-001")] == ["died_on"]


def test_infusion_date_and_kit(subject, nurse):
    d1 = at(subject, "D1")
    services.visit_record(visit=d1, actual_date=subject.day1, user=nurse)
    kit = subject.kits.get(infusion_number=1).kit_number
    started = NOW() - dt.timedelta(days=3) if subject.day1 < today(subject) else NOW()
    crf = save(Infusion, subject, nurse, {"given": True, "kit_number": "999999",
                                          "started_at": started}, visit=d1, complete=False)
    assert [q.field_name for q in queries("INF-002")] == ["kit_number"]
    resave(crf, nurse, {"given": True, "kit_number": kit, "started_at": started})
    assert queries("INF-002") == []
    day1_start = timezone.make_aware(dt.datetime.combine(subject.day1, dt.time(10)),
                                     subject.site.zone)
    expected_inf001 = timezone.localdate(started, subject.site.zone) != subject.day1
    assert bool(queries("INF-001")) == expected_inf001
    resave(crf, nurse, {"given": True, "kit_number": kit,
                        "started_at": min(day1_start, NOW())})
    assert queries("INF-001") == []


def test_corticosteroid_above_ten_mg_prednisone(subject, nurse):
    services.crf_save(crf=ConcomitantMedication(subject=subject), user=nurse,
                      expected_version=0,
                      values={"medication": "Medrol", "corticosteroid": "methylprednisolone",
                              "dose": Decimal(16), "doses_per_day": 1,
                              "start_date": today(subject), "indication": "Asthma"})
    [query] = queries("CM-001")
    assert query.field_name == "dose"
    services.crf_save(crf=ProtocolDeviation(subject=subject), user=nurse, expected_version=0,
                      values={"occurred_on": today(subject),
                              "category": "prohibited_medication",
                              "description": "Methylprednisolone 16 mg/day for asthma"})
    assert queries("CM-001") == []


def test_a_dose_whose_prednisone_equivalent_is_not_a_round_number_can_be_saved(subject, nurse):
    """Dexamethasone 5 mg/day is 33.333… mg prednisone: stored as 33.34 (rounded up, towards
    the limit's failing side), the form saves (a rounded float was refused by the two-decimal
    field) and the limit is queried."""
    crf = services.crf_save(crf=ConcomitantMedication(subject=subject), user=nurse,
                            expected_version=0,
                            values={"medication": "Decadron", "corticosteroid": "dexamethasone",
                                    "dose": Decimal(5), "doses_per_day": 1,
                                    "start_date": today(subject), "indication": "Cerebral edema"})
    assert ConcomitantMedication.objects.get(pk=crf.pk).prednisone_equivalent == Decimal("33.34")
    assert [q.field_name for q in queries("CM-001")] == ["dose"]


def test_visit_date_outside_window(site, nurse):
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=NOW() - dt.timedelta(days=20))
    d2, d8 = at(subject, "D2"), at(subject, "D8")
    services.visit_record(visit=d2, actual_date=d2.window_end, user=nurse)
    assert queries("VIS-001") == []
    services.visit_record(visit=d8, actual_date=d8.window_start - dt.timedelta(days=1),
                          user=nurse)
    [query] = queries("VIS-001")
    assert (query.field_name, query.object_id) == ("actual_date", d8.pk)
    services.visit_record(visit=d8, actual_date=d8.planned_date, user=nurse,
                          reason="Date mistyped")
    assert queries("VIS-001") == []
    assert Query.objects.get(pk=query.pk).resolution == "resolved by data change"


def test_date_before_consent(subject, nurse):
    before = timezone.localdate(subject.consented_at, subject.site.zone) - dt.timedelta(days=2)
    crf = ae(subject, nurse, start_date=before)
    assert [q.field_name for q in queries("DATE-001")] == ["start_date"]
    resave(crf, nurse, {"start_date": today(subject)})
    assert queries("DATE-001") == []


def test_repeated_saves_and_reruns_never_duplicate_queries(subject, nurse):
    crf = save(VitalSigns, subject, nurse, vitals(heart_rate=130), visit=at(subject, "D2"),
               complete=False)
    resave(crf, nurse, vitals(heart_rate=131))
    assert len(queries("VS-003")) == 1
    first = checks_rerun()
    second = checks_rerun()
    assert sum(first.opened.values()) == 0 and sum(second.opened.values()) == 0
    assert sum(second.closed.values()) == 0
    assert len(queries("VS-003")) == 1


def test_rerun_command_reports_what_changed(subject, nurse, capsys):
    save(VitalSigns, subject, nurse, vitals(heart_rate=130), visit=at(subject, "D2"))
    call_command("run_edit_checks")
    out = capsys.readouterr().out
    assert "subjects checked" in out
    call_command("run_edit_checks")
    assert "0 queries opened, 0 closed" in capsys.readouterr().out


def test_every_check_has_a_code_a_message_and_a_test():
    source = Path(__file__).read_text()
    for check in ALL_CHECKS:
        assert re.fullmatch(r"[A-Z]+-\d{3}", check.code), check.code
        assert str(check.message).strip(), check.code
        assert check.severity in ("hard", "soft")
        assert f'"{check.code}"' in source, f"{check.code} has no test"


def test_edit_check_specification_page_and_csv(client, site, nurse):
    client.force_login(nurse)
    page = client.get(reverse("forms:edit_checks")).content.decode()
    csv = client.get(reverse("forms:edit_checks") + "?format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0] == "code,form,fields,severity,message"
    assert len(lines) == len(ALL_CHECKS) + 1
    for check in ALL_CHECKS:
        assert check.code in page
