"""A subject's adverse events, medications, end of participation and sign-off (actions of
``SubjectRun``)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from edc import protocol
from forms.models import (
    NIHSS,
    AdverseEvent,
    ConcomitantMedication,
    CRFStatus,
    Death,
    EarlyTermination,
    StrokeEvent,
)
from forms.models.base import SDVStatus
from forms.models.signoff import LockScope
from forms.quality.sdv import crf_verify
from forms.review.locks import lock_create
from forms.review.signatures import casebook_sign
from forms.synthetic.plan import LOCK_EVERY, SAE_CRITERIA_FORGOTTEN_RATE, SIGN_EVERY, STEROID_SHARE
from forms.synthetic.values import (
    AE_CATALOG,
    FATAL_TERMS,
    FEVER_AE,
    FEVER_DAYS,
    INFUSION_DAYS,
    INFUSION_REACTION_AE,
)
from visits import schedule
from visits import services as visit_services
from visits.models import (
    SubjectStatus,
)


class EventActions:
    """Adverse events, concomitant medications, death, early termination, completion,
    source data verification, the casebook's signature and lock."""

    # -- adverse events, concomitant medications, the end of participation --

    def plan_adverse_events(self, end_date: dt.date | None) -> None:
        rng = self.rng
        count = rng.choices((0, 1, 2, 3, 4), (35, 30, 20, 10, 5))[0]
        last_day = (end_date - self.day1).days if end_date else 180
        for _n in range(count):
            draw = rng.random()
            if draw < 0.15:
                entry, day, kind = FEVER_AE, rng.choice(FEVER_DAYS), "fever"
            elif draw < 0.25:
                number = rng.randint(1, 3)
                entry, day, kind = INFUSION_REACTION_AE, INFUSION_DAYS[number], "infusion"
            else:
                entry = rng.choices(AE_CATALOG, [e[-1] for e in AE_CATALOG])[0]
                day, kind = rng.randint(2, 180), "other"
            if day >= last_day:
                continue
            start = self.study_date(day)
            if kind == "fever":
                self.fever_dates.add(start)
                entered = self.local(start, rng.randint(15, 18), rng.randrange(60))
            else:
                entered = self.local(start + dt.timedelta(days=rng.randint(0, 2)),
                                     rng.randint(13, 18), rng.randrange(60))
            self.at(entered, self.adverse_event, self.event_values(entry, start, kind))
            if entry[1] == "allergic_reaction" and rng.random() < STEROID_SHARE:
                self.at(entered + dt.timedelta(minutes=15), self.steroid, start)

    def event_values(self, entry: tuple, start: dt.date, kind: str) -> dict[str, Any]:
        rng = self.rng
        term, special, grades, serious_rate, to_product, to_procedure, duration, _w = entry
        serious = rng.random() < serious_rate
        day = schedule.study_day(self.day1, start)
        infusion = next((n for n, d in INFUSION_DAYS.items() if d <= day <= d + 1), None)
        values = {
            "term": term, "start_date": start, "ongoing": True,
            "ctcae_grade": rng.randint(*grades) + (1 if serious and grades[1] < 3 else 0),
            "is_serious": serious, "relationship_to_product": to_product,
            "relationship_to_procedure": to_procedure,
            "action_taken": ("drug_interrupted" if kind == "infusion"
                             else "dose_not_changed" if day < INFUSION_DAYS[3]
                             else "not_applicable"),
            "outcome": "recovering" if rng.random() < 0.6 else "not_recovered",
            "infusion_number": infusion if kind in ("fever", "infusion") else None,
            "special_interest": special,
            "_duration": rng.randint(*duration),
            "_resolves": kind != "fatal" and rng.random() < 0.85,
        }
        if serious:
            values["serious_hospitalization"] = True
            if special in ("recurrent_stroke", "hemorrhagic_transformation"):
                values["serious_important_medical_event"] = True
        return values

    def adverse_event(self, values: dict[str, Any]) -> AdverseEvent | None:
        values = dict(values)
        duration = values.pop("_duration")
        resolves = values.pop("_resolves")
        start = values["start_date"]
        values["site_aware_at"] = max(self.now - dt.timedelta(hours=self.rng.randint(1, 6)),
                                      self.local(start, 8), self.subject.consented_at)
        planted = {}
        if values["is_serious"] and self.rng.random() < SAE_CRITERIA_FORGOTTEN_RATE:
            planted = {name: values.pop(name) for name in list(values)
                       if name.startswith("serious_")}
        event = self.save(AdverseEvent, values, user=self.staff.investigator)
        if planted:
            self.corrections[(AdverseEvent, event.pk, "is_serious")] = planted
        if values["special_interest"] == "fever":
            self.at(self.now + dt.timedelta(minutes=10), self.save_planned,
                    ConcomitantMedication, {
                        "medication": "Paracetamol", "indication": values["term"],
                        "dose": Decimal(500), "doses_per_day": Decimal(2), "route": "oral",
                        "start_date": start, "end_date": start, "ongoing": False}, None)
        elif values["term"] == "Pneumonia":
            self.at(self.now + dt.timedelta(minutes=10), self.medication_course, {
                "medication": "Ceftriaxone", "indication": "Pneumonia", "dose": Decimal(2000),
                "doses_per_day": Decimal(1), "route": "iv", "start_date": start,
                "ongoing": True}, start + dt.timedelta(days=min(duration, 10)))
        if resolves:
            resolved = start + dt.timedelta(days=duration)
            self.at(self.later(self.local(resolved, 9), 1, 6), self.resolve, event.pk, resolved)
        return event

    def resolve(self, pk: int, resolved: dt.date) -> None:
        event = AdverseEvent.objects.get(pk=pk)
        if event.outcome == "fatal" or not event.ongoing:
            return
        sequelae = event.special_interest in ("recurrent_stroke", "hemorrhagic_transformation",
                                              "neurological_worsening")
        self.save(AdverseEvent, {
            "end_date": resolved, "ongoing": False,
            "outcome": "recovered_with_sequelae" if sequelae else "recovered",
        }, pk=pk, user=self.staff.investigator, reason="Event resolved: end date and outcome")

    def medication_course(self, values: dict[str, Any], stop: dt.date) -> None:
        medication = self.save(ConcomitantMedication, values)
        self.at(self.later(self.local(stop, 9), 0, 3), self.stop_medication, medication.pk, stop)

    def stop_medication(self, pk: int, stop: dt.date) -> None:
        self.save(ConcomitantMedication, {"end_date": stop, "ongoing": False}, pk=pk,
                  reason="Course completed: end date entered")

    def steroid(self, start: dt.date) -> None:
        """Methylprednisolone for an allergic reaction: above the protocol's steroid limit, so
        the edit check asks for a protocol deviation, which the site records."""
        medication = self.save(ConcomitantMedication, {
            "medication": "Methylprednisolone", "corticosteroid": "methylprednisolone",
            "indication": "Allergic reaction", "dose": Decimal(40), "doses_per_day": Decimal(1),
            "route": "iv", "start_date": start, "ongoing": True})
        self.follow_ups[(ConcomitantMedication, medication.pk, "dose")] = lambda: self.deviation(
            "prohibited_medication", None, "Methylprednisolone 40 mg IV daily (50 mg/day "
            "prednisone equivalent) given for an allergic reaction.", occurred_on=start)
        self.at(self.later(self.local(start + dt.timedelta(days=3), 9), 0, 2),
                self.stop_medication, medication.pk, start + dt.timedelta(days=3))

    def plan_death(self, died_on: dt.date) -> None:
        rng = self.rng
        start = max(self.day1 + dt.timedelta(days=1), died_on - dt.timedelta(
            days=rng.randint(1, 7)))
        term = rng.choice(FATAL_TERMS)
        entry = (term, "recurrent_stroke" if "stroke" in term else "none", (3, 4), 1.0,
                 "unlikely", "not_related", (1, 1), 0)
        values = self.event_values(entry, start, "fatal")
        values["serious_life_threatening"] = True
        reported = self.local(died_on + dt.timedelta(days=1), rng.randint(9, 11))
        entered = min(self.local(start, rng.randint(13, 18)), reported - dt.timedelta(hours=2))
        self.fatal_event: AdverseEvent | None = None

        def enter() -> None:
            self.fatal_event = self.adverse_event(values)

        self.at(entered, enter)
        self.at(reported, self.death, died_on, term)

    def death(self, died_on: dt.date, cause: str) -> None:
        """The investigator updates the event to fatal, then writes the death report, the
        early termination and the subject's status."""
        event = self.fatal_event
        if event is not None:
            self.save(AdverseEvent, {
                "ctcae_grade": 5, "outcome": "fatal", "ongoing": False, "end_date": died_on,
                "is_serious": True, "serious_death": True,
            }, pk=event.pk, user=self.staff.investigator,
                reason="The subject died: grade, outcome and end date updated")
        self.at(self.now + dt.timedelta(minutes=25), self.death_report, died_on, cause, event)

    def death_report(self, died_on: dt.date, cause: str, event: AdverseEvent | None) -> None:
        self.save(Death, {
            "died_on": died_on, "primary_cause": cause, "related_adverse_event": event,
            "autopsy": False,
            "relationship_to_product": self.rng.choice(("not_related", "unlikely")),
        }, user=self.staff.investigator)
        self.at(self.now + dt.timedelta(minutes=10), self.terminate, "death", died_on)

    def terminate(self, reason: str, on: dt.date) -> None:
        self.save(EarlyTermination, {
            "terminated_on": on, "reason": reason,
            "last_dose_infusion_number": self.infusions_given,
            "comments": {"withdrew_consent": "The subject withdrew consent for further visits.",
                         "investigator_decision": "Stopped by the investigator for safety.",
                         "lost_to_follow_up": "No contact despite repeated calls.",
                         "death": "See the death report."}[reason],
        }, user=self.staff.investigator)
        status = SubjectStatus.DIED if reason == "death" else SubjectStatus.WITHDRAWN
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=status, user=self.staff.investigator,
            reason={"death": "The subject died", "lost_to_follow_up": "Lost to follow-up",
                    "withdrew_consent": "The subject withdrew consent",
                    "investigator_decision": "Terminated by the investigator"}[reason])

    def complete(self) -> None:
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.COMPLETED, user=self.staff.investigator,
            reason="Completed the Day 180 visit")
        if self.trial.next_turn(self.site.code, "sign") % SIGN_EVERY == 0:
            self.at(self.later(self.now, 3, 10), self.sign_casebook)

    # -- source data verification, signature, lock --

    def monitor_visit(self) -> None:
        """The monitor verifies against source what eligibility rests on (the screening
        NIHSS and the stroke's onset and imaging) and every serious adverse event so far."""
        screening = self.visits[protocol.SCREENING_VISIT.code]
        records = [*NIHSS.objects.filter(subject=self.subject, visit=screening),
                   *StrokeEvent.objects.filter(subject=self.subject),
                   *AdverseEvent.objects.filter(subject=self.subject, is_serious=True)
                   .order_by("pk")]
        for record in records:
            if record.status == CRFStatus.COMPLETE and record.sdv_status != SDVStatus.VERIFIED:
                crf_verify(crf=record, user=self.staff.monitor)

    def _pending(self) -> list[dt.datetime]:
        return [moment for moment, *_rest in self._queue if moment <= self.trial.snapshot]

    def sign_casebook(self) -> None:
        """The investigator signs the whole casebook with their password, once nothing else
        is due for the subject (a later change would break the signature)."""
        if pending := self._pending():
            self.at(max(pending) + dt.timedelta(days=1), self.sign_casebook)
            return
        casebook_sign(subject=self.subject, user=self.staff.investigator,
                      username=self.staff.investigator.username, password=self.trial.password)
        if self.trial.next_turn(self.site.code, "lock") % LOCK_EVERY == 0:
            self.at(self.later(self.now, 1, 5), self.lock_casebook)

    def lock_casebook(self) -> None:
        """The data manager locks the signed casebook once nothing else is due for the subject
        (a lock refuses every later edit)."""
        if pending := self._pending():
            self.at(max(pending) + dt.timedelta(days=1), self.lock_casebook)
            return
        lock_create(user=self.trial.data_manager, scope=LockScope.SUBJECT,
                    target=self.subject, reason="Casebook complete and signed")
