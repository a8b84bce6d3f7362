"""Clinical arithmetic: scale totals, laboratory conversions and flags, age, corticosteroid dose
and time spans. Pure functions of values, no database.

Totals and eGFR are computed here and never typed (PROTOCOL.md, "Scales" and "Laboratory
panel"). Entry checks that belong to one item (a score out of range, UN where the scale does
not allow it) are returned as messages by item code, for the form to show beside the item.
"""

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from django.utils.translation import gettext_lazy as _

from visits.schedule import age_in_years as age_in_years

Number = Decimal | float | int

UNTESTABLE = "UN"

NIHSS_ITEMS: tuple[tuple[str, int], ...] = (
    ("1a", 3), ("1b", 2), ("1c", 2), ("2", 2), ("3", 3), ("4", 3),
    ("5a", 4), ("5b", 4), ("6a", 4), ("6b", 4),
    ("7", 2), ("8", 2), ("9", 3), ("10", 2), ("11", 2),
)
NIHSS_UN_ALLOWED: frozenset[str] = frozenset({"5a", "5b", "6a", "6b", "7", "10"})
NIHSS_COMA_SCORE = 3
NIHSS_COMA_REQUIRED: tuple[tuple[str, int], ...] = (
    ("1b", 2), ("1c", 2), ("7", 0), ("8", 2), ("9", 3), ("10", 2), ("11", 2),
)

BARTHEL_ITEMS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("feeding", (0, 5, 10)),
    ("bathing", (0, 5)),
    ("grooming", (0, 5)),
    ("dressing", (0, 5, 10)),
    ("bowels", (0, 5, 10)),
    ("bladder", (0, 5, 10)),
    ("toilet_use", (0, 5, 10)),
    ("transfers", (0, 5, 10, 15)),
    ("mobility", (0, 5, 10, 15)),
    ("stairs", (0, 5, 10)),
)

CREATININE_UMOL_L_PER_MG_DL = Decimal("88.4")

# CKD-EPI 2021 coefficients by sex: κ, α, sex factor.
_CKD_EPI_2021: dict[str, tuple[float, float, float]] = {
    "F": (0.7, -0.241, 1.012),
    "M": (0.9, -0.302, 1.0),
}

# mg of each corticosteroid equivalent to 5 mg prednisone (anti-inflammatory potency, oral or IV).
_DOSE_EQUIVALENT_TO_5_MG_PREDNISONE: dict[str, str] = {
    "prednisone": "5",
    "prednisolone": "5",
    "methylprednisolone": "4",
    "hydrocortisone": "20",
    "cortisone": "25",
    "dexamethasone": "0.75",
    "betamethasone": "0.6",
    "triamcinolone": "4",
}
_PREDNISONE_MG_PER_MG: dict[str, Fraction] = {
    drug: Fraction(5) / Fraction(dose) for drug, dose in _DOSE_EQUIVALENT_TO_5_MG_PREDNISONE.items()
}
PREDNISONE_EQUIVALENT_MG: Mapping[str, float] = MappingProxyType(
    {drug: float(ratio) for drug, ratio in _PREDNISONE_MG_PER_MG.items()}
)
"""mg of prednisone per mg of each systemic corticosteroid (lowercase name).

From the usual table of equivalent anti-inflammatory doses for oral or IV use (Meikle and Tyler,
Am J Med 1977;63:200, as in the BNF and Lexicomp tables): 5 mg prednisone = 5 mg prednisolone =
4 mg methylprednisolone = 4 mg triamcinolone = 20 mg hydrocortisone = 25 mg cortisone =
0.75 mg dexamethasone = 0.6 mg betamethasone. The factors are exact ratios (dexamethasone
5/0.75 = 6.666…, not 6.67), so 1.5 mg dexamethasone is exactly the 10 mg/day limit.
"""


def to_decimal(value: Number) -> Decimal:
    """The value as entered, in decimal: a float is read at its shortest representation, so
    0.1 is Decimal("0.1") and not the binary fraction nearest to it."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# NIHSS (PROTOCOL.md, Scales)

def nihss_item_errors(items: Mapping[str, int | str | None]) -> dict[str, str]:
    """Impossible item scores by item code. Items not yet entered (None) are not errors here;
    whether the form is complete is the form's business."""
    errors: dict[str, str] = {}
    for code, maximum in NIHSS_ITEMS:
        value = items.get(code)
        if value is None:
            continue
        params = {"item": code, "max": maximum}
        if value == UNTESTABLE:
            if code not in NIHSS_UN_ALLOWED:
                errors[code] = _("Item %(item)s cannot be scored UN (untestable).") % params
        elif not _is_whole_number(value) or not 0 <= value <= maximum:
            if code in NIHSS_UN_ALLOWED:
                errors[code] = _("Item %(item)s is scored 0 to %(max)d, or UN.") % params
            else:
                errors[code] = _("Item %(item)s is scored 0 to %(max)d.") % params
    return errors


def nihss_total(items: Mapping[str, int | str | None]) -> int | None:
    """NIHSS total, 0–42. An item scored UN counts 0 (it stays stored as UN). None while any
    item is missing or invalid (see ``nihss_item_errors``)."""
    if nihss_item_errors(items):
        return None
    values = [items.get(code) for code, _maximum in NIHSS_ITEMS]
    if any(value is None for value in values):
        return None
    return sum(0 if value == UNTESTABLE else value for value in values)


def nihss_coma_inconsistencies(items: Mapping[str, int | str | None]) -> dict[str, int]:
    """Items that break the coma rule, with the score the protocol requires.

    PROTOCOL.md: if 1a = 3 (coma), then 1b = 2, 1c = 2, 7 = 0, 8 = 2, 9 = 3, 10 = 2, 11 = 2.
    UN on 7 or 10 differs from the required score. Items not yet entered are left out.
    """
    if items.get("1a") != NIHSS_COMA_SCORE:
        return {}
    return {
        code: required
        for code, required in NIHSS_COMA_REQUIRED
        if items.get(code) is not None and items.get(code) != required
    }


# Barthel Index (PROTOCOL.md, Scales)

def barthel_item_errors(items: Mapping[str, int | None]) -> dict[str, str]:
    """Item values that are not among the item's allowed scores, by item code."""
    errors: dict[str, str] = {}
    for code, allowed in BARTHEL_ITEMS:
        value = items.get(code)
        if value is None:
            continue
        if not _is_whole_number(value) or value not in allowed:
            errors[code] = _("Choose one of %(allowed)s.") % {
                "allowed": ", ".join(str(score) for score in allowed)
            }
    return errors


def barthel_total(items: Mapping[str, int | None]) -> int | None:
    """Barthel Index total, 0–100. None while any item is missing or invalid."""
    if barthel_item_errors(items):
        return None
    values = [items.get(code) for code, _allowed in BARTHEL_ITEMS]
    if any(value is None for value in values):
        return None
    return sum(values)


# Laboratory (PROTOCOL.md, Laboratory panel)

def creatinine_mg_dl(umol_per_l: Number) -> float:
    """Creatinine in mg/dL from µmol/L as Chinese sites enter it (÷ 88.4)."""
    return float(to_decimal(umol_per_l) / CREATININE_UMOL_L_PER_MG_DL)


def egfr_ckd_epi_2021(
    *, creatinine_umol_l: Number, age_years: int, sex: Literal["F", "M"]
) -> float:
    """eGFR in mL/min/1.73 m² by CKD-EPI 2021 (no race term), unrounded:
    142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [female], Scr in mg/dL,
    κ 0.7 F / 0.9 M, α −0.241 F / −0.302 M. Labs report it rounded: see ``round_egfr``."""
    if sex not in _CKD_EPI_2021:
        raise ValueError(f"Sex must be 'F' or 'M', not {sex!r}.")
    if to_decimal(creatinine_umol_l) <= 0:
        raise ValueError("Creatinine must be positive.")
    if age_years < 0:
        raise ValueError("Age cannot be negative.")
    kappa, alpha, sex_factor = _CKD_EPI_2021[sex]
    ratio = creatinine_mg_dl(creatinine_umol_l) / kappa
    return (
        142
        * min(ratio, 1.0) ** alpha
        * max(ratio, 1.0) ** -1.200
        * 0.9938 ** age_years
        * sex_factor
    )


def round_egfr(egfr: Number) -> int:
    """eGFR in whole mL/min/1.73 m² as labs report it, halves rounded up (59.5 → 60)."""
    exact = egfr if isinstance(egfr, Decimal) else Decimal(egfr)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def egfr_to_store(egfr: Number) -> Decimal:
    """eGFR to one decimal, rounded down, as stored and shown beside the lab panel.

    Rounded down, never to the nearest: 59.96 is 59.9, not 60.0, so a stored or displayed eGFR
    never crosses a whole-number limit such as the "eGFR < 60" exclusion (a value below the
    limit stays below it, a value at or above it stays there). Decisions do not read it: they
    recompute eGFR from creatinine, age and sex (``forms.entry.services.lab_egfr``)."""
    exact = egfr if isinstance(egfr, Decimal) else to_decimal(egfr)
    return exact.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


def times_uln(value: Number, uln: Number) -> float:
    """A result as a multiple of the upper limit of normal (AST and ALT)."""
    limit = to_decimal(uln)
    if limit <= 0:
        raise ValueError("The upper limit of normal must be positive.")
    return float(to_decimal(value) / limit)


def lab_flag(
    value: Number, low: Number | None, high: Number | None
) -> Literal["low", "normal", "high"]:
    """Flag of a result against the site lab's range. The limits themselves are normal; a
    missing limit (None) means the range is open on that side."""
    result = to_decimal(value)
    if low is not None and result < to_decimal(low):
        return "low"
    if high is not None and result > to_decimal(high):
        return "high"
    return "normal"


# Dates and times

def hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Hours from ``start`` to ``end`` (negative if ``end`` is earlier). Both must be
    timezone-aware: a naive time has no place on the trial's clock."""
    for moment in (start, end):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("Datetimes must be timezone-aware.")
    return (end - start).total_seconds() / 3600


# Corticosteroids (PROTOCOL.md, Exclusion: > 10 mg/day prednisone equivalent)

def prednisone_equivalent_mg_per_day(
    drug: str, dose_mg: Number, doses_per_day: Number = 1
) -> float:
    """Daily prednisone-equivalent dose of a systemic corticosteroid (see
    ``PREDNISONE_EQUIVALENT_MG``), computed in exact fractions so that equivalent doses land
    exactly on the protocol limit. Raises ValueError for a drug not in the table."""
    ratio = _PREDNISONE_MG_PER_MG.get(drug.strip().lower())
    if ratio is None:
        raise ValueError(f"Unknown corticosteroid: {drug!r}.")
    dose, times = to_decimal(dose_mg), to_decimal(doses_per_day)
    if dose < 0 or times < 0:
        raise ValueError("Dose and doses per day cannot be negative.")
    return float(ratio * Fraction(dose) * Fraction(times))
