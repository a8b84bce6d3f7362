"""Modified Rankin Scale and Barthel Index (PROTOCOL.md, Scales)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from edc.protocol import SCREENING_VISIT
from forms import derivations
from forms.models.base import CRF, one_per_visit

MRS_CHOICES = [
    (0, _("0 — No symptoms")),
    (1, _("1 — No significant disability; able to carry out all usual activities")),
    (2, _("2 — Slight disability; looks after own affairs without assistance")),
    (3, _("3 — Moderate disability; requires some help, walks unaided")),
    (4, _("4 — Moderately severe disability; cannot walk or attend to bodily needs unaided")),
    (5, _("5 — Severe disability; bedridden, incontinent, needs constant care")),
    (6, _("6 — Dead")),
]


class MRS(CRF):
    crf_code = "mrs"
    derived_items = ("is_prestroke",)
    required_items = ("assessed_on", "score")

    assessed_on = models.DateField(_("date of assessment"), null=True, blank=True)
    score = models.PositiveSmallIntegerField(
        _("modified Rankin Scale"), choices=MRS_CHOICES, null=True, blank=True
    )
    is_prestroke = models.BooleanField(
        _("pre-stroke rating"), default=False,
        help_text=_("At screening the mRS rates the subject before the stroke."),
    )

    class Meta:
        verbose_name = _("modified Rankin Scale")
        verbose_name_plural = _("modified Rankin Scale")
        constraints = [one_per_visit("mrs")]

    def derive(self) -> None:
        self.is_prestroke = self.visit is not None and self.visit.code == SCREENING_VISIT.code


def _barthel_field(code: str, label) -> models.PositiveSmallIntegerField:
    allowed = dict(derivations.BARTHEL_ITEMS)[code]
    return models.PositiveSmallIntegerField(
        label, choices=[(v, str(v)) for v in allowed], null=True, blank=True
    )


class Barthel(CRF):
    crf_code = "barthel"
    derived_items = ("total",)

    assessed_on = models.DateField(_("date of assessment"), null=True, blank=True)
    feeding = _barthel_field("feeding", _("Feeding"))
    bathing = _barthel_field("bathing", _("Bathing"))
    grooming = _barthel_field("grooming", _("Grooming"))
    dressing = _barthel_field("dressing", _("Dressing"))
    bowels = _barthel_field("bowels", _("Bowels"))
    bladder = _barthel_field("bladder", _("Bladder"))
    toilet_use = _barthel_field("toilet_use", _("Toilet use"))
    transfers = _barthel_field("transfers", _("Transfers (bed to chair and back)"))
    mobility = _barthel_field("mobility", _("Mobility on level surfaces"))
    stairs = _barthel_field("stairs", _("Stairs"))
    total = models.PositiveSmallIntegerField(
        _("Barthel Index total (computed)"), null=True, blank=True
    )

    required_items = ("assessed_on", *(code for code, _v in derivations.BARTHEL_ITEMS))

    class Meta:
        verbose_name = _("Barthel Index")
        verbose_name_plural = _("Barthel Index")
        constraints = [one_per_visit("barthel")]

    def items(self) -> dict[str, int | None]:
        return {code: getattr(self, code) for code, _v in derivations.BARTHEL_ITEMS}

    def derive(self) -> None:
        self.total = derivations.barthel_total(self.items())

    def hard_errors(self) -> dict[str, list[str]]:
        return {k: [str(v)] for k, v in derivations.barthel_item_errors(self.items()).items()}
