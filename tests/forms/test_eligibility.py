import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from edc import protocol
from edc.protocol import MAX_NIHSS, MIN_NIHSS, criterion
from forms.derivations import age_in_years, prednisone_equivalent_mg_per_day
from forms.entry.eligibility import (
    CRITERIA,
    CRITERION_CODES,
    Derived,
    EligibilityInputs,
    evaluate,
    verdict,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
ONSET = dt.datetime(2026, 3, 8, 14, 0, tzinfo=SHANGHAI)

ELIGIBLE = EligibilityInputs(
    age_at_consent=45,
    onset_at=ONSET,
    planned_first_infusion_at=ONSET + dt.timedelta(hours=71, minutes=30),
    nihss_total=12,
    nihss_1a=0,
    prestroke_mrs=0,
    ast=48,
    alt=32,
    ast_uln=40,
    alt_uln=40,
    egfr=72,
    max_prednisone_equivalent_mg_per_day=0,
    thrombolysis_or_thrombectomy=False,
    intracranial_hemorrhage=False,
    midline_shift_mm=0,
)
DERIVABLE = tuple(c.code for c in CRITERIA if c.derivable)
ALL_CONFIRMED = dict.fromkeys(CRITERION_CODES, True)


def derived(code: str, **changes) -> Derived:
    return evaluate(dataclasses.replace(ELIGIBLE, **changes))[code]


# The checklist


def test_every_criterion_of_the_registry_record_has_a_stable_code():
    inclusions = [c.code for c in CRITERIA if c.kind == "inclusion"]
    exclusions = [c.code for c in CRITERIA if c.kind == "exclusion"]
    assert inclusions == [f"IN{n:02d}" for n in range(1, 8)]
    assert exclusions == [f"EX{n:02d}" for n in range(1, 15)]
    assert CRITERION_CODES == (*inclusions, *exclusions)


def test_derivable_criteria():
    assert DERIVABLE == (
        "IN01", "IN03", "IN05", "IN06", "EX01", "EX03", "EX06", "EX07", "EX10",
    )


def test_evaluate_derives_exactly_the_derivable_criteria():
    assert tuple(evaluate(ELIGIBLE)) == DERIVABLE
    assert tuple(evaluate(EligibilityInputs())) == DERIVABLE


def test_criterion_lookup():
    assert criterion("EX07").kind == "exclusion"
    assert "60" in str(criterion("EX07").text)
    with pytest.raises(KeyError):
        criterion("EX15")


def test_limits_agree_with_the_protocol_module():
    assert str(protocol.MAX_ONSET_TO_FIRST_INFUSION_HOURS) in str(criterion("IN03").text)
    assert protocol.NIHSS_STRATA[0][0] == MIN_NIHSS
    assert protocol.NIHSS_STRATA[-1][1] == MAX_NIHSS


def test_an_eligible_subject_meets_every_derived_criterion():
    assert {code: d.met for code, d in evaluate(ELIGIBLE).items()} == dict.fromkeys(
        DERIVABLE, True
    )


def test_nothing_entered_means_nothing_derived():
    assert {d.met for d in evaluate(EligibilityInputs()).values()} == {None}


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("IN01", "age 45"),
        ("IN03", "71.5 h"),
        ("IN05", "mRS 0"),
        ("IN06", "NIHSS 12, 1a = 0"),
        ("EX01", "thrombolysis or thrombectomy: no"),
        ("EX03", "intracranial hemorrhage: no"),
        ("EX06", "AST 1.2 × ULN, ALT 0.8 × ULN"),
        ("EX07", "eGFR 72"),
        ("EX10", "prednisone equivalent 0 mg/day"),
    ],
)
def test_value_display(code, display):
    assert evaluate(ELIGIBLE)[code].value_display == display


# IN01 age 18–75 inclusive


@pytest.mark.parametrize(
    ("birth", "consent", "met"),
    [
        (dt.date(2008, 3, 10), dt.date(2026, 3, 9), False),
        (dt.date(2008, 3, 10), dt.date(2026, 3, 10), True),
        (dt.date(2008, 2, 29), dt.date(2026, 2, 28), False),
        (dt.date(2008, 2, 29), dt.date(2026, 3, 1), True),
        (dt.date(1950, 3, 10), dt.date(2026, 3, 9), True),
        (dt.date(1950, 3, 10), dt.date(2026, 3, 10), False),
    ],
)
def test_age_at_the_birthdays(birth, consent, met):
    assert derived("IN01", age_at_consent=age_in_years(birth, consent)).met is met


@pytest.mark.parametrize(("age", "met"), [(17, False), (18, True), (75, True), (76, False)])
def test_age_limits(age, met):
    assert derived("IN01", age_at_consent=age).met is met


# IN03 onset to first infusion ≤ 72 h


@pytest.mark.parametrize(
    ("after_onset", "met", "display"),
    [
        (dt.timedelta(hours=71, minutes=30), True, "71.5 h"),
        (dt.timedelta(hours=72), True, "72 h"),
        (dt.timedelta(hours=72, minutes=1), False, "72.1 h"),
        (dt.timedelta(hours=72, microseconds=1), False, "72.1 h"),
        (dt.timedelta(hours=3), True, "3 h"),
        (dt.timedelta(0), True, "0 h"),
        (dt.timedelta(hours=-2), None, "-2 h"),
    ],
)
def test_onset_to_first_infusion(after_onset, met, display):
    result = derived("IN03", planned_first_infusion_at=ONSET + after_onset)
    assert (result.met, result.value_display) == (met, display)


def test_onset_hours_across_time_zones():
    infusion = dt.datetime(2026, 3, 11, 6, 0, tzinfo=dt.UTC)
    assert derived("IN03", planned_first_infusion_at=infusion).met is True
    assert derived("IN03", planned_first_infusion_at=infusion + dt.timedelta(minutes=1)).met \
        is False


@pytest.mark.parametrize(
    "changes", [{"onset_at": None}, {"planned_first_infusion_at": None}]
)
def test_onset_missing(changes):
    assert derived("IN03", **changes).met is None


def test_onset_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        derived("IN03", onset_at=ONSET.replace(tzinfo=None))


# IN05 pre-stroke mRS ≤ 1


@pytest.mark.parametrize(("mrs", "met"), [(0, True), (1, True), (2, False), (None, None)])
def test_prestroke_mrs(mrs, met):
    assert derived("IN05", prestroke_mrs=mrs).met is met


# IN06 NIHSS 8–20 with 1a ≤ 1


@pytest.mark.parametrize(
    ("total", "loc", "met", "display"),
    [
        (7, 0, False, "NIHSS 7, 1a = 0"),
        (8, 0, True, "NIHSS 8, 1a = 0"),
        (20, 1, True, "NIHSS 20, 1a = 1"),
        (21, 0, False, "NIHSS 21, 1a = 0"),
        (12, 1, True, "NIHSS 12, 1a = 1"),
        (12, 2, False, "NIHSS 12, 1a = 2"),
        (None, 0, None, "NIHSS —, 1a = 0"),
        (12, None, None, "NIHSS 12, 1a = —"),
        (21, None, False, "NIHSS 21, 1a = —"),
        (None, 2, False, "NIHSS —, 1a = 2"),
    ],
)
def test_nihss(total, loc, met, display):
    result = derived("IN06", nihss_total=total, nihss_1a=loc)
    assert (result.met, result.value_display) == (met, display)


# EX01 thrombolysis or thrombectomy, EX03 intracranial hemorrhage


@pytest.mark.parametrize(("answer", "met"), [(False, True), (True, False), (None, None)])
def test_thrombolysis_or_thrombectomy(answer, met):
    assert derived("EX01", thrombolysis_or_thrombectomy=answer).met is met


@pytest.mark.parametrize(("answer", "met"), [(False, True), (True, False), (None, None)])
def test_intracranial_hemorrhage(answer, met):
    assert derived("EX03", intracranial_hemorrhage=answer).met is met


# EX06 AST or ALT > 2.5 × ULN


@pytest.mark.parametrize(
    ("changes", "met", "display"),
    [
        ({"ast": 100, "ast_uln": 40}, True, "AST 2.5 × ULN, ALT 0.8 × ULN"),
        ({"ast": Decimal("100.1"), "ast_uln": 40}, False, "AST 2.51 × ULN, ALT 0.8 × ULN"),
        ({"ast": 101, "ast_uln": 40}, False, "AST 2.53 × ULN, ALT 0.8 × ULN"),
        ({"alt": 87.5, "alt_uln": 35}, True, "AST 1.2 × ULN, ALT 2.5 × ULN"),
        ({"alt": 87.6, "alt_uln": 35}, False, "AST 1.2 × ULN, ALT 2.51 × ULN"),
        # 2.5 × 10.02 is 25.049999999999997 in binary floating point; in decimal it is 25.05.
        ({"alt": 25.05, "alt_uln": 10.02}, True, "AST 1.2 × ULN, ALT 2.5 × ULN"),
        ({"ast": None}, None, "AST — × ULN, ALT 0.8 × ULN"),
        ({"alt_uln": None}, None, "AST 1.2 × ULN, ALT — × ULN"),
        ({"ast": 400, "alt": None}, False, "AST 10 × ULN, ALT — × ULN"),
    ],
)
def test_liver_enzymes_against_the_site_uln(changes, met, display):
    result = derived("EX06", **changes)
    assert (result.met, result.value_display) == (met, display)


def test_float_arithmetic_would_misjudge_the_limit():
    assert 25.05 > 2.5 * 10.02


# EX07 eGFR < 60


@pytest.mark.parametrize(
    ("egfr", "met", "display"),
    [
        (60, True, "eGFR 60"),
        (60.0, True, "eGFR 60"),
        (59.9, False, "eGFR 59.9"),
        (59.99, False, "eGFR 59.9"),
        (Decimal("60.04"), True, "eGFR 60"),
        (95, True, "eGFR 95"),
        (None, None, "eGFR —"),
    ],
)
def test_egfr(egfr, met, display):
    result = derived("EX07", egfr=egfr)
    assert (result.met, result.value_display) == (met, display)


# EX10 systemic corticosteroid > 10 mg/day prednisone equivalent


@pytest.mark.parametrize(
    ("dose", "met", "display"),
    [
        (0, True, "prednisone equivalent 0 mg/day"),
        (10, True, "prednisone equivalent 10 mg/day"),
        (10.0, True, "prednisone equivalent 10 mg/day"),
        (10.1, False, "prednisone equivalent 10.1 mg/day"),
        (10.001, False, "prednisone equivalent 10.01 mg/day"),
        (prednisone_equivalent_mg_per_day("dexamethasone", 1.5), True,
         "prednisone equivalent 10 mg/day"),
        (prednisone_equivalent_mg_per_day("methylprednisolone", 8), True,
         "prednisone equivalent 10 mg/day"),
        (prednisone_equivalent_mg_per_day("hydrocortisone", 20, 2), True,
         "prednisone equivalent 10 mg/day"),
        (prednisone_equivalent_mg_per_day("dexamethasone", 4), False,
         "prednisone equivalent 26.67 mg/day"),
        (None, None, "prednisone equivalent — mg/day"),
    ],
)
def test_corticosteroid_dose(dose, met, display):
    result = derived("EX10", max_prednisone_equivalent_mg_per_day=dose)
    assert (result.met, result.value_display) == (met, display)


def test_midline_shift_decides_nothing():
    assert evaluate(dataclasses.replace(ELIGIBLE, midline_shift_mm=15)) == evaluate(ELIGIBLE)


# Verdict


def test_eligible_when_everything_is_met_and_confirmed():
    result = verdict(evaluate(ELIGIBLE), ALL_CONFIRMED)
    assert result.eligible is True
    assert (result.missing, result.failed, result.contradictions) == ((), (), ())


def test_nothing_entered_nothing_confirmed():
    result = verdict(evaluate(EligibilityInputs()), {})
    assert result.eligible is False
    assert result.missing == CRITERION_CODES
    assert (result.failed, result.contradictions) == ((), ())


@pytest.mark.parametrize("code", CRITERION_CODES)
def test_one_unconfirmed_criterion_blocks_eligibility(code):
    for answer in ({}, {code: None}):
        confirmations = {k: v for k, v in ALL_CONFIRMED.items() if k != code} | answer
        result = verdict(evaluate(ELIGIBLE), confirmations)
        assert result.eligible is False
        assert result.missing == (code,)
        assert result.failed == ()


@pytest.mark.parametrize("code", CRITERION_CODES)
def test_one_criterion_confirmed_false_fails(code):
    result = verdict(evaluate(ELIGIBLE), {**ALL_CONFIRMED, code: False})
    assert result.eligible is False
    assert result.failed == (code,)
    assert result.missing == ()
    expected_contradictions = (code,) if code in DERIVABLE else ()
    assert result.contradictions == expected_contradictions


def test_a_derivable_criterion_not_yet_derived_is_missing_even_when_confirmed():
    inputs = dataclasses.replace(ELIGIBLE, egfr=None)
    result = verdict(evaluate(inputs), ALL_CONFIRMED)
    assert result.eligible is False
    assert result.missing == ("EX07",)
    assert (result.failed, result.contradictions) == ((), ())


def test_a_derived_failure_confirmed_as_met_is_a_contradiction():
    inputs = dataclasses.replace(ELIGIBLE, nihss_total=21, egfr=59.9)
    result = verdict(evaluate(inputs), ALL_CONFIRMED)
    assert result.eligible is False
    assert result.failed == ("IN06", "EX07")
    assert result.contradictions == ("IN06", "EX07")
    assert result.missing == ()


def test_a_derived_failure_not_yet_confirmed_is_failed_and_missing():
    inputs = dataclasses.replace(ELIGIBLE, age_at_consent=76)
    confirmations = {k: v for k, v in ALL_CONFIRMED.items() if k != "IN01"}
    result = verdict(evaluate(inputs), confirmations)
    assert (result.missing, result.failed, result.contradictions) == (("IN01",), ("IN01",), ())


def test_agreeing_failure_is_not_a_contradiction():
    inputs = dataclasses.replace(ELIGIBLE, thrombolysis_or_thrombectomy=True)
    result = verdict(evaluate(inputs), {**ALL_CONFIRMED, "EX01": False})
    assert (result.eligible, result.failed, result.contradictions) == (False, ("EX01",), ())


def test_unknown_criterion_codes_are_refused():
    with pytest.raises(ValueError, match="EX15"):
        verdict(evaluate(ELIGIBLE), {**ALL_CONFIRMED, "EX15": True})
    with pytest.raises(ValueError, match="IN99"):
        verdict({"IN99": Derived("IN99", "", True)}, ALL_CONFIRMED)
