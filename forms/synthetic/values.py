"""Clinical values: pure functions of a random generator, within the protocol's ranges."""

import random
from decimal import Decimal
from typing import Any

from edc import protocol
from forms import derivations
from forms.models.nihss import FIELD_TO_ITEM

NIHSS_ITEM_MAX = dict(derivations.NIHSS_ITEMS)
ITEM_FIELD = {code: field for field, code in FIELD_TO_ITEM.items()}


def _nihss_weights(side: str) -> dict[str, float]:
    """How likely each item is to carry a point, for an infarct of the left or right
    hemisphere (the opposite limbs; language for the left, neglect for the right)."""
    arm, leg = ("5b", "6b") if side == "left" else ("5a", "6a")
    other_arm, other_leg = ("5a", "6a") if side == "left" else ("5b", "6b")
    weights = {"1a": 0.3, "1b": 1.0, "1c": 0.6, "2": 1.0, "3": 0.8, "4": 1.6, arm: 3.0,
               leg: 2.5, other_arm: 0.1, other_leg: 0.1, "7": 0.3, "8": 1.2, "9": 0.5,
               "10": 1.0, "11": 0.5}
    weights["9" if side == "left" else "11"] = 1.8
    return weights


def nihss_change(rng: random.Random, items: dict[str, int], target: int, side: str,
                 *, max_1a: int = 1) -> dict[str, int]:
    """``items`` moved point by point towards the total ``target``."""
    items = dict(items)
    weights = _nihss_weights(side)
    while sum(items.values()) != target:
        if sum(items.values()) < target:
            room = [c for c in items
                    if items[c] < (max_1a if c == "1a" else NIHSS_ITEM_MAX[c])]
            if not room:
                break
            code = rng.choices(room, [weights[c] for c in room])[0]
            items[code] += 1
        else:
            scored = [c for c in items if items[c] > 0]
            code = rng.choices(scored, [1 / weights[c] + items[c] for c in scored])[0]
            items[code] -= 1
    return items


def nihss_values(items: dict[str, int]) -> dict[str, str]:
    return {ITEM_FIELD[code]: str(score) for code, score in items.items()}


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def vital_values(rng: random.Random, *, weight: Decimal | None, fever: bool = False,
                 systolic_mean: float = 140) -> dict[str, Any]:
    systolic = round(rng.gauss(systolic_mean, 14))
    systolic = min(180, max(100, systolic))
    values = {
        "systolic_bp": systolic,
        "diastolic_bp": min(systolic - 25, max(55, round(rng.gauss(82, 9)))),
        "heart_rate": min(110, max(52, round(rng.gauss(76, 10)))),
        "temperature": (_dec(rng.uniform(38.1, 38.9), 1) if fever
                        else _dec(min(37.6, max(36.0, rng.gauss(36.7, 0.3))), 1)),
        "respiratory_rate": rng.randint(14, 20),
        "spo2": rng.randint(95, 99),
    }
    if weight is not None:
        values["weight"] = _dec(float(weight) + rng.uniform(-1.5, 1.0), 1)
    return values


# An item outside its soft range (PROTOCOL.md "Vital signs ranges"), inside the hard limits.
OUT_OF_RANGE = {
    "systolic_bp": lambda rng: rng.randint(186, 205),
    "diastolic_bp": lambda rng: rng.randint(111, 120),
    "heart_rate": lambda rng: rng.choice([rng.randint(38, 44), rng.randint(121, 135)]),
    "respiratory_rate": lambda rng: rng.randint(29, 32),
    "spo2": lambda rng: rng.randint(90, 93),
}


def lab_values(rng: random.Random, *, sex: str, diabetic: bool,
               creatinine_range: tuple[int, int] | None = None) -> dict[str, Any]:
    low, high = creatinine_range or ((60, 105) if sex == "M" else (45, 85))
    return {
        "ast": Decimal(rng.randint(13, 38)),
        "alt": Decimal(rng.randint(9, 42)),
        "bilirubin": _dec(rng.uniform(6, 19), 1),
        "creatinine": Decimal(rng.randint(low, high)),
        "hemoglobin": Decimal(rng.randint(128, 162) if sex == "M" else rng.randint(112, 145)),
        "wbc": _dec(rng.uniform(4.5, 10.5), 2),
        "platelets": Decimal(rng.randint(150, 320)),
        "glucose": _dec(rng.uniform(6.5, 10.5) if diabetic else rng.uniform(4.4, 6.4), 1),
        "inr": _dec(rng.uniform(0.90, 1.15), 2),
        "d_dimer": _dec(rng.uniform(0.10, 1.20), 2),
        "fibrinogen": _dec(rng.uniform(2.2, 4.2), 2),
    }


def egfr(creatinine: Decimal, age: int, sex: str) -> int:
    return derivations.round_egfr(derivations.egfr_ckd_epi_2021(
        creatinine_umol_l=creatinine, age_years=age, sex=sex))


def mrs_for(nihss_total: int, rng: random.Random) -> int:
    base = (0 if nihss_total <= 1 else 1 if nihss_total <= 4 else 2 if nihss_total <= 8
            else 3 if nihss_total <= 14 else 4)
    return min(5, max(0, base + rng.choice((-1, 0, 0, 0, 1))))


BARTHEL_ALLOWED = dict(derivations.BARTHEL_ITEMS)


def barthel_values(rng: random.Random, mrs: int) -> dict[str, int]:
    """Barthel items whose total fits the disability an mRS score describes."""
    low, high = {0: (100, 100), 1: (90, 100), 2: (75, 95), 3: (50, 80), 4: (20, 55),
                 5: (0, 20)}[mrs]
    target = rng.randint(low, high)
    items = {code: max(allowed) for code, allowed in derivations.BARTHEL_ITEMS}
    while sum(items.values()) > target:
        reducible = [code for code, value in items.items() if value > 0]
        code = rng.choice(reducible)
        allowed = BARTHEL_ALLOWED[code]
        items[code] = allowed[allowed.index(items[code]) - 1]
    return items


# Adverse events: term, special interest, CTCAE grades, chance of being serious, usual
# relationship to the product, to the infusion procedure, duration in days, weight.
AE_CATALOG = (
    ("Headache", "none", (1, 2), 0.0, "unlikely", "unlikely", (1, 4), 10),
    ("Constipation", "none", (1, 1), 0.0, "not_related", "not_related", (2, 7), 8),
    ("Insomnia", "none", (1, 2), 0.0, "not_related", "not_related", (3, 14), 5),
    ("Nausea", "none", (1, 2), 0.0, "unlikely", "unlikely", (1, 3), 5),
    ("Hypokalaemia", "none", (1, 2), 0.0, "not_related", "not_related", (2, 6), 4),
    ("Urinary tract infection", "none", (2, 2), 0.0, "not_related", "not_related", (5, 10), 6),
    ("Pneumonia", "none", (2, 3), 0.5, "not_related", "not_related", (7, 18), 6),
    ("Rash", "allergic_reaction", (1, 2), 0.0, "possibly", "unlikely", (2, 7), 3),
    ("Deep vein thrombosis", "thromboembolism", (2, 3), 0.3, "unlikely", "not_related",
     (10, 30), 2),
    ("Ischaemic stroke, recurrent", "recurrent_stroke", (3, 4), 1.0, "unlikely", "not_related",
     (10, 40), 1),
    ("Haemorrhagic transformation of stroke", "hemorrhagic_transformation", (2, 3), 0.5,
     "unlikely", "not_related", (7, 21), 1),
)
FEVER_AE = ("Pyrexia", "fever", (1, 1), 0.0, "possibly", "possibly", (1, 2), 0)
INFUSION_REACTION_AE = ("Infusion related reaction", "infusion_reaction", (1, 2), 0.0,
                        "possibly", "probably", (1, 1), 0)
WORSENING_AE = ("Neurological deterioration", "neurological_worsening", (2, 3), 0.3,
                "unlikely", "not_related", (5, 20), 0)
FATAL_TERMS = ("Pneumonia", "Ischaemic stroke, recurrent", "Cerebral oedema with herniation",
               "Myocardial infarction")
FEVER_DAYS = (2, 9, 16)  # the day after an infusion
INFUSION_DAYS = {number: visit.day for visit in protocol.VISITS
                 if (number := visit.infusion_number)}

SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu",
            "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo")
GIVEN_NAMES = ("Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong",
               "Yan", "Jie", "Tao", "Ming", "Chao", "Xiuying", "Guilan", "Jianguo", "Hui",
               "Guirong", "Shulan", "Zhiqiang", "Haiyan")
