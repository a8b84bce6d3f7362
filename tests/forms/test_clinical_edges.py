"""Issue 14, clinical items: decisions on values at the precision they were computed, bad input
that made a derivation raise, eGFR on the age at the sample date, PK/PD time points, and the
bounds of the planned dose and the MedDRA code. Each test fails on the code before the fix."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from forms.derivations import egfr_ckd_epi_2021, egfr_to_store
from forms.entry import services
from forms.entry.eligibility import EligibilityInputs, evaluate
from forms.models import ConcomitantMedication, Demographics, Infusion, LabPanel, PKPDSample
from forms.models.adverse_events import AdverseEvent
from tests.eligible import confirm_all, enter_screening_data, lab_ranges, save
from tests.factories import randomization_list, randomized_subject, screened_subject
from visits.services import randomization_allocate

NOW = timezone.now


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def aged(years: int, *, days: int = 30) -> dt.date:
    """A birth date making someone ``years`` old today, their birthday ``days`` ago."""
    return years_before(timezone.localdate() - dt.timedelta(days=days), years)


# 1. eGFR: stored and shown rounded down, decided unrounded


@pytest.mark.parametrize(("computed", "stored"), [
    (59.99, Decimal("59.9")), (59.5, Decimal("59.5")), (59.96, Decimal("59.9")),
    (60, Decimal("60.0")), (60.04, Decimal("60.0")), (Decimal("60.0001"), Decimal("60.0")),
    (125.77, Decimal("125.7")),
])
def test_stored_egfr_is_rounded_down(computed, stored):
    assert egfr_to_store(computed) == stored


def test_stored_egfr_never_crosses_the_limit():
    for hundredths in range(5_900, 6_100):
        for extra in (0, 0.001, 0.005, 0.009):
            value = hundredths / 100 + extra
            assert (egfr_to_store(value) < 60) == (value < 60), value


# Man, 64 on the sample date: creatinine 117.6 µmol/L is eGFR 59.67 (60.04 at 63).
EGFR_59_7 = {"creatinine_umol_l": Decimal("117.6"), "sex": "M", "age_at_sample": 64}


@pytest.mark.parametrize(("inputs", "met", "shown"), [
    (EGFR_59_7, False, "eGFR 59.67 mL/min/1.73 m² (CKD-EPI 2021 from creatinine 117.6 µmol/L, "
                       "male, age 64 on the sample date), compared with the limit 60"),
    (EGFR_59_7 | {"age_at_sample": 63}, True, "eGFR 60.04 mL/min"),
    # The stored, rounded eGFR is not what is decided on when creatinine, sex and age are known.
    (EGFR_59_7 | {"egfr": 60}, False, "eGFR 59.67"),
    (EGFR_59_7 | {"sex": None, "egfr": 60}, True, "eGFR 60"),
    ({"creatinine_umol_l": Decimal(0), "sex": "F", "age_at_sample": 50}, None, "eGFR —"),
])
def test_egfr_criterion_is_decided_on_the_recomputed_value(inputs, met, shown):
    result = evaluate(EligibilityInputs(**inputs))["EX07"]
    assert result.met is met
    assert result.value_display.startswith(shown)


@pytest.fixture
def aged_64(site, nurse):
    return screened_subject(site=site, user=nurse, birth_date=aged(64))


def test_eligibility_page_shows_an_egfr_of_59_7_as_the_exclusion_met(client, aged_64, nurse):
    """Issue 14: eGFR 59.67 was stored as 60 and eligibility read it: the exclusion looked
    absent and the subject could be randomized."""
    subject = aged_64
    enter_screening_data(subject, nurse, creatinine=Decimal("117.6"))
    labs = LabPanel.objects.get(subject=subject)
    assert labs.egfr == Decimal("59.6")
    confirm_all(subject, nurse)

    client.force_login(nurse)
    page = client.get(reverse("forms:eligibility", args=[subject.pk])).content.decode()
    row = page.split('<span class="code">EX07</span>', 1)[1].split("</tr>", 1)[0]
    assert "eGFR 59.67 mL/min/1.73 m²" in row
    assert "creatinine 117.6 µmol/L" in row and "age 64" in row
    assert "not met" in row
    _checklist, derived, verdict = services.eligibility_review(subject)
    assert derived["EX07"].met is False
    assert not verdict.eligible and "EX07" in verdict.failed
    with pytest.raises(ValidationError, match="not confirmed eligible"):
        services.subject_randomize(subject=subject, user=nurse)


def test_a_corticosteroid_dose_just_above_the_limit_is_not_rounded_into_it(aged_64, nurse):
    """Cortisone 50.01 mg/day is 10.002 mg prednisone: stored to the nearest hundredth it was
    10.00, within the limit; stored rounded up it is 10.01 and decisions recompute it."""
    subject = aged_64
    medication = services.crf_save(
        crf=ConcomitantMedication(subject=subject), user=nurse, expected_version=0,
        values={"medication": "Cortisone", "corticosteroid": "cortisone",
                "dose": Decimal("50.01"), "indication": "Adrenal insufficiency",
                "start_date": timezone.localdate() - dt.timedelta(days=3)})
    assert medication.prednisone_equivalent == Decimal("10.01")
    inputs = services.eligibility_inputs(subject, None)
    assert inputs.max_prednisone_equivalent_mg_per_day == pytest.approx(10.002)
    assert evaluate(inputs)["EX10"].met is False


# 2. Input that made a derivation raise


def test_a_creatinine_of_0_is_a_field_error_not_a_500(client, aged_64, nurse):
    subject = aged_64
    scr = subject.visits.get(code="SCR")
    save(Demographics, subject, nurse, {"sex": "F", "ethnicity": "han", "height": 160,
                                        "weight": Decimal(60)}, visit=scr)
    client.force_login(nurse)
    response = client.post(
        reverse("forms:visit_crf", args=[subject.pk, scr.pk, "labs"]),
        {"version": 0, "action": "draft", "creatinine": "0", "ast": "31",
         "sampled_at": (timezone.localtime(NOW() - dt.timedelta(hours=1), subject.site.zone)
                        .strftime("%Y-%m-%dT%H:%M"))})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_creatinine_error"' in html and "creatinine of 0" in html
    assert 'value="31"' in html  # nothing typed is lost
    assert not LabPanel.objects.exists()


@pytest.mark.parametrize(("values", "field"), [
    ({"dose": Decimal(-5)}, "dose"),
    ({"dose": Decimal(5), "doses_per_day": Decimal(-1)}, "doses_per_day"),
    ({"dose": Decimal(5), "doses_per_day": Decimal(0)}, "doses_per_day"),
])
def test_a_negative_steroid_dose_is_a_field_error(aged_64, nurse, values, field):
    with pytest.raises(ValidationError) as caught:
        services.crf_save(crf=ConcomitantMedication(subject=aged_64), user=nurse,
                          expected_version=0,
                          values={"medication": "Prednisone", "corticosteroid": "prednisone",
                                  **values})
    assert field in caught.value.message_dict
    assert not ConcomitantMedication.objects.exists()


def test_a_lab_range_needs_a_positive_upper_limit(site):
    from forms.models import LabReferenceRange

    with pytest.raises(IntegrityError), transaction.atomic():
        LabReferenceRange.objects.create(site=site, analyte="ast", low=None, high=0,
                                         effective_from=dt.date(2020, 1, 1))


# 3. eGFR on the age at the sample date


def test_follow_up_egfr_uses_the_age_on_the_sample_date(site, nurse):
    """Consented at 63, 64 on the Day 90 sample: the same creatinine is eGFR 60.04 at 63 and
    59.67 at 64, so the follow-up panel must read the age on the sample date."""
    randomization_list(site)
    randomized_at = NOW() - dt.timedelta(days=89)
    subject = screened_subject(site=site, user=nurse, birth_date=aged(64, days=40),
                               consented_at=randomized_at - dt.timedelta(hours=2))
    assert subject.age_at_consent == 63
    subject = randomization_allocate(subject=subject, stratum="8-14",
                                     randomized_at=randomized_at, user=nurse)
    save(Demographics, subject, nurse, {"sex": "M", "ethnicity": "han", "height": 170,
                                        "weight": Decimal(70)},
         visit=subject.visits.get(code="SCR"))
    lab_ranges(site)
    labs = save(LabPanel, subject, nurse, {"sampled_at": NOW() - dt.timedelta(hours=1),
                                           "creatinine": Decimal("117.6")},
                visit=subject.visits.get(code="D90"), complete=False)
    expected = egfr_ckd_epi_2021(creatinine_umol_l=Decimal("117.6"), age_years=64, sex="M")
    assert labs.egfr == egfr_to_store(expected) == Decimal("59.6")


def test_a_sample_before_the_birth_date_is_refused(site, nurse):
    subject = screened_subject(site=site, user=nurse, birth_date=aged(30))
    scr = subject.visits.get(code="SCR")
    save(Demographics, subject, nurse, {"sex": "F", "ethnicity": "han", "height": 160,
                                        "weight": Decimal(60)}, visit=scr)
    born = subject.identity.birth_date
    sampled = timezone.make_aware(dt.datetime.combine(born - dt.timedelta(days=2), dt.time(9)),
                                  subject.site.zone)
    with pytest.raises(ValidationError) as caught:
        save(LabPanel, subject, nurse, {"sampled_at": sampled, "creatinine": Decimal(70)},
             visit=subject.visits.get(code="SCR"), complete=False)
    assert "sampled_at" in caught.value.message_dict


# 5. PK/PD: one sample per visit and time point, in the casebook and its addresses


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def test_casebook_links_each_pk_pd_time_point_of_day_1(client, subject, nurse):
    client.force_login(nurse)
    d1 = subject.visits.get(code="D1")
    page = client.get(reverse("forms:casebook", args=[subject.pk])).content.decode()
    pre = reverse("forms:visit_crf_slot", args=[subject.pk, d1.pk, "pkpd", "pre_dose"])
    after = reverse("forms:visit_crf_slot", args=[subject.pk, d1.pk, "pkpd", "post_dose_1h"])
    assert pre in page and after in page
    assert "PK/PD sample collection · 1 h post-dose" in page

    collected = timezone.localtime(NOW() - dt.timedelta(minutes=50), subject.site.zone)
    for url in (pre, after):
        response = client.post(url, {"version": 0, "action": "draft", "collected": "True",
                                     "collected_at": collected.strftime("%Y-%m-%dT%H:%M"),
                                     "freezer_id": "F-80-02"})
        assert response.status_code == 302
    assert sorted(PKPDSample.objects.filter(visit=d1).values_list("timepoint", flat=True)) == [
        "post_dose_1h", "pre_dose"]
    assert "1 h post-dose" in client.get(after).content.decode()


def test_pk_pd_addresses_refuse_a_time_point_the_visit_does_not_plan(client, subject, nurse):
    client.force_login(nurse)
    d1, d2 = subject.visits.get(code="D1"), subject.visits.get(code="D2")
    assert client.get(reverse("forms:visit_crf_slot",
                              args=[subject.pk, d1.pk, "pkpd", "24h"])).status_code == 404
    assert client.get(reverse("forms:visit_crf_slot",
                              args=[subject.pk, d2.pk, "vital_signs", "24h"])).status_code == 404
    # Without a time point (a query's link), the address leads to the record or the first one.
    plain = reverse("forms:visit_crf", args=[subject.pk, d1.pk, "pkpd"])
    assert client.get(plain)["Location"] == reverse(
        "forms:visit_crf_slot", args=[subject.pk, d1.pk, "pkpd", "pre_dose"])
    sample = services.crf_save(
        crf=services.crf_instance(model=PKPDSample, subject=subject, visit=d1,
                                  slot="post_dose_1h"),
        values={"collected": True}, user=nurse, expected_version=0)
    assert client.get(f"{plain}?record={sample.pk}")["Location"].endswith("/post_dose_1h/")
    for junk in ("²", "9" * 30, "-1", ""):
        assert client.get(f"{plain}?record={junk}")["Location"].endswith("/pre_dose/")


def test_matrix_counts_each_pk_pd_time_point(client, subject, nurse):
    d1 = subject.visits.get(code="D1")
    services.crf_save(crf=services.crf_instance(model=PKPDSample, subject=subject, visit=d1,
                                                slot="pre_dose"),
                      values={}, user=nurse, expected_version=0, complete=True,
                      not_done_reason="not_done")
    client.force_login(nurse)
    [row] = client.get(reverse("forms:matrix")).context["rows"]
    cell = next(c for c in row.cells if c.visit and c.visit.pk == d1.pk)
    assert (cell.forms_complete, cell.forms_expected) == (1, 5)


# 6. Planned dose and MedDRA code


@pytest.mark.parametrize("dose", ["0", "-1", "0.00"])
def test_a_planned_dose_of_0_or_less_is_refused_in_the_page(client, subject, nurse, dose):
    d1 = subject.visits.get(code="D1")
    client.force_login(nurse)
    response = client.post(reverse("forms:visit_crf", args=[subject.pk, d1.pk, "infusion"]),
                           {"version": 0, "action": "draft", "given": "True",
                            "planned_dose_cells_per_kg": dose, "volume_prepared_ml": "100"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_planned_dose_cells_per_kg_error"' in html and "more than 0" in html
    assert 'value="100"' in html
    assert not Infusion.objects.exists()


def test_a_planned_dose_of_0_is_refused_by_the_model_and_the_database(subject, nurse):
    d1 = subject.visits.get(code="D1")
    with pytest.raises(ValidationError) as caught:
        services.crf_save(crf=Infusion(subject=subject, visit=d1), user=nurse,
                          expected_version=0, values={"planned_dose_cells_per_kg": Decimal(0)})
    assert "planned_dose_cells_per_kg" in caught.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        Infusion.objects.create(subject=subject, visit=d1,
                                planned_dose_cells_per_kg=Decimal("-1"))
    saved = services.crf_save(crf=Infusion(subject=subject, visit=d1), user=nurse,
                              expected_version=0,
                              values={"planned_dose_cells_per_kg": Decimal("0.01")})
    assert saved.planned_dose_cells_per_kg == Decimal("0.01")


@pytest.mark.parametrize("code", ["abc", "1001921", "100192111", "1001921a", "１００１９２１１"])
def test_a_meddra_code_is_8_digits(client, subject, nurse, code):
    client.force_login(nurse)
    response = client.post(reverse("forms:log_new", args=[subject.pk, "adverse_event"]),
                           {"version": 0, "action": "draft", "term": "Headache",
                            "meddra_code": code})
    html = response.content.decode()
    assert response.status_code == 400
    assert "A MedDRA code is 8 digits" in html
    assert "Headache" in html
    assert not AdverseEvent.objects.exists()


def test_an_8_digit_meddra_code_saves_and_the_database_refuses_others(subject, nurse):
    event = services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                              values={"term": "Headache", "meddra_code": "10019211"})
    assert AdverseEvent.objects.get(pk=event.pk).meddra_code == "10019211"
    with pytest.raises(IntegrityError), transaction.atomic():
        AdverseEvent.objects.create(subject=subject, term="Rash", meddra_code="rash")



def test_a_query_on_a_pk_pd_sample_links_to_that_sample(client, site, subject, nurse):
    from edc.roles import Role
    from forms.quality import queries
    from tests.factories import UserFactory

    d1 = subject.visits.get(code="D1")
    sample = services.crf_save(
        crf=services.crf_instance(model=PKPDSample, subject=subject, visit=d1,
                                  slot="post_dose_1h"),
        values={"freezer_id": "F-80-02"}, user=nurse, expected_version=0)
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    queries.query_raise(target=sample, field_name="freezer_id", text="Which rack?",
                        user=monitor)
    client.force_login(monitor)
    page = client.get(reverse("forms:query_list")).content.decode()
    link = reverse("forms:visit_crf", args=[subject.pk, d1.pk, "pkpd"])
    assert f'{link}?record={sample.pk}#item-freezer_id' in page
    assert client.get(f"{link}?record={sample.pk}")["Location"] == reverse(
        "forms:visit_crf_slot", args=[subject.pk, d1.pk, "pkpd", "post_dose_1h"])
