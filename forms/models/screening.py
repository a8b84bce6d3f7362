"""Screening forms: demographics, medical history, stroke event and imaging."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from forms.models.base import CRF, one_per_subject
from forms.models.labs import Sex


class Demographics(CRF):
    crf_code = "demographics"
    units = {"height": "cm", "weight": "kg"}
    required_items = ("sex", "ethnicity", "height", "weight")

    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, blank=True)
    ethnicity = models.CharField(
        _("ethnicity"), max_length=10, blank=True,
        choices=[("han", _("Han")), ("other", _("Other ethnic group"))],
    )
    height = models.PositiveSmallIntegerField(_("height"), null=True, blank=True)
    weight = models.DecimalField(_("weight"), max_digits=4, decimal_places=1, null=True,
                                 blank=True)
    childbearing_potential = models.BooleanField(
        _("woman of childbearing potential"), null=True, blank=True,
    )

    class Meta:
        verbose_name = _("demographics")
        verbose_name_plural = _("demographics")
        constraints = [one_per_subject("demographics")]

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.height is not None and not 100 <= self.height <= 230:
            errors["height"] = [str(_("Impossible value: must be between 100 and 230 cm."))]
        if self.weight is not None and not 25 <= self.weight <= 250:
            errors["weight"] = [str(_("Impossible value: must be between 25 and 250 kg."))]
        if self.sex == Sex.MALE and self.childbearing_potential:
            errors["childbearing_potential"] = [
                str(_("Childbearing potential applies to women only."))
            ]
        return errors


def _history_item(label) -> models.BooleanField:
    return models.BooleanField(label, null=True, blank=True)


class MedicalHistory(CRF):
    crf_code = "medical_history"
    required_items = ("hypertension", "diabetes", "atrial_fibrillation", "prior_stroke")

    hypertension = _history_item(_("hypertension"))
    diabetes = _history_item(_("diabetes mellitus"))
    hyperlipidemia = _history_item(_("hyperlipidemia"))
    atrial_fibrillation = _history_item(_("atrial fibrillation"))
    coronary_heart_disease = _history_item(_("coronary heart disease"))
    prior_stroke = _history_item(_("prior stroke or TIA"))
    smoking = models.CharField(
        _("smoking"), max_length=10, blank=True,
        choices=[("never", _("Never")), ("former", _("Former")), ("current", _("Current"))],
    )
    epilepsy = _history_item(_("epilepsy"))
    parkinsons = _history_item(_("Parkinson's disease"))
    alzheimers = _history_item(_("Alzheimer's disease"))
    severe_depression = _history_item(_("severe depression"))
    malignancy = _history_item(_("brain tumour or malignancy"))
    alcohol_abuse = _history_item(_("alcohol abuse in the past year (> 2 units/day)"))
    other_conditions = bounded_text(_("other relevant conditions"), bounds.DESCRIPTION,
                                    blank=True)

    class Meta:
        verbose_name = _("medical history")
        verbose_name_plural = _("medical history")
        constraints = [one_per_subject("medical_history"),
                       *length_checks("medical_history", other_conditions=bounds.DESCRIPTION)]


class StrokeEvent(CRF):
    crf_code = "stroke_event"
    units = {"midline_shift": "mm"}
    required_items = ("onset_type", "onset_at", "imaging_modality", "imaging_at", "territory",
                      "hemorrhage", "thrombolysis", "thrombectomy")

    onset_type = models.CharField(
        _("onset time is"), max_length=12, blank=True,
        choices=[("witnessed", _("Witnessed onset")), ("lkw", _("Last known well"))],
    )
    onset_at = models.DateTimeField(
        _("stroke onset or last known well"), null=True, blank=True
    )
    arrival_at = models.DateTimeField(_("hospital arrival"), null=True, blank=True)
    imaging_modality = models.CharField(
        _("imaging"), max_length=8, blank=True,
        choices=[("ct", _("CT")), ("mri", _("MRI")), ("both", _("CT and MRI"))],
    )
    imaging_at = models.DateTimeField(_("date and time of imaging"), null=True, blank=True)
    territory = models.CharField(
        _("infarct territory"), max_length=12, blank=True,
        choices=[
            ("anterior", _("Anterior circulation (ICA/MCA/ACA)")),
            ("posterior", _("Posterior circulation")),
            ("both", _("Anterior and posterior")),
        ],
    )
    side = models.CharField(
        _("side"), max_length=10, blank=True,
        choices=[("left", _("Left")), ("right", _("Right")), ("bilateral", _("Bilateral"))],
    )
    large_mca_infarct = models.BooleanField(_("large MCA infarct"), null=True, blank=True)
    midline_shift = models.DecimalField(_("midline shift"), max_digits=4, decimal_places=1,
                                        null=True, blank=True)
    hemorrhage = models.CharField(
        _("intracranial hemorrhage"), max_length=16, blank=True,
        choices=[
            ("none", _("None")),
            ("petechial", _("Petechial only")),
            ("transformation", _("Hemorrhagic transformation")),
            ("ich", _("Intracerebral hemorrhage")),
        ],
    )
    thrombolysis = models.CharField(
        _("intravenous thrombolysis"), max_length=8, blank=True,
        choices=[("no", _("No")), ("planned", _("Planned")), ("given", _("Given"))],
    )
    thrombectomy = models.CharField(
        _("endovascular thrombectomy"), max_length=8, blank=True,
        choices=[("no", _("No")), ("planned", _("Planned")), ("done", _("Done"))],
    )

    class Meta:
        verbose_name = _("stroke event and imaging")
        verbose_name_plural = _("stroke events and imaging")
        constraints = [one_per_subject("stroke_event")]

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.onset_at and self.arrival_at and self.arrival_at < self.onset_at:
            errors["arrival_at"] = [str(_("Hospital arrival cannot be before stroke onset."))]
        if self.onset_at and self.imaging_at and self.imaging_at < self.onset_at:
            errors["imaging_at"] = [str(_("Imaging cannot be before stroke onset."))]
        if self.midline_shift is not None and not 0 <= self.midline_shift <= 50:
            errors["midline_shift"] = [str(_("Impossible value: must be between 0 and 50 mm."))]
        return errors
