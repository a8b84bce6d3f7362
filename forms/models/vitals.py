"""Vital signs, with the hard limits of PROTOCOL.md (impossible values are refused)."""

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _

from forms.models.base import CRF, one_per_visit

# item → (hard low, hard high) from PROTOCOL.md "Vital signs ranges" (impossible outside).
HARD_LIMITS: dict[str, tuple[Decimal, Decimal]] = {
    "systolic_bp": (Decimal(50), Decimal(280)),
    "diastolic_bp": (Decimal(20), Decimal(160)),
    "heart_rate": (Decimal(20), Decimal(250)),
    "temperature": (Decimal(32), Decimal(43)),
    "respiratory_rate": (Decimal(4), Decimal(70)),
    "spo2": (Decimal(50), Decimal(100)),
    "weight": (Decimal(25), Decimal(250)),
}
# item → (soft low, soft high); outside raises a query (edit checks). None: no limit.
SOFT_LIMITS: dict[str, tuple[Decimal | None, Decimal | None]] = {
    "systolic_bp": (Decimal(90), Decimal(185)),
    "diastolic_bp": (Decimal(40), Decimal(110)),
    "heart_rate": (Decimal(45), Decimal(120)),
    "temperature": (Decimal("35.5"), Decimal("37.9")),
    "respiratory_rate": (Decimal(10), Decimal(28)),
    "spo2": (Decimal(94), None),
    "weight": (Decimal(40), Decimal(150)),
}
VITAL_UNITS = {
    "systolic_bp": "mmHg", "diastolic_bp": "mmHg", "heart_rate": "/min", "temperature": "°C",
    "respiratory_rate": "/min", "spo2": "%", "weight": "kg",
}


def hard_limit_errors(values: dict[str, Decimal | int | None]) -> dict[str, list[str]]:
    """Impossible vital signs (shared by the vital-signs form and the infusion record's
    peri-infusion measurements, whose item names end in the vital sign's name)."""
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        vital = next((v for v in HARD_LIMITS if name == v or name.endswith(f"_{v}")), None)
        if vital is None or value is None:
            continue
        low, high = HARD_LIMITS[vital]
        if not low <= Decimal(value) <= high:
            errors.setdefault(name, []).append(
                str(_("Impossible value: must be between %(low)s and %(high)s %(unit)s."))
                % {"low": low, "high": high, "unit": VITAL_UNITS[vital]}
            )
    return errors


def blood_pressure_errors(systolic, diastolic, *, field: str) -> dict[str, list[str]]:
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        return {field: [str(_("Diastolic pressure must be below systolic pressure."))]}
    return {}


class VitalSigns(CRF):
    crf_code = "vital_signs"
    units = VITAL_UNITS

    measured_at = models.DateTimeField(_("date and time measured"), null=True, blank=True)
    systolic_bp = models.PositiveSmallIntegerField(_("systolic blood pressure"), null=True,
                                                   blank=True)
    diastolic_bp = models.PositiveSmallIntegerField(_("diastolic blood pressure"), null=True,
                                                    blank=True)
    heart_rate = models.PositiveSmallIntegerField(_("heart rate"), null=True, blank=True)
    temperature = models.DecimalField(_("temperature"), max_digits=3, decimal_places=1,
                                      null=True, blank=True)
    respiratory_rate = models.PositiveSmallIntegerField(_("respiratory rate"), null=True,
                                                        blank=True)
    spo2 = models.PositiveSmallIntegerField(_("SpO₂"), null=True, blank=True)
    weight = models.DecimalField(_("weight"), max_digits=4, decimal_places=1, null=True,
                                 blank=True)

    required_items = ("measured_at", "systolic_bp", "diastolic_bp", "heart_rate", "temperature",
                      "respiratory_rate", "spo2")

    class Meta:
        verbose_name = _("vital signs")
        verbose_name_plural = _("vital signs")
        constraints = [one_per_visit("vital_signs")]

    def hard_errors(self) -> dict[str, list[str]]:
        errors = hard_limit_errors({name: getattr(self, name) for name in HARD_LIMITS})
        for field, messages in blood_pressure_errors(
            self.systolic_bp, self.diastolic_bp, field="diastolic_bp"
        ).items():
            errors.setdefault(field, []).extend(messages)
        return errors
