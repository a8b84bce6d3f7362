"""Concomitant medications log, with the prednisone-equivalent daily dose of corticosteroids
(PROTOCOL.md: exclusion above 10 mg/day within 14 days before dosing or during the trial)."""

from decimal import ROUND_CEILING, Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _

from forms import derivations
from forms.derivations import to_decimal
from forms.models.base import CRF

# The drugs of ``derivations.PREDNISONE_EQUIVALENT_MG`` by name, in the reader's language.
CORTICOSTEROID_NAMES = {
    "prednisone": _("Prednisone"),
    "prednisolone": _("Prednisolone"),
    "methylprednisolone": _("Methylprednisolone"),
    "triamcinolone": _("Triamcinolone"),
    "hydrocortisone": _("Hydrocortisone"),
    "cortisone": _("Cortisone"),
    "dexamethasone": _("Dexamethasone"),
    "betamethasone": _("Betamethasone"),
}
CORTICOSTEROID_CHOICES = [("", _("Not a systemic corticosteroid"))] + [
    (name, CORTICOSTEROID_NAMES[name]) for name in derivations.PREDNISONE_EQUIVALENT_MG
]


class ConcomitantMedication(CRF):
    crf_code = "concomitant_medication"
    units = {"dose": "mg", "prednisone_equivalent": "mg/day"}
    derived_items = ("prednisone_equivalent",)
    required_items = ("medication", "indication", "start_date")
    # A medication taken before the stroke may have started (and ended) years earlier.
    historic_items = ("start_date", "end_date")

    medication = models.CharField(_("medication"), max_length=200, blank=True)
    corticosteroid = models.CharField(
        _("systemic corticosteroid"), max_length=20, blank=True,
        choices=CORTICOSTEROID_CHOICES,
        help_text=_("Choose the steroid to compute its prednisone-equivalent dose."),
    )
    indication = models.CharField(_("indication"), max_length=200, blank=True)
    dose = models.DecimalField(_("dose per administration"), max_digits=8, decimal_places=2,
                               null=True, blank=True)
    doses_per_day = models.DecimalField(_("administrations per day"), max_digits=4,
                                        decimal_places=1, null=True, blank=True)
    route = models.CharField(
        _("route"), max_length=12, blank=True,
        choices=[("oral", _("Oral")), ("iv", _("Intravenous")), ("im", _("Intramuscular")),
                 ("sc", _("Subcutaneous")), ("inhaled", _("Inhaled")),
                 ("topical", _("Topical")), ("other", _("Other"))],
    )
    start_date = models.DateField(_("start date"), null=True, blank=True)
    end_date = models.DateField(_("end date"), null=True, blank=True)
    ongoing = models.BooleanField(_("ongoing"), default=False)
    prednisone_equivalent = models.DecimalField(
        _("prednisone equivalent (computed)"), max_digits=8, decimal_places=2, null=True,
        blank=True,
    )

    class Meta:
        verbose_name = _("concomitant medication")
        verbose_name_plural = _("concomitant medications")
        ordering = ["start_date", "pk"]

    def __str__(self) -> str:
        text = self.medication or str(_("Concomitant medication"))
        if self.start_date:
            text += " " + str(_("from %(date)s")) % {"date": self.start_date.isoformat()}
        return text

    def prednisone_equivalent_exact(self) -> float | None:
        """The daily prednisone-equivalent dose computed from the dose as entered (exact
        ratios): what decisions compare with the 10 mg/day limit."""
        if not self.corticosteroid or self.dose is None or self.dose < 0:
            return None
        if self.doses_per_day is not None and self.doses_per_day <= 0:
            return None
        return derivations.prednisone_equivalent_mg_per_day(
            self.corticosteroid, self.dose,
            1 if self.doses_per_day is None else self.doses_per_day,
        )

    def derive(self) -> None:
        per_day = self.prednisone_equivalent_exact()
        # Two decimals, rounded up: cortisone 50.01 mg is 10.002 mg/day and shows as 10.01,
        # never as 10.00, which would look within the limit. (A rounded float was refused by
        # the two-decimal field, so the value is rounded as a Decimal.)
        self.prednisone_equivalent = None if per_day is None else to_decimal(per_day).quantize(
            Decimal("0.01"), rounding=ROUND_CEILING)

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors["end_date"] = [str(_("The end date cannot be before the start date."))]
        if self.ongoing and self.end_date:
            errors["ongoing"] = [str(_("An ongoing medication has no end date."))]
        if self.corticosteroid and self.dose is None:
            errors["dose"] = [str(_("Give the dose of the corticosteroid."))]
        if self.dose is not None and self.dose < 0:
            errors["dose"] = [str(_("A dose cannot be negative."))]
        if self.doses_per_day is not None and self.doses_per_day <= 0:
            errors["doses_per_day"] = [str(_(
                "Administrations per day must be more than 0 (leave it blank for once a "
                "day)."))]
        return errors
