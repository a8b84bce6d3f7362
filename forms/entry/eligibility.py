"""The eligibility checklist (PROTOCOL.md, "Eligibility", from the registry record) as data, what
the system derives from entered data, and the verdict that gates randomization.

The system derives what it can (age, onset to first infusion, NIHSS, pre-stroke mRS, AST/ALT
against the site lab's ULN, eGFR, steroid dose, thrombolysis or thrombectomy, hemorrhage); the
investigator confirms every criterion. Randomization needs every criterion confirmed and no
derived value failing or missing.

Limits are compared in decimal arithmetic on the values as entered (a float is read at its
shortest decimal representation), with no tolerance: AST 100 U/L against a ULN of 40 U/L is
exactly 2.5 × ULN and meets the criterion, 100.1 U/L does not. Durations are compared as exact
time spans. Displayed numbers are rounded towards the failing side, so a value that fails a limit
never looks as if it sat on it (72 h 1 min shows as 72.1 h, eGFR 59.99 as 59.9).
"""

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.utils.translation import gettext_lazy as _

from edc.protocol import (
    ELIGIBILITY_CRITERIA,
    MAX_AGE_YEARS,
    MAX_NIHSS,
    MAX_NIHSS_1A,
    MAX_ONSET_TO_FIRST_INFUSION_HOURS,
    MAX_PREDNISONE_MG_PER_DAY,
    MAX_PRESTROKE_MRS,
    MAX_TIMES_ULN,
    MIN_AGE_YEARS,
    MIN_EGFR,
    MIN_NIHSS,
)
from forms.derivations import Number, egfr_ckd_epi_2021, hours_between, to_decimal

NOT_ENTERED = "—"
CRITERIA = ELIGIBILITY_CRITERIA
CRITERION_CODES: tuple[str, ...] = tuple(c.code for c in CRITERIA)


@dataclass(frozen=True)
class EligibilityInputs:
    """Entered data the criteria are derived from; None while not yet entered.

    ``intracranial_hemorrhage`` is hemorrhage beyond petechial: petechial hemorrhage alone is
    the investigator's call (PROTOCOL.md), so it is passed as False and decided by the
    confirmation. ``max_prednisone_equivalent_mg_per_day`` is the highest daily dose of systemic
    corticosteroid within 14 days before dosing (0 when none was given); it covers the steroid
    half of EX10, the investigator confirms the immunosuppressant half. eGFR is decided on the value
    computed from creatinine, sex and age (never on a rounded, stored eGFR), and the display
    names what it was computed from. ``midline_shift_mm`` is
    kept for the record but decides nothing: EX04 also needs the investigator's judgement of
    the likelihood of surgery or poor prognosis, so it is confirmed, never derived.
    """

    age_at_consent: int | None = None
    onset_at: dt.datetime | None = None
    planned_first_infusion_at: dt.datetime | None = None
    nihss_total: int | None = None
    nihss_1a: int | None = None
    prestroke_mrs: int | None = None
    ast: Number | None = None
    alt: Number | None = None
    ast_uln: Number | None = None
    alt_uln: Number | None = None
    egfr: Number | None = None
    # eGFR is recomputed from these when all three are known (``egfr`` is then not read):
    # creatinine as entered, the sex and the age on the sample date.
    creatinine_umol_l: Number | None = None
    sex: str | None = None
    age_at_sample: int | None = None
    max_prednisone_equivalent_mg_per_day: Number | None = None
    thrombolysis_or_thrombectomy: bool | None = None
    intracranial_hemorrhage: bool | None = None
    midline_shift_mm: Number | None = None


@dataclass(frozen=True)
class Derived:
    code: str
    # The value the system used, as shown beside the criterion.
    value_display: str
    # True: the inclusion is satisfied, or the subject is free of the exclusion. None: missing.
    met: bool | None


@dataclass(frozen=True)
class Verdict:
    eligible: bool
    # Codes in CRITERIA order. A code may be both missing and failed.
    missing: tuple[str, ...]
    failed: tuple[str, ...]
    contradictions: tuple[str, ...]


def _all_met(*results: bool | None) -> bool | None:
    """Three-valued AND: any failure fails, else any unknown is unknown."""
    if any(result is False for result in results):
        return False
    if any(result is None for result in results):
        return None
    return True


def _shown(value: Decimal, places: int, rounding: str) -> str:
    text = f"{value.quantize(Decimal(1).scaleb(-places), rounding=rounding):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _shown_or_missing(value: object) -> str:
    return NOT_ENTERED if value is None else str(value)


def _age(inputs: EligibilityInputs) -> Derived:
    age = inputs.age_at_consent
    met = None if age is None else MIN_AGE_YEARS <= age <= MAX_AGE_YEARS
    return Derived("IN01", _("age %(age)s") % {"age": _shown_or_missing(age)}, met)


def _onset(inputs: EligibilityInputs) -> Derived:
    """A planned infusion before onset is an entry error, not a result: met is None."""
    onset, infusion = inputs.onset_at, inputs.planned_first_infusion_at
    if onset is None or infusion is None:
        return Derived("IN03", _("%(hours)s h") % {"hours": NOT_ENTERED}, None)
    hours = hours_between(onset, infusion)
    met = None if hours < 0 else (
        infusion - onset <= dt.timedelta(hours=MAX_ONSET_TO_FIRST_INFUSION_HOURS)
    )
    shown = _shown(to_decimal(hours), 1, ROUND_CEILING)
    return Derived("IN03", _("%(hours)s h") % {"hours": shown}, met)


def _prestroke_mrs(inputs: EligibilityInputs) -> Derived:
    mrs = inputs.prestroke_mrs
    met = None if mrs is None else mrs <= MAX_PRESTROKE_MRS
    return Derived("IN05", _("mRS %(mrs)s") % {"mrs": _shown_or_missing(mrs)}, met)


def _nihss(inputs: EligibilityInputs) -> Derived:
    total, loc = inputs.nihss_total, inputs.nihss_1a
    met = _all_met(
        None if total is None else MIN_NIHSS <= total <= MAX_NIHSS,
        None if loc is None else loc <= MAX_NIHSS_1A,
    )
    display = _("NIHSS %(total)s, 1a = %(loc)s") % {
        "total": _shown_or_missing(total), "loc": _shown_or_missing(loc),
    }
    return Derived("IN06", display, met)


def _yes_no(value: bool | None) -> str:
    if value is None:
        return NOT_ENTERED
    return str(_("yes") if value else _("no"))


def _thrombolysis(inputs: EligibilityInputs) -> Derived:
    done = inputs.thrombolysis_or_thrombectomy
    display = _("thrombolysis or thrombectomy: %(answer)s") % {"answer": _yes_no(done)}
    return Derived("EX01", display, None if done is None else not done)


def _hemorrhage(inputs: EligibilityInputs) -> Derived:
    bleed = inputs.intracranial_hemorrhage
    display = _("intracranial hemorrhage: %(answer)s") % {"answer": _yes_no(bleed)}
    return Derived("EX03", display, None if bleed is None else not bleed)


def _times_uln(value: Number | None, uln: Number | None) -> tuple[str, bool | None]:
    if value is None or uln is None:
        return NOT_ENTERED, None
    result, limit = to_decimal(value), to_decimal(uln)
    if limit <= 0:
        raise ValueError("The upper limit of normal must be positive.")
    return _shown(result / limit, 2, ROUND_CEILING), result <= MAX_TIMES_ULN * limit


def _liver(inputs: EligibilityInputs) -> Derived:
    ast_shown, ast_met = _times_uln(inputs.ast, inputs.ast_uln)
    alt_shown, alt_met = _times_uln(inputs.alt, inputs.alt_uln)
    display = _("AST %(ast)s × ULN, ALT %(alt)s × ULN") % {"ast": ast_shown, "alt": alt_shown}
    return Derived("EX06", display, _all_met(ast_met, alt_met))


def _egfr(inputs: EligibilityInputs) -> Derived:
    """Compared unrounded with the limit; shown rounded down (59.99 as 59.9, never 60)."""
    scr, sex, age = inputs.creatinine_umol_l, inputs.sex, inputs.age_at_sample
    if scr is not None and sex is not None and age is not None:
        try:
            value = egfr_ckd_epi_2021(creatinine_umol_l=scr, age_years=age, sex=sex)
        except ValueError:  # a creatinine of 0 cannot be saved; nothing to decide on
            return Derived("EX07", _("eGFR %(egfr)s") % {"egfr": NOT_ENTERED}, None)
        egfr = to_decimal(value)
        display = _("eGFR %(egfr)s mL/min/1.73 m² (CKD-EPI 2021 from creatinine %(scr)s µmol/L, "
                    "%(sex)s, age %(age)s on the sample date), compared with the limit "
                    "%(limit)s") % {
            "egfr": _shown(egfr, 2, ROUND_FLOOR), "scr": _shown(to_decimal(scr), 3, ROUND_FLOOR),
            "sex": _("female") if sex == "F" else _("male"), "age": age, "limit": MIN_EGFR,
        }
        return Derived("EX07", display, egfr >= MIN_EGFR)
    if inputs.egfr is None:
        return Derived("EX07", _("eGFR %(egfr)s") % {"egfr": NOT_ENTERED}, None)
    egfr = to_decimal(inputs.egfr)
    shown = _shown(egfr, 1, ROUND_FLOOR)
    return Derived("EX07", _("eGFR %(egfr)s") % {"egfr": shown}, egfr >= MIN_EGFR)


def _steroid(inputs: EligibilityInputs) -> Derived:
    dose = inputs.max_prednisone_equivalent_mg_per_day
    if dose is None:
        shown, met = NOT_ENTERED, None
    else:
        shown = _shown(to_decimal(dose), 2, ROUND_CEILING)
        met = to_decimal(dose) <= MAX_PREDNISONE_MG_PER_DAY
    display = _("prednisone equivalent %(dose)s mg/day") % {"dose": shown}
    return Derived("EX10", display, met)


_DERIVATIONS: tuple[Callable[[EligibilityInputs], Derived], ...] = (
    _age, _onset, _prestroke_mrs, _nihss, _thrombolysis, _hemorrhage, _liver, _egfr, _steroid,
)


def evaluate(inputs: EligibilityInputs) -> dict[str, Derived]:
    """The derived value of every derivable criterion, by code, in CRITERIA order."""
    derived = {d.code: d for d in (derivation(inputs) for derivation in _DERIVATIONS)}
    return {code: derived[code] for code in CRITERION_CODES if code in derived}


def verdict(
    derived: Mapping[str, Derived], confirmations: Mapping[str, bool | None]
) -> Verdict:
    """Whether the subject may be randomized (PROTOCOL.md: "Randomization is impossible unless
    every criterion is met and confirmed").

    ``confirmations`` are the investigator's answers by criterion code, True meaning the
    inclusion is satisfied or the exclusion absent. A criterion is *missing* while it is not
    confirmed or, if derivable, not yet derived; *failed* when its derived or confirmed value is
    False; a *contradiction* when a derived value and the confirmation disagree.
    """
    unknown = sorted((set(derived) | set(confirmations)) - set(CRITERION_CODES))
    if unknown:
        raise ValueError(f"Unknown eligibility criteria: {', '.join(unknown)}.")
    missing, failed, contradictions = [], [], []
    for item in CRITERIA:
        confirmed = confirmations.get(item.code)
        computed = derived[item.code].met if item.code in derived else None
        if confirmed is None or (item.derivable and computed is None):
            missing.append(item.code)
        if confirmed is False or computed is False:
            failed.append(item.code)
        if confirmed is not None and computed is not None and confirmed != computed:
            contradictions.append(item.code)
    return Verdict(
        eligible=not missing and not failed,
        missing=tuple(missing),
        failed=tuple(failed),
        contradictions=tuple(contradictions),
    )
