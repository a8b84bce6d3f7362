"""The trial, declared once: NCT07084012, IV hUC-MSCs in acute ischemic stroke.

This module is the code form of PROTOCOL.md (``docs/PROTOCOL.md`` in this repository) and the
single source of truth for arms, visits, their windows and the CRFs expected at each. Everything
else (visit creation, the casebook matrix, reminders, the data dictionary, exports, ODM
metadata) reads it; nothing else hard-codes a visit code or a CRF list. Values marked
[assumed] in PROTOCOL.md are changed here and nowhere else.

Plain immutable data: this module imports nothing of the project (labels are only marked for
translation).

Study days follow the CDISC convention: Day 1 is the randomization date, the day before it is
Day -1, and there is no Day 0.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

TRIAL_REGISTRY_ID = "NCT07084012"
TRIAL_TITLE = (
    "Phase IIa randomized, double-blind, placebo-controlled trial of intravenous human "
    "umbilical-cord mesenchymal stem cells in acute ischemic stroke"
)
TARGET_ENROLMENT = 60
# No clinical event of the trial (screening, stroke onset, assessment, sample, export "as of")
# lies before this date [assumed: the trial is registered in 2025].
TRIAL_START = dt.date(2025, 1, 1)

ACTIVE = "hUC-MSC"
PLACEBO = "placebo"


@dataclass(frozen=True)
class Arm:
    code: str
    label: "str | Promise"
    # What the bag contains at infusion 1, 2 and 3.
    infusions: tuple[str, ...]


ARMS: tuple[Arm, ...] = (
    Arm("A", _("Single infusion"), (ACTIVE, PLACEBO, PLACEBO)),
    Arm("B", _("Multiple infusions"), (ACTIVE, ACTIVE, ACTIVE)),
    Arm("C", _("Placebo"), (PLACEBO, PLACEBO, PLACEBO)),
)
INFUSIONS_PER_SUBJECT = 3
ALLOCATION_RATIO = (1, 1, 1)
BLOCK_SIZES = (3, 6)
# Stratification: site, and screening NIHSS total in these inclusive bands.
NIHSS_STRATA: tuple[tuple[int, int], ...] = ((8, 14), (15, 20))
MAX_ONSET_TO_FIRST_INFUSION_HOURS = 72


@dataclass(frozen=True)
class CRF:
    code: str
    label: "str | Promise"
    # A log form is entered whenever its event happens, not at a scheduled visit.
    is_log: bool = False


CRFS: tuple[CRF, ...] = (
    CRF("consent", _("Informed consent")),
    CRF("demographics", _("Demographics")),
    CRF("medical_history", _("Medical history")),
    CRF("stroke_event", _("Stroke event and imaging")),
    CRF("eligibility", _("Eligibility checklist")),
    CRF("nihss", _("NIHSS")),
    CRF("mrs", _("Modified Rankin Scale")),
    CRF("barthel", _("Barthel Index")),
    CRF("vital_signs", _("Vital signs")),
    CRF("labs", _("Laboratory panel")),
    CRF("infusion", _("Infusion record")),
    CRF("pkpd", _("PK/PD sample collection")),
    CRF("end_of_study", _("End of study")),
    CRF("adverse_event", _("Adverse event"), is_log=True),
    CRF("concomitant_medication", _("Concomitant medication"), is_log=True),
    CRF("protocol_deviation", _("Protocol deviation"), is_log=True),
    CRF("early_termination", _("Early termination"), is_log=True),
    CRF("death", _("Death report"), is_log=True),
)
LOG_FORMS: tuple[CRF, ...] = tuple(crf for crf in CRFS if crf.is_log)


@dataclass(frozen=True)
class VisitDef:
    code: str
    label: "str | Promise"
    # Target study day and the window around it, in days.
    day: int
    window_before: int
    window_after: int
    crfs: tuple[str, ...]
    # Which planned infusion (1-based) is given at this visit, if any.
    infusion_number: int | None = None
    # PK/PD samples expected at this visit, one per time point (codes of PKPD_TIMEPOINTS).
    pkpd_timepoints: tuple[str, ...] = ()

    def expected_forms(self) -> tuple[tuple[str, str], ...]:
        """(CRF code, slot) of every record expected at this visit: one per CRF, and for
        PK/PD one per time point (the slot); the slot is "" for every other CRF."""
        return tuple(
            (code, slot) for code in self.crfs
            for slot in (self.pkpd_timepoints if code == PKPD_CRF else ("",))
        )


@dataclass(frozen=True)
class PKPDTimepoint:
    code: str
    label: "str | Promise"


# PK/PD time points [assumed]: before and 1 h after each infusion, 24 h after the first, and
# once at the Day 30 follow-up (PROTOCOL.md, "PK/PD time points").
PKPD_CRF = "pkpd"
PKPD_TIMEPOINTS: tuple[PKPDTimepoint, ...] = (
    PKPDTimepoint("pre_dose", _("Pre-dose")),
    PKPDTimepoint("post_dose_1h", _("1 h post-dose")),
    PKPDTimepoint("24h", _("24 h post-dose")),
    PKPDTimepoint("follow_up", _("Follow-up (no dose)")),
)
_AROUND_DOSE = ("pre_dose", "post_dose_1h")


_SCREENING_CRFS = ("consent", "demographics", "medical_history", "stroke_event", "eligibility")

VISITS: tuple[VisitDef, ...] = (
    # Screening is before Day 1 and within 72 h of onset: Day -2 to Day 1.
    VisitDef("SCR", _("Screening"), -1, 1, 1,
             (*_SCREENING_CRFS, "nihss", "mrs", "vital_signs", "labs")),
    VisitDef("D1", _("Randomization + infusion 1"), 1, 0, 0,
             ("nihss", "vital_signs", "infusion", "pkpd"), infusion_number=1,
             pkpd_timepoints=_AROUND_DOSE),
    VisitDef("D2", _("24 h safety"), 2, 0, 0, ("nihss", "vital_signs", "labs", "pkpd"),
             pkpd_timepoints=("24h",)),
    VisitDef("D8", _("Infusion 2"), 8, 1, 1,
             ("nihss", "vital_signs", "labs", "infusion", "pkpd"), infusion_number=2,
             pkpd_timepoints=_AROUND_DOSE),
    VisitDef("D15", _("Infusion 3"), 15, 1, 1,
             ("nihss", "vital_signs", "labs", "infusion", "pkpd"), infusion_number=3,
             pkpd_timepoints=_AROUND_DOSE),
    VisitDef("D30", _("Follow-up"), 30, 3, 3,
             ("nihss", "mrs", "barthel", "vital_signs", "labs", "pkpd"),
             pkpd_timepoints=("follow_up",)),
    VisitDef("D90", _("Primary endpoint"), 90, 7, 7,
             ("nihss", "mrs", "barthel", "vital_signs", "labs")),
    VisitDef("D180", _("Safety follow-up / end of study"), 180, 14, 14,
             ("mrs", "barthel", "end_of_study")),
)
SCREENING_VISIT = VISITS[0]
SCHEDULED_AFTER_RANDOMIZATION: tuple[VisitDef, ...] = VISITS[1:]

# Unscheduled visits may happen any time after consent; they carry a sequence number.
UNSCHEDULED_VISIT_CODE = "UNS"
UNSCHEDULED_VISIT_LABEL = _("Unscheduled")


def visit_def(code: str) -> VisitDef:
    for visit in VISITS:
        if visit.code == code:
            return visit
    raise KeyError(code)


def pkpd_timepoint(code: str) -> PKPDTimepoint:
    for timepoint in PKPD_TIMEPOINTS:
        if timepoint.code == code:
            return timepoint
    raise KeyError(code)


def crf(code: str) -> CRF:
    for form in CRFS:
        if form.code == code:
            return form
    raise KeyError(code)


def arm(code: str) -> Arm:
    for candidate in ARMS:
        if candidate.code == code:
            return candidate
    raise KeyError(code)


# --- Eligibility (PROTOCOL.md, Eligibility; the registry record's criteria) ---------------------

INCLUSION = "inclusion"
EXCLUSION = "exclusion"

MIN_AGE_YEARS = 18
MAX_AGE_YEARS = 75
MIN_NIHSS = 8
MAX_NIHSS = 20
MAX_NIHSS_1A = 1
MAX_PRESTROKE_MRS = 1
MAX_TIMES_ULN = Decimal("2.5")
MIN_EGFR = Decimal(60)
MAX_PREDNISONE_MG_PER_DAY = Decimal(10)



@dataclass(frozen=True)
class Criterion:
    code: str
    kind: Literal["inclusion", "exclusion"]
    text: "str | Promise"
    # The system computes it from entered data (the investigator still confirms it).
    derivable: bool


ELIGIBILITY_CRITERIA: tuple[Criterion, ...] = (
    Criterion("IN01", INCLUSION, _("Age 18–75 years inclusive"), True),
    Criterion("IN02", INCLUSION, _("Diagnosis of acute ischemic stroke"), False),
    Criterion("IN03", INCLUSION, _("Onset ≤ 72 h (stroke onset to first infusion)"), True),
    Criterion("IN04", INCLUSION, _("Anterior circulation infarct"), False),
    Criterion("IN05", INCLUSION, _("Pre-stroke mRS ≤ 1"), True),
    Criterion("IN06", INCLUSION, _("NIHSS 8–20 inclusive at screening, with item 1a ≤ 1"), True),
    Criterion("IN07", INCLUSION,
              _("Signed informed consent (subject or legal guardian)"), False),
    Criterion("EX01", EXCLUSION, _("Planned or done thrombolysis or thrombectomy"), True),
    Criterion("EX02", EXCLUSION,
              _("Epilepsy (except secondary, unmedicated), Parkinson's disease, Alzheimer's "
                "disease or severe depression"), False),
    Criterion("EX03", EXCLUSION,
              _("Intracranial hemorrhage (petechial hemorrhage: investigator decides)"), True),
    Criterion("EX04", EXCLUSION,
              _("Large MCA infarct or midline shift > 1 cm with high likelihood of surgery or "
                "poor prognosis"), False),
    Criterion("EX05", EXCLUSION, _("Brain tumour or malignancy"), False),
    Criterion("EX06", EXCLUSION, _("AST or ALT > 2.5 × ULN"), True),
    Criterion("EX07", EXCLUSION, _("eGFR < 60 mL/min/1.73 m²"), True),
    Criterion("EX08", EXCLUSION, _("Severe cardiovascular disease"), False),
    Criterion("EX09", EXCLUSION, _("Severe infection"), False),
    Criterion("EX10", EXCLUSION,
              _("Systemic corticosteroid > 10 mg/day prednisone equivalent or immunosuppressant "
                "within 14 days before dosing or during the trial"), True),
    Criterion("EX11", EXCLUSION,
              _("Alcohol abuse in the past year (> 2 units/day; 1 unit = 10 mL ethanol)"), False),
    Criterion("EX12", EXCLUSION,
              _("Pregnancy, breastfeeding or no reliable contraception"), False),
    Criterion("EX13", EXCLUSION,
              _("Interventional trial in the past 3 months or other cell therapy"), False),
    Criterion("EX14", EXCLUSION, _("Unsuitable in the investigator's judgement"), False),
)


def criterion(code: str) -> Criterion:
    for candidate in ELIGIBILITY_CRITERIA:
        if candidate.code == code:
            return candidate
    raise KeyError(code)
