"""A subject's visits and their forms (actions of ``SubjectRun``)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from edc import protocol
from forms.entry import services as form_services
from forms.models import (
    CRF,
    CRF_MODELS,
    NIHSS,
    Barthel,
    Infusion,
    LabPanel,
    ProtocolDeviation,
    VitalSigns,
)
from forms.synthetic.plan import (
    CORRECTION_RATE,
    DAY1,
    DAY2,
    DAY8,
    DAY15,
    DAY30,
    DAY90,
    DAY180,
    INFUSION_NOT_GIVEN_RATE,
    KIT_TYPO_RATE,
    LAB_ELEVATED_RATE,
    OUT_OF_WINDOW_RATE,
    PKPD_NOT_COLLECTED_RATE,
    REASONS_FOR_CHANGE,
    SAMPLE_DATE_TYPO_RATE,
    TYPO_SHARE,
    VITAL_OUT_OF_RANGE_RATE,
)
from forms.synthetic.values import (
    BARTHEL_ALLOWED,
    ITEM_FIELD,
    NIHSS_ITEM_MAX,
    OUT_OF_RANGE,
    WORSENING_AE,
    _dec,
    barthel_values,
    lab_values,
    mrs_for,
    nihss_change,
    nihss_values,
    vital_values,
)
from visits.models import (
    Visit,
)


class VisitActions:
    """Visit dates, missed visits and deviations, each visit's forms, with the errors
    the edit checks catch and the corrections made later."""

    def visit_date(self, visit: Visit) -> dt.date:
        rng = self.rng
        if rng.random() < OUT_OF_WINDOW_RATE:
            return visit.window_end + dt.timedelta(days=rng.randint(1, 2))
        spread = (visit.window_end - visit.planned_date).days
        if spread and rng.random() < 0.5:
            return visit.planned_date + dt.timedelta(days=rng.randint(-spread, spread))
        return visit.planned_date

    def miss_visit(self, code: str, reason: str) -> None:
        self._visit_saved(form_services.visit_missed(
            visit=self._visit_of_subject(code), reason=reason, user=self.staff.nurse))
        self.deviation("missed_assessment", self.visits[code],
                       f"{code} visit not done: {reason}.")

    def deviation(self, category: str, visit: Visit | None, description: str,
                  occurred_on: dt.date | None = None) -> None:
        occurred = occurred_on or (visit.actual_date if visit and visit.actual_date
                                   else self.today())
        self.save(ProtocolDeviation, {
            "occurred_on": min(occurred, self.today()), "category": category,
            "description": description, "is_major": category == "prohibited_medication",
            "corrective_action": "Site staff retrained on the visit schedule and the "
                                 "prohibited medications.",
            "reported_on": self.today(),
        })

    def visit_day(self, code: str) -> None:
        """The visit date, then the visit's forms one after the other."""
        self.record_visit(code)
        rng = self.rng
        visit_def = protocol.visit_def(code)
        day = self.today()
        moment = self.now
        if code == self.worsening_visit:
            target = self.baseline_nihss + rng.randint(4, 6)
        else:
            factor = {DAY1: 1.0, DAY2: 0.95, DAY8: 0.8, DAY15: 0.7, DAY30: 0.55, DAY90: 0.4,
                      DAY180: 0.35}[code]
            target = round(self.baseline_nihss * factor + rng.gauss(0, 1))
            if self.worsening_visit and code != DAY1:
                target += 2
        self.nihss_items = nihss_change(rng, self.nihss_items, max(0, min(30, target)),
                                        self.side)
        mrs = mrs_for(sum(self.nihss_items.values()), rng)
        for crf_code, slot in visit_def.expected_forms():
            moment += dt.timedelta(minutes=rng.randint(5, 12))
            if crf_code == "nihss":
                values = {"assessed_at": moment, **nihss_values(self.nihss_items)}
            elif crf_code == "mrs":
                values = {"assessed_on": day, "score": mrs}
            elif crf_code == "barthel":
                values = {"assessed_on": day, **barthel_values(rng, mrs)}
            elif crf_code == "vital_signs":
                values = {"measured_at": moment,
                          **vital_values(rng, weight=self.weight if code in (DAY30, DAY90)
                                         else None, fever=day in self.fever_dates,
                                         systolic_mean=138 if code in (DAY1, DAY2) else 130)}
            elif crf_code == "labs":
                values = {"sampled_at": self.local(day, 7, rng.randrange(50)),
                          **lab_values(rng, sex=self.sex, diabetic=self.history["diabetes"])}
                if rng.random() < LAB_ELEVATED_RATE:
                    values[rng.choice(("ast", "alt"))] = Decimal(rng.randint(105, 160))
            elif crf_code == "infusion":
                moment, values = self.infusion_values(visit_def, moment)
            elif crf_code == "pkpd":
                values = self.pkpd_values(slot, visit_start=self.now, after_dose=moment)
                moment = max(moment, values.get("processed_at") or moment)
                moment += dt.timedelta(minutes=5)
            elif crf_code == "end_of_study":
                values = {"completed": True, "last_contact_date": day,
                          "comments": "Completed the study as planned."}
            else:  # pragma: no cover - every CRF of a scheduled visit is covered above
                raise ValueError(crf_code)
            self.at(moment, self.visit_form, CRF_MODELS[crf_code], values, code, slot)
        if code == self.worsening_visit:
            self.at(moment + dt.timedelta(hours=2), self.adverse_event,
                    self.event_values(WORSENING_AE, day, "worsening"))
        if code == DAY180:
            self.at(moment + dt.timedelta(minutes=30), self.complete)

    def visit_form(self, model: type[CRF], values: dict[str, Any], code: str,
                   slot: str = "") -> None:
        """Save a visit form, sometimes with an error the edit checks catch (corrected once
        the query asks, when it was a slip) and sometimes corrected later with a reason."""
        rng = self.rng
        values = dict(values)
        planted: dict[str, Any] = {}
        if model is VitalSigns and rng.random() < VITAL_OUT_OF_RANGE_RATE:
            item = rng.choice(sorted(OUT_OF_RANGE))
            if rng.random() < TYPO_SHARE:
                planted = {item: values[item]}
            values[item] = OUT_OF_RANGE[item](rng)
            values["systolic_bp"] = max(values["systolic_bp"], values["diastolic_bp"] + 35)
        elif model is LabPanel and rng.random() < SAMPLE_DATE_TYPO_RATE:
            planted = {"sampled_at": values["sampled_at"]}
            values["sampled_at"] -= dt.timedelta(days=1)
        elif model is Infusion and values.get("kit_number") and rng.random() < KIT_TYPO_RATE:
            kit = values["kit_number"]
            planted = {"kit_number": kit}
            values["kit_number"] = kit[:-2] + kit[-1] + kit[-2] if kit[-1] != kit[-2] \
                else kit[:-1] + str((int(kit[-1]) + 1) % 10)
        saved = self.save(model, values, visit=code, slot=slot)
        for item, value in planted.items():
            self.corrections[(model, saved.pk, item)] = {item: value}
        if model in (NIHSS, VitalSigns, LabPanel, Barthel) and rng.random() < CORRECTION_RATE:
            self.at(self.later(self.now, 1, 14), self.amend, model, saved.pk)

    def amend(self, model: type[CRF], pk: int) -> None:
        """A correction of a complete form found on review, with its reason."""
        record = model.objects.get(pk=pk)
        rng = self.rng
        if model is VitalSigns:
            values = {"heart_rate": min(110, max(52, record.heart_rate + rng.choice((-4, -2,
                                                                                    2, 4))))}
        elif model is LabPanel:
            values = {"hemoglobin": record.hemoglobin + rng.choice((-3, -2, 2, 3))}
        elif model is Barthel:
            scored = [c for c, v in record.items().items() if v]
            if not scored:
                return
            code = rng.choice(scored)
            allowed = BARTHEL_ALLOWED[code]
            values = {code: allowed[allowed.index(getattr(record, code)) - 1]}
        else:
            scored = [c for c in NIHSS_ITEM_MAX if c != "1a"
                      and getattr(record, ITEM_FIELD[c]) not in ("", "UN")]
            code = rng.choice(scored)
            score = int(getattr(record, ITEM_FIELD[code]))
            score = score - 1 if score > 0 else score + 1
            values = {ITEM_FIELD[code]: str(score)}
        self.save(model, values, pk=pk, reason=rng.choice(REASONS_FOR_CHANGE))

    def infusion_values(self, visit_def, moment: dt.datetime
                        ) -> tuple[dt.datetime, dict[str, Any]]:
        rng = self.rng
        number = visit_def.infusion_number
        if number > 1 and rng.random() < INFUSION_NOT_GIVEN_RATE:
            return moment, {"given": False, "not_given_reason": rng.choice((
                "The subject declined the infusion on the day",
                "Fever on the infusion day; the investigator postponed and then cancelled it"))}
        self.infusions_given = number
        started = moment + dt.timedelta(minutes=rng.randint(10, 30))
        minutes = rng.randint(55, 80)
        stopped = started + dt.timedelta(minutes=minutes)
        infused = _dec(rng.uniform(96, 100), 1)

        def vitals(prefix: str) -> dict[str, Any]:
            v = vital_values(rng, weight=None, systolic_mean=135)
            return {f"{prefix}_{name}": v[name]
                    for name in ("systolic_bp", "diastolic_bp", "heart_rate", "temperature")}

        values = {
            "given": True, "kit_number": self.kits[number], "weight_for_dosing": self.weight,
            "planned_dose_cells_per_kg": Decimal("1.00"),
            "volume_prepared_ml": Decimal("100.0"), "volume_infused_ml": infused,
            "started_at": started, "stopped_at": stopped,
            "rate_ml_per_hour": _dec(float(infused) * 60 / minutes, 1),
            "interrupted": False, "premedication": "None",
            **vitals("pre"), **vitals("during"), **vitals("post"),
        }
        return stopped + dt.timedelta(minutes=rng.randint(10, 25)), values

    def pkpd_values(self, timepoint: str, *, visit_start: dt.datetime, after_dose: dt.datetime
                    ) -> dict[str, Any]:
        """The 1 h post-dose sample after the infusion, the others (pre-dose, 24 h, follow-up)
        when the subject arrives. The time point is the record's slot, not an item."""
        rng = self.rng
        if rng.random() < PKPD_NOT_COLLECTED_RATE:
            return {"collected": False,
                    "not_collected_reason": "Venous access failed after two attempts"}
        collected = (after_dose if timepoint == "post_dose_1h"
                     else visit_start + dt.timedelta(minutes=rng.randint(2, 8)))
        return {
            "collected": True, "collected_at": collected,
            "tube_type": rng.choice(("edta", "edta", "serum", "paxgene_rna")),
            "processed_at": collected + dt.timedelta(minutes=rng.randint(30, 60)),
            "freezer_id": f"-80 °C freezer {self.site.code}-1",
            "storage_location": f"Rack {rng.randint(1, 6)}, box {rng.randint(1, 20)}, "
                                f"position {rng.randint(1, 81)}",
        }
