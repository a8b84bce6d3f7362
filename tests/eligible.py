"""Builds a screened subject whose screening data make every derivable criterion met."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from edc.history import system_writes
from edc.protocol import ELIGIBILITY_CRITERIA, SCREENING_VISIT
from forms.entry import services
from forms.models import MRS, NIHSS, Demographics, LabPanel, LabReferenceRange, StrokeEvent

NIHSS_12 = {"loc": "0", "loc_questions": "1", "loc_commands": "0", "best_gaze": "1",
            "visual": "1", "facial_palsy": "2", "motor_arm_left": "0", "motor_arm_right": "3",
            "motor_leg_left": "0", "motor_leg_right": "2", "limb_ataxia": "0", "sensory": "1",
            "best_language": "1", "dysarthria": "0", "extinction": "0"}


def save(model, subject, user, values, *, visit=None, complete=True):
    crf = services.crf_instance(model=model, subject=subject, visit=visit)
    return services.crf_save(crf=crf, values=values, user=user,
                             expected_version=crf.version, complete=complete)


def lab_ranges(site, *, since=dt.date(2020, 1, 1)):
    for analyte, low, high in (("ast", 0, 40), ("alt", 0, 40), ("creatinine", 57, 111)):
        with system_writes():  # test data written directly
            LabReferenceRange.objects.create(site=site, analyte=analyte, low=low, high=high,
                                             effective_from=since)


def enter_screening_data(subject, user, *, nihss=None, onset_hours_ago=20, ast=Decimal(35),
                         creatinine=Decimal(70)):
    visit = subject.visits.get(code=SCREENING_VISIT.code)
    now = timezone.now()
    if not LabReferenceRange.objects.filter(site=subject.site).exists():
        lab_ranges(subject.site)
    save(Demographics, subject, user, {"sex": "M", "ethnicity": "han", "height": 172,
                                       "weight": Decimal("70.5")}, visit=visit)
    onset = now - dt.timedelta(hours=onset_hours_ago)
    save(StrokeEvent, subject, user, {
        "onset_type": "witnessed", "onset_at": onset, "imaging_modality": "ct",
        "imaging_at": onset + dt.timedelta(hours=2), "territory": "anterior",
        "hemorrhage": "none", "thrombolysis": "no", "thrombectomy": "no",
    }, visit=visit)
    save(NIHSS, subject, user, {"assessed_at": now - dt.timedelta(hours=1),
                                **(nihss or NIHSS_12)}, visit=visit)
    save(MRS, subject, user, {"assessed_on": timezone.localdate(now, subject.site.zone),
                              "score": 0}, visit=visit)
    save(LabPanel, subject, user, {
        "sampled_at": now - dt.timedelta(hours=2), "ast": ast, "alt": Decimal(30),
        "creatinine": creatinine, "hemoglobin": 140, "wbc": Decimal("7.2"), "platelets": 220,
    }, visit=visit)


def confirm_all(subject, user, *, answers=None, planned_in_hours=2):
    confirmations = {c.code: True for c in ELIGIBILITY_CRITERIA} | (answers or {})
    checklist = services.crf_instance(
        model=services.EligibilityChecklist, subject=subject,
        visit=subject.visits.get(code=SCREENING_VISIT.code))
    return services.eligibility_confirm(
        subject=subject, user=user,
        planned_first_infusion_at=timezone.now() + dt.timedelta(hours=planned_in_hours),
        confirmations=confirmations, expected_version=checklist.version,
    )
