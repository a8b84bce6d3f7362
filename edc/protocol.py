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

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

TRIAL_REGISTRY_ID = "NCT07084012"
TRIAL_TITLE = (
    "Phase IIa randomized, double-blind, placebo-controlled trial of intravenous human "
    "umbilical-cord mesenchymal stem cells in acute ischemic stroke"
)
TARGET_ENROLMENT = 60

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


_SCREENING_CRFS = ("consent", "demographics", "medical_history", "stroke_event", "eligibility")

VISITS: tuple[VisitDef, ...] = (
    # Screening is before Day 1 and within 72 h of onset: Day -2 to Day 1.
    VisitDef("SCR", _("Screening"), -1, 1, 1,
             (*_SCREENING_CRFS, "nihss", "mrs", "vital_signs", "labs")),
    VisitDef("D1", _("Randomization + infusion 1"), 1, 0, 0,
             ("nihss", "vital_signs", "infusion", "pkpd"), infusion_number=1),
    VisitDef("D2", _("24 h safety"), 2, 0, 0, ("nihss", "vital_signs", "labs", "pkpd")),
    VisitDef("D8", _("Infusion 2"), 8, 1, 1,
             ("nihss", "vital_signs", "labs", "infusion", "pkpd"), infusion_number=2),
    VisitDef("D15", _("Infusion 3"), 15, 1, 1,
             ("nihss", "vital_signs", "labs", "infusion", "pkpd"), infusion_number=3),
    VisitDef("D30", _("Follow-up"), 30, 3, 3,
             ("nihss", "mrs", "barthel", "vital_signs", "labs", "pkpd")),
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
