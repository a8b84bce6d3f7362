"""A subject's screening, eligibility and randomization (actions of ``SubjectRun``)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from edc import protocol
from forms.entry import services as form_services
from forms.models import (
    CRF,
    MRS,
    NIHSS,
    ConcomitantMedication,
    Demographics,
    LabPanel,
    MedicalHistory,
    StrokeEvent,
    VitalSigns,
)
from forms.synthetic.plan import (
    COMPLETES,
    CONSENT_FORM_V2_FROM,
    DAY1,
    DAY2,
    DAY8,
    DAY30,
    DAY90,
    DECLINED,
    DIES,
    LOST,
    MISSED_VISIT_RATE,
    SCREEN_FAILED,
    SCREEN_FAILURE_CRITERION,
    WITHDRAWS,
    WORSENING_RATE,
)
from forms.synthetic.values import (
    GIVEN_NAMES,
    NIHSS_ITEM_MAX,
    SURNAMES,
    _dec,
    egfr,
    lab_values,
    nihss_change,
    nihss_values,
    vital_values,
)
from visits import schedule
from visits import services as visit_services
from visits.models import (
    ConsentSigner,
    KitAssignment,
    SubjectStatus,
)


class ScreeningActions:
    """Screening, consent, the screening forms, eligibility and randomization."""

    # -- screening --

    def screen(self) -> None:
        rng = self.rng
        sex = "M" if rng.random() < 0.62 else "F"
        self.sex = sex
        age = (rng.randint(76, 82) if self.plan.failure == "age"
               else min(74, max(35, round(rng.gauss(62, 9)))))
        consent_day = self.today()
        birth_date = consent_day - dt.timedelta(days=round((age + rng.random()) * 365.25))
        if self.plan.failure != "age":
            while schedule.age_in_years(birth_date, consent_day) > 74:
                birth_date += dt.timedelta(days=200)
        self.age = schedule.age_in_years(birth_date, consent_day)
        identity = {
            "full_name": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}",
            "birth_date": birth_date,
            "hospital_record_number": f"{self.site.code}{rng.randrange(10**6):06d}",
            "phone": f"13{rng.randrange(10**9):09d}",
        }
        self.subject = visit_services.subject_screen(
            site=self.site, screened_at=self.now, user=self.staff.nurse, identity=identity)
        if self.plan.fate == DECLINED:
            self.at(self.now + dt.timedelta(minutes=rng.randint(30, 90)), self.decline)
            return
        self.at(self.now + dt.timedelta(minutes=rng.randint(15, 45)), self.consent)

    def decline(self) -> None:
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.SCREEN_FAILED, user=self.staff.nurse,
            reason="The patient and family declined to take part", failed_criteria=["IN07"])

    def consent(self) -> None:
        guardian = self.plan.nihss >= 16 and self.rng.random() < 0.5
        version = "v2.0 2026-01-15" if self.today() >= CONSENT_FORM_V2_FROM else "v1.1 2025-06-01"
        self.subject = visit_services.subject_consent(
            subject=self.subject, consented_at=self.now,
            signed_by=ConsentSigner.GUARDIAN if guardian else ConsentSigner.SUBJECT,
            form_version=version, user=self.staff.nurse)
        self._visits_read()
        self.at(self.now + dt.timedelta(minutes=10), self.record_visit,
                protocol.SCREENING_VISIT.code)
        self.at(self.now + dt.timedelta(minutes=self.rng.randint(25, 40)), self.screening_forms)

    def screening_forms(self) -> None:
        """Demographics, history, the stroke, NIHSS, pre-stroke mRS, vital signs, labs and
        the medications already taken, entered one after the other at screening."""
        rng, failure, visit = self.rng, self.plan.failure, protocol.SCREENING_VISIT.code
        sex = self.sex
        height = rng.randint(160, 182) if sex == "M" else rng.randint(150, 168)
        self.weight = _dec(rng.uniform(20.5, 28.5) * (height / 100) ** 2, 1)
        history = {
            "hypertension": rng.random() < 0.6, "diabetes": rng.random() < 0.25,
            "hyperlipidemia": rng.random() < 0.35, "atrial_fibrillation": rng.random() < 0.1,
            "coronary_heart_disease": rng.random() < 0.12,
            "prior_stroke": rng.random() < 0.15,
            "smoking": rng.choice(("never", "never", "former", "current")),
            "epilepsy": False, "parkinsons": False, "alzheimers": False,
            "severe_depression": False, "malignancy": False, "alcohol_abuse": False,
        }
        self.history = history
        self.side = rng.choice(("left", "right"))
        onset = self.now - dt.timedelta(hours=rng.uniform(6, 44))
        arrival = onset + dt.timedelta(hours=rng.uniform(1, 3.5))
        stroke = {
            "onset_type": rng.choice(("witnessed", "witnessed", "lkw")),
            "onset_at": onset, "arrival_at": arrival,
            "imaging_modality": rng.choice(("ct", "mri", "both")),
            "imaging_at": arrival + dt.timedelta(minutes=rng.randint(20, 90)),
            "territory": "posterior" if failure == "posterior" else "anterior",
            "side": self.side, "large_mca_infarct": False,
            "midline_shift": Decimal("0.0"),
            "hemorrhage": ("transformation" if failure == "hemorrhage"
                           else "petechial" if rng.random() < 0.04 else "none"),
            "thrombolysis": "given" if failure == "thrombolysis" else "no",
            "thrombectomy": "no",
        }
        self.onset = onset
        self.nihss_items = nihss_change(rng, dict.fromkeys(NIHSS_ITEM_MAX, 0), self.plan.nihss,
                                        self.side)
        self.baseline_nihss = sum(self.nihss_items.values())
        diabetic = history["diabetes"]
        creatinine = (180, 260) if failure == "kidney" else None
        labs = lab_values(rng, sex=sex, diabetic=diabetic, creatinine_range=creatinine)
        while failure != "kidney" and egfr(labs["creatinine"], self.age, sex) < 62:
            labs["creatinine"] -= 5
        if failure == "liver":
            labs["ast"] = Decimal(rng.randint(110, 180))
        childbearing = sex == "F" and self.age < 50
        if childbearing:
            labs["pregnancy_test"] = "negative"
        forms: list[tuple[type[CRF], dict[str, Any]]] = [
            (Demographics, {"sex": sex, "ethnicity": "han" if rng.random() < 0.92 else "other",
                            "height": height, "weight": self.weight,
                            "childbearing_potential": childbearing if sex == "F" else None}),
            (MedicalHistory, history),
            (StrokeEvent, stroke),
            (NIHSS, {"assessed_at": self.now - dt.timedelta(minutes=5),
                     **nihss_values(self.nihss_items)}),
            (MRS, {"assessed_on": self.today(),
                   "score": rng.randint(2, 3) if failure == "prestroke_mrs"
                   else (0 if rng.random() < 0.8 else 1)}),
            (VitalSigns, {"measured_at": self.now,
                          **vital_values(rng, weight=self.weight, systolic_mean=150)}),
            (LabPanel, {"sampled_at": self.now - dt.timedelta(minutes=rng.randint(1, 10)),
                        **labs}),
        ]
        step = dt.timedelta(minutes=4)
        moment = self.now
        for model, values in forms:
            moment += step
            self.at(moment, self.save_planned, model, values, visit)
        for medication in self.medications_at_screening():
            moment += step
            self.at(moment, self.save_planned, ConcomitantMedication, medication, None)
        confirm = moment + dt.timedelta(minutes=rng.randint(40, 90))
        self.randomize_at = confirm + dt.timedelta(minutes=rng.randint(20, 45))
        self.at(confirm, self.eligibility)

    def save_planned(self, model: type[CRF], values: dict[str, Any], visit: str | None
                     ) -> None:
        self.save(model, values, visit=visit)

    def medications_at_screening(self) -> list[dict[str, Any]]:
        rng, day = self.rng, self.today()

        def since_years() -> dt.date:
            return day - dt.timedelta(days=rng.randint(200, 3000))

        medications = [
            {"medication": "Aspirin", "indication": "Secondary prevention of ischaemic stroke",
             "dose": Decimal(100), "doses_per_day": Decimal(1), "route": "oral",
             "start_date": day, "ongoing": True},
            {"medication": "Atorvastatin", "indication": "Secondary prevention of ischaemic "
             "stroke", "dose": Decimal(20), "doses_per_day": Decimal(1), "route": "oral",
             "start_date": day, "ongoing": True},
        ]
        if self.history["hypertension"]:
            medications.append({"medication": "Amlodipine", "indication": "Hypertension",
                                 "dose": Decimal(5), "doses_per_day": Decimal(1),
                                 "route": "oral", "start_date": since_years(),
                                 "ongoing": True})
        if self.history["diabetes"]:
            medications.append({"medication": "Metformin", "indication": "Type 2 diabetes",
                                 "dose": Decimal(500), "doses_per_day": Decimal(2),
                                 "route": "oral", "start_date": since_years(),
                                 "ongoing": True})
        if rng.random() < 0.4:
            medications.append({"medication": "Omeprazole", "indication": "Stress ulcer "
                                "prophylaxis", "dose": Decimal(20), "doses_per_day": Decimal(1),
                                "route": "oral", "start_date": day, "ongoing": True})
        return medications

    def eligibility(self) -> None:
        """The investigator confirms every criterion as the data show it; a screen failure is
        recorded with the criteria not met."""
        failing = SCREEN_FAILURE_CRITERION.get(self.plan.failure)
        confirmations = {c.code: c.code != failing for c in protocol.ELIGIBILITY_CRITERIA}
        checklist = form_services.crf_instance(
            model=form_services.EligibilityChecklist, subject=self.subject,
            visit=self.visits[protocol.SCREENING_VISIT.code])
        form_services.eligibility_confirm(
            subject=self.subject, user=self.staff.investigator,
            planned_first_infusion_at=self.randomize_at + dt.timedelta(hours=1),
            confirmations=confirmations, expected_version=checklist.version)
        if self.plan.fate == SCREEN_FAILED:
            self.at(self.now + dt.timedelta(minutes=10), self.screen_fail)
        else:
            self.at(self.randomize_at, self.randomize)

    def screen_fail(self) -> None:
        _checklist, _derived, verdict = form_services.eligibility_review(self.subject)
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.SCREEN_FAILED,
            user=self.staff.investigator, failed_criteria=list(verdict.failed),
            reason="Not eligible: " + ", ".join(verdict.failed))

    # -- randomization and the visits after it --

    def randomize(self) -> None:
        self.subject = form_services.subject_randomize(subject=self.subject,
                                                       user=self.staff.investigator)
        self._visits_read()
        self.day1 = self.subject.day1
        self.kits = dict(KitAssignment.objects.filter(subject=self.subject)
                         .values_list("infusion_number", "kit_number"))
        self.infusions_given = 0
        self.worsening_visit = (self.rng.choice((DAY2, DAY8)) if self.rng.random()
                                < WORSENING_RATE else "")
        plan, rng = self.plan, self.rng
        end_date = self.study_date(plan.ending_day) if plan.ending != COMPLETES else None
        self.plan_adverse_events(end_date)
        self.at(self.later(self.local(self.study_date(15), 9), 0, 14), self.monitor_visit)
        lost_pending = plan.ending == LOST
        for visit_def in protocol.SCHEDULED_AFTER_RANDOMIZATION:
            visit = self.visits[visit_def.code]
            if visit_def.code == DAY1:
                self.at(self.now + dt.timedelta(minutes=5), self.visit_day, visit_def.code)
                continue
            actual = self.visit_date(visit)
            if end_date is not None and actual >= end_date:
                if lost_pending:
                    lost_pending = False
                    missed_at = self.local(visit.window_end + dt.timedelta(days=3), 10)
                    self.at(missed_at, self.miss_visit, visit_def.code,
                            "The subject could not be reached by phone after three attempts")
                    self.at(missed_at + dt.timedelta(minutes=20), self.terminate,
                            "lost_to_follow_up", schedule.local_date(missed_at, self.zone))
                break
            if visit_def.code in (DAY30, DAY90) and rng.random() < MISSED_VISIT_RATE:
                self.at(self.local(visit.window_end + dt.timedelta(days=2), 10),
                        self.miss_visit, visit_def.code,
                        rng.choice(("The subject was admitted to another hospital",
                                    "The subject was travelling and could not attend")))
                continue
            self.at(self.local(actual, rng.randint(8, 10), rng.randrange(60)), self.visit_day,
                    visit_def.code)
        if plan.ending == DIES:
            self.plan_death(end_date)
        elif plan.ending == WITHDRAWS:
            self.at(self.local(end_date, 10, rng.randrange(60)), self.terminate,
                    rng.choice(("withdrew_consent", "withdrew_consent", "investigator_decision")),
                    end_date)
