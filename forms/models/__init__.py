"""The case report forms, one module per CRF family. ``CRF_MODELS`` maps each protocol CRF code
to its model; a test checks every CRF of ``edc.protocol`` has one (consent lives on Subject)."""

from forms.models.adverse_events import AdverseEvent
from forms.models.base import CRF, CRFStatus, Missing
from forms.models.deviations import ProtocolDeviation
from forms.models.eligibility import EligibilityChecklist
from forms.models.infusion import Infusion
from forms.models.labs import LabPanel, LabReferenceRange
from forms.models.medications import ConcomitantMedication
from forms.models.nihss import NIHSS
from forms.models.pkpd import PKPDSample
from forms.models.queries import Query, QueryMessage
from forms.models.scales import MRS, Barthel
from forms.models.screening import Demographics, MedicalHistory, StrokeEvent
from forms.models.signoff import Lock, LockScope, Signature
from forms.models.study_end import Death, EarlyTermination, EndOfStudy
from forms.models.vitals import VitalSigns

CRF_MODELS: dict[str, type[CRF]] = {
    model.crf_code: model
    for model in (
        Demographics, MedicalHistory, StrokeEvent, EligibilityChecklist, NIHSS, MRS, Barthel,
        VitalSigns, LabPanel, ConcomitantMedication, Infusion, PKPDSample, EndOfStudy,
        AdverseEvent, ProtocolDeviation, EarlyTermination, Death,
    )
}

__all__ = [
    "CRF",
    "CRF_MODELS",
    "MRS",
    "NIHSS",
    "AdverseEvent",
    "Barthel",
    "CRFStatus",
    "ConcomitantMedication",
    "Death",
    "Demographics",
    "EarlyTermination",
    "EligibilityChecklist",
    "EndOfStudy",
    "Infusion",
    "LabPanel",
    "LabReferenceRange",
    "Lock",
    "LockScope",
    "MedicalHistory",
    "Missing",
    "PKPDSample",
    "ProtocolDeviation",
    "Query",
    "QueryMessage",
    "Signature",
    "StrokeEvent",
    "VitalSigns",
]
