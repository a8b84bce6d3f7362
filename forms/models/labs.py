"""Laboratory panel with each site lab's sex-specific reference ranges (PROTOCOL.md,
Laboratory panel). Every result is stored with the range used and its flag; eGFR and × ULN are
computed, never typed."""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.db import models
from django.db.models import Q
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from edc.models import Site
from edc.sources import audited_history
from forms import derivations
from forms.models.base import CRF, one_per_visit


@dataclass(frozen=True)
class Analyte:
    code: str
    label: str
    unit: str
    decimals: int


ANALYTES: tuple[Analyte, ...] = (
    Analyte("ast", _("AST"), "U/L", 0),
    Analyte("alt", _("ALT"), "U/L", 0),
    Analyte("bilirubin", _("total bilirubin"), "µmol/L", 1),
    Analyte("creatinine", _("creatinine"), "µmol/L", 0),
    Analyte("hemoglobin", _("hemoglobin"), "g/L", 0),
    Analyte("wbc", _("WBC"), "×10⁹/L", 2),
    Analyte("platelets", _("platelets"), "×10⁹/L", 0),
    Analyte("glucose", _("glucose"), "mmol/L", 1),
    Analyte("inr", _("INR"), "", 2),
    Analyte("d_dimer", _("D-dimer"), "mg/L FEU", 2),
    Analyte("fibrinogen", _("fibrinogen"), "g/L", 2),
)
ANALYTE_CHOICES = [(a.code, a.label) for a in ANALYTES]


class Sex(models.TextChoices):
    FEMALE = "F", _("Female")
    MALE = "M", _("Male")


class LabFlag(models.TextChoices):
    LOW = "low", _("low")
    NORMAL = "normal", _("normal")
    HIGH = "high", _("high")


class LabReferenceRange(models.Model):
    """A site lab's normal range for one analyte, for one sex or both, from a date."""

    site = models.ForeignKey(Site, verbose_name=_("site"), on_delete=models.PROTECT,
                             related_name="lab_ranges")
    analyte = models.CharField(_("analyte"), max_length=20, choices=ANALYTE_CHOICES)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, blank=True,
                           help_text=_("Blank: the range applies to both sexes."))
    low = models.DecimalField(_("lower limit of normal"), max_digits=10, decimal_places=3,
                              null=True, blank=True)
    high = models.DecimalField(_("upper limit of normal"), max_digits=10, decimal_places=3)
    effective_from = models.DateField(_("effective from"))
    effective_to = models.DateField(_("effective until"), null=True, blank=True)

    history = audited_history()

    class Meta:
        ordering = ["site", "analyte", "sex", "-effective_from"]
        verbose_name = _("lab reference range")
        verbose_name_plural = _("lab reference ranges")
        constraints = [
            models.CheckConstraint(
                name="labrange_low_below_high",
                condition=Q(low__isnull=True) | Q(low__lt=models.F("high")),
            ),
            models.CheckConstraint(
                name="labrange_high_positive", condition=Q(high__gt=0),
            ),
            models.CheckConstraint(
                name="labrange_dates_ordered",
                condition=Q(effective_to__isnull=True)
                | Q(effective_to__gte=models.F("effective_from")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site.code} {self.analyte} {self.sex or '*'} {self.low}–{self.high}"


def reference_ranges(site: Site, sex: str, on: dt.date) -> dict[str, LabReferenceRange]:
    """The range in force on ``on`` for each analyte; a sex-specific range wins over one for
    both sexes."""
    candidates = LabReferenceRange.objects.filter(
        Q(sex=sex) | Q(sex=""), site=site, effective_from__lte=on,
    ).filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
    chosen: dict[str, LabReferenceRange] = {}
    for candidate in candidates.order_by("analyte", "-effective_from"):
        current = chosen.get(candidate.analyte)
        if current is None or (current.sex == "" and candidate.sex == sex):
            chosen[candidate.analyte] = candidate
    return chosen


def _value_field(analyte: Analyte) -> models.DecimalField:
    return models.DecimalField(analyte.label, max_digits=10, decimal_places=3, null=True,
                               blank=True)


def _flag_label(code: str) -> str:
    return gettext("%(analyte)s flag") % {"analyte": code}


def _flag_field(analyte: Analyte) -> models.CharField:
    # Translated when read (the reader's language), not once at import.
    return models.CharField(lazy(_flag_label, str)(analyte.code.upper()),
                            max_length=6, choices=LabFlag.choices, blank=True)


class PregnancyTest(models.TextChoices):
    NEGATIVE = "negative", _("Negative")
    POSITIVE = "positive", _("Positive")


class LabPanel(CRF):
    crf_code = "labs"
    units = {a.code: a.unit for a in ANALYTES} | {"egfr": "mL/min/1.73 m²"}
    derived_items = (
        *(f"{a.code}_flag" for a in ANALYTES), "ast_x_uln", "alt_x_uln", "egfr", "ranges_used",
    )
    required_items = ("sampled_at", "ast", "alt", "creatinine", "hemoglobin", "wbc", "platelets")

    sampled_at = models.DateTimeField(_("date and time of sampling"), null=True, blank=True)
    ast = _value_field(ANALYTES[0])
    alt = _value_field(ANALYTES[1])
    bilirubin = _value_field(ANALYTES[2])
    creatinine = _value_field(ANALYTES[3])
    hemoglobin = _value_field(ANALYTES[4])
    wbc = _value_field(ANALYTES[5])
    platelets = _value_field(ANALYTES[6])
    glucose = _value_field(ANALYTES[7])
    inr = _value_field(ANALYTES[8])
    d_dimer = _value_field(ANALYTES[9])
    fibrinogen = _value_field(ANALYTES[10])
    pregnancy_test = models.CharField(
        _("pregnancy test"), max_length=10, choices=PregnancyTest.choices, blank=True,
        help_text=_("Women of childbearing potential; otherwise mark not applicable."),
    )
    ast_flag = _flag_field(ANALYTES[0])
    alt_flag = _flag_field(ANALYTES[1])
    bilirubin_flag = _flag_field(ANALYTES[2])
    creatinine_flag = _flag_field(ANALYTES[3])
    hemoglobin_flag = _flag_field(ANALYTES[4])
    wbc_flag = _flag_field(ANALYTES[5])
    platelets_flag = _flag_field(ANALYTES[6])
    glucose_flag = _flag_field(ANALYTES[7])
    inr_flag = _flag_field(ANALYTES[8])
    d_dimer_flag = _flag_field(ANALYTES[9])
    fibrinogen_flag = _flag_field(ANALYTES[10])
    ast_x_uln = models.DecimalField(_("AST × ULN (computed)"), max_digits=6, decimal_places=2,
                                    null=True, blank=True)
    alt_x_uln = models.DecimalField(_("ALT × ULN (computed)"), max_digits=6, decimal_places=2,
                                    null=True, blank=True)
    egfr = models.DecimalField(
        _("eGFR, CKD-EPI 2021 (computed)"), max_digits=6, decimal_places=1, null=True,
        blank=True,
        help_text=_("Age on the sample date; one decimal, rounded down so that it never "
                    "crosses a limit. Eligibility recomputes it from creatinine, age and sex."),
    )
    ranges_used = models.JSONField(
        _("reference ranges used"), default=dict, blank=True,
        help_text=_("Analyte → [low, high, unit] of the site lab's range on the sample date."),
    )

    class Meta:
        verbose_name = _("laboratory panel")
        verbose_name_plural = _("laboratory panels")
        constraints = [one_per_visit("labs")]

    def egfr_exact(self, *, sex: str | None, age: int | None) -> float | None:
        """eGFR unrounded, from the creatinine, the sex and the age on the sample date; None
        while one of them is missing (a creatinine that is not positive is a hard error)."""
        if self.creatinine is None or self.creatinine <= 0 or not sex or age is None:
            return None
        return derivations.egfr_ckd_epi_2021(creatinine_umol_l=self.creatinine,
                                             age_years=age, sex=sex)

    def apply_reference(self, *, ranges: dict[str, LabReferenceRange], sex: str | None,
                        age: int | None) -> None:
        """Derive flags, × ULN and eGFR from the entered values, the site lab's ranges on the
        sample date, and the subject's sex and age on the sample date."""
        used = {}
        for analyte in ANALYTES:
            value = getattr(self, analyte.code)
            reference = ranges.get(analyte.code)
            flag = ""
            if value is not None and reference is not None:
                flag = derivations.lab_flag(value, reference.low, reference.high)
                used[analyte.code] = [
                    None if reference.low is None else str(reference.low),
                    str(reference.high), analyte.unit,
                ]
            setattr(self, f"{analyte.code}_flag", flag)
        self.ranges_used = used
        for code in ("ast", "alt"):
            value, reference = getattr(self, code), ranges.get(code)
            ratio = None
            if value is not None and reference is not None and reference.high > 0:
                # Rounded up: a value above 2.5 × ULN never shows as 2.50.
                ratio = (Decimal(value) / Decimal(reference.high)).quantize(
                    Decimal("0.01"), rounding=ROUND_CEILING)
            setattr(self, f"{code}_x_uln", ratio)
        exact = self.egfr_exact(sex=sex, age=age)
        self.egfr = None if exact is None else derivations.egfr_to_store(exact)

    def hard_errors(self) -> dict[str, list[str]]:
        errors = {}
        for analyte in ANALYTES:
            value = getattr(self, analyte.code)
            if value is not None and value < 0:
                errors[analyte.code] = [str(_("A laboratory value cannot be negative."))]
        if self.creatinine is not None and self.creatinine == 0:
            errors["creatinine"] = [str(_(
                "A creatinine of 0 µmol/L is not possible (eGFR cannot be computed from it): "
                "enter the result as reported by the lab."))]
        return errors
