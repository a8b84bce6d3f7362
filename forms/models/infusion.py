"""Infusion record, one per planned infusion (PROTOCOL.md "Infusion record"). Blinded: the arm
and the bag's true content are never entered here; the kit number is all site staff know."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from edc import bounds, protocol
from edc.bounds import bounded_text, length_checks
from forms.models.adverse_events import AdverseEvent
from forms.models.base import CRF, one_per_visit
from forms.models.vitals import VITAL_UNITS, blood_pressure_errors, hard_limit_errors

# Peri-infusion vital signs: measured before, during and after the infusion.
VITAL_TIMEPOINTS = ("pre", "during", "post")
PERI_INFUSION_VITALS = ("systolic_bp", "diastolic_bp", "heart_rate", "temperature")
VITAL_ITEMS = tuple(f"{t}_{v}" for t in VITAL_TIMEPOINTS for v in PERI_INFUSION_VITALS)
VOLUMES = ("volume_prepared_ml", "volume_infused_ml", "rate_ml_per_hour")


def validate_positive_dose(value: Decimal | None) -> None:
    if value is not None and value <= 0:
        raise ValidationError(_("The planned dose must be more than 0 × 10⁶ cells/kg."),
                              code="not_positive")


def _vital_field(label, *, decimal: bool = False) -> models.Field:
    if decimal:
        return models.DecimalField(label, max_digits=3, decimal_places=1, null=True, blank=True)
    return models.PositiveSmallIntegerField(label, null=True, blank=True)


def _volume_field(label, help_text="") -> models.DecimalField:
    return models.DecimalField(label, max_digits=6, decimal_places=1, null=True, blank=True,
                               help_text=help_text)


class Infusion(CRF):
    crf_code = "infusion"
    derived_items = ("infusion_number",)
    units = {
        "weight_for_dosing": "kg", "planned_dose_cells_per_kg": "×10⁶ cells/kg",
        "volume_prepared_ml": "mL", "volume_infused_ml": "mL", "rate_ml_per_hour": "mL/h",
    } | {name: VITAL_UNITS[name.split("_", 1)[1]] for name in VITAL_ITEMS}
    required_items = (
        "given", "kit_number", "weight_for_dosing", "volume_prepared_ml", "volume_infused_ml",
        "started_at", "stopped_at", *(f"pre_{v}" for v in PERI_INFUSION_VITALS),
    )

    infusion_number = models.PositiveSmallIntegerField(
        _("infusion number (from the visit)"), null=True, blank=True
    )
    given = models.BooleanField(_("infusion given"), null=True, blank=True)
    not_given_reason = bounded_text(
        _("reason the infusion was not given"), bounds.REASON, blank=True,
        help_text=_("Required when the infusion was not given."),
    )
    kit_number = models.CharField(
        _("kit number"), max_length=20, blank=True,
        help_text=_("As printed on the kit label; must be the kit allocated for this infusion."),
    )
    weight_for_dosing = models.DecimalField(
        _("weight used for dosing"), max_digits=4, decimal_places=1, null=True, blank=True
    )
    planned_dose_cells_per_kg = models.DecimalField(
        _("planned dose"), max_digits=4, decimal_places=2, null=True, blank=True,
        default=Decimal("1.0"), validators=[validate_positive_dose],
        help_text=_("Protocol dose: 1 × 10⁶ cells/kg (the same for every kit)."),
    )
    volume_prepared_ml = _volume_field(_("volume prepared"))
    volume_infused_ml = _volume_field(
        _("volume infused"), _("Cannot exceed the volume prepared.")
    )
    started_at = models.DateTimeField(_("infusion started"), null=True, blank=True)
    stopped_at = models.DateTimeField(_("infusion stopped"), null=True, blank=True)
    rate_ml_per_hour = _volume_field(_("infusion rate"))
    interrupted = models.BooleanField(_("infusion interrupted"), null=True, blank=True)
    interruption_reason = bounded_text(
        _("reason for the interruption"), bounds.REASON, blank=True,
        help_text=_("Required when the infusion was interrupted."),
    )
    interruption_adverse_event = models.ForeignKey(
        AdverseEvent, verbose_name=_("adverse event causing the interruption"),
        on_delete=models.PROTECT, related_name="+", null=True, blank=True,
        help_text=_("Record the adverse event first, then link it here."),
    )
    premedication = bounded_text(
        _("premedication"), bounds.NOTE, blank=True, help_text=_("Drug, dose and route, or none.")
    )
    pre_systolic_bp = _vital_field(_("systolic blood pressure before the infusion"))
    pre_diastolic_bp = _vital_field(_("diastolic blood pressure before the infusion"))
    pre_heart_rate = _vital_field(_("heart rate before the infusion"))
    pre_temperature = _vital_field(_("temperature before the infusion"), decimal=True)
    during_systolic_bp = _vital_field(_("systolic blood pressure during the infusion"))
    during_diastolic_bp = _vital_field(_("diastolic blood pressure during the infusion"))
    during_heart_rate = _vital_field(_("heart rate during the infusion"))
    during_temperature = _vital_field(_("temperature during the infusion"), decimal=True)
    post_systolic_bp = _vital_field(_("systolic blood pressure after the infusion"))
    post_diastolic_bp = _vital_field(_("diastolic blood pressure after the infusion"))
    post_heart_rate = _vital_field(_("heart rate after the infusion"))
    post_temperature = _vital_field(_("temperature after the infusion"), decimal=True)

    class Meta:
        verbose_name = _("infusion record")
        verbose_name_plural = _("infusion records")
        constraints = [
            *length_checks("infusion", not_given_reason=bounds.REASON,
                          interruption_reason=bounds.REASON, premedication=bounds.NOTE),
            one_per_visit("infusion"),
            models.CheckConstraint(
                name="infusion_number_range",
                condition=Q(infusion_number__isnull=True) | Q(infusion_number__range=(1, 3)),
            ),
            models.CheckConstraint(
                name="infusion_infused_within_prepared",
                condition=Q(volume_infused_ml__isnull=True) | Q(volume_prepared_ml__isnull=True)
                | Q(volume_infused_ml__lte=F("volume_prepared_ml")),
            ),
            models.CheckConstraint(
                name="infusion_planned_dose_positive",
                condition=Q(planned_dose_cells_per_kg__isnull=True)
                | Q(planned_dose_cells_per_kg__gt=0),
            ),
            models.CheckConstraint(
                name="infusion_stops_after_start",
                condition=Q(started_at__isnull=True) | Q(stopped_at__isnull=True)
                | Q(stopped_at__gte=F("started_at")),
            ),
        ]

    def required_for_completion(self) -> tuple[str, ...]:
        """An infusion not given needs only that answer and its reason (a hard check)."""
        if self.given is False:
            return ("given",)
        return self.required_items

    def derive(self) -> None:
        code = self.visit.code if self.visit is not None else None
        try:
            self.infusion_number = protocol.visit_def(code).infusion_number
        except KeyError:
            self.infusion_number = None

    def hard_errors(self) -> dict[str, list[str]]:
        errors = hard_limit_errors({name: getattr(self, name) for name in VITAL_ITEMS})

        def add(field: str, message) -> None:
            errors.setdefault(field, []).append(str(message))

        for timepoint in VITAL_TIMEPOINTS:
            for field, messages in blood_pressure_errors(
                getattr(self, f"{timepoint}_systolic_bp"),
                getattr(self, f"{timepoint}_diastolic_bp"),
                field=f"{timepoint}_diastolic_bp",
            ).items():
                errors.setdefault(field, []).extend(messages)
        for message in hard_limit_errors({"weight": self.weight_for_dosing}).get("weight", []):
            add("weight_for_dosing", message)
        for name in VOLUMES:
            value = getattr(self, name)
            if value is not None and value < 0:
                add(name, _("Cannot be negative."))
        prepared, infused = self.volume_prepared_ml, self.volume_infused_ml
        if prepared is not None and infused is not None and infused > prepared:
            add("volume_infused_ml", _("The volume infused cannot exceed the volume prepared."))
        if self.started_at and self.stopped_at and self.stopped_at < self.started_at:
            add("stopped_at", _("The infusion cannot stop before it started."))
        if self.given is False and not self.not_given_reason.strip():
            add("not_given_reason", _("Give the reason the infusion was not given."))
        if self.interrupted and not self.interruption_reason.strip():
            add("interruption_reason", _("Give the reason for the interruption."))
        event = self.interruption_adverse_event
        if event is not None and event.subject_id != self.subject_id:
            add("interruption_adverse_event",
                _("The adverse event must be one of this subject's."))
        return errors
