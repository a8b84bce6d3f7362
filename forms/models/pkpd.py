"""PK/PD sample collection (PROTOCOL.md: exploratory pharmacokinetics and pharmacodynamics;
collected at D1, D2, D8, D15 and D30)."""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from forms.models.base import CRF, one_per_visit


class Timepoint(models.TextChoices):
    PRE_DOSE = "pre_dose", _("Pre-dose")
    POST_DOSE_1H = "post_dose_1h", _("1 h post-dose")
    H24 = "24h", _("24 h post-dose")
    OTHER = "other", _("Other")


class TubeType(models.TextChoices):
    EDTA = "edta", _("EDTA (plasma)")
    SERUM = "serum", _("Serum")
    PAXGENE_RNA = "paxgene_rna", _("PAXgene RNA")
    OTHER = "other", _("Other")


class PKPDSample(CRF):
    crf_code = "pkpd"
    required_items = ("timepoint", "collected", "collected_at", "tube_type", "processed_at",
                      "freezer_id")

    timepoint = models.CharField(
        _("time point"), max_length=15, blank=True, choices=Timepoint.choices
    )
    collected = models.BooleanField(_("sample collected"), null=True, blank=True)
    not_collected_reason = bounded_text(
        _("reason the sample was not collected"), bounds.REASON, blank=True,
        help_text=_("Required when the sample was not collected."),
    )
    collected_at = models.DateTimeField(_("date and time collected"), null=True, blank=True)
    tube_type = models.CharField(
        _("tube type"), max_length=15, blank=True, choices=TubeType.choices
    )
    processed_at = models.DateTimeField(
        _("date and time processed"), null=True, blank=True,
        help_text=_("Centrifuged or aliquoted; not before collection."),
    )
    freezer_id = models.CharField(_("freezer"), max_length=50, blank=True)
    storage_location = models.CharField(
        _("storage location"), max_length=100, blank=True,
        help_text=_("Rack, box and position in the freezer."),
    )
    comments = bounded_text(_("comments"), bounds.DESCRIPTION, blank=True)

    class Meta:
        verbose_name = _("PK/PD sample")
        verbose_name_plural = _("PK/PD samples")
        constraints = [
            *length_checks("pkpd", not_collected_reason=bounds.REASON,
                          comments=bounds.DESCRIPTION),
            one_per_visit("pkpd"),
            models.CheckConstraint(
                name="pkpd_processed_after_collection",
                condition=Q(collected_at__isnull=True) | Q(processed_at__isnull=True)
                | Q(processed_at__gte=F("collected_at")),
            ),
        ]

    def required_for_completion(self) -> tuple[str, ...]:
        """A sample not collected needs only the time point, that answer and its reason (a
        hard check)."""
        if self.collected is False:
            return ("timepoint", "collected")
        return self.required_items

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.collected is False and not self.not_collected_reason.strip():
            errors["not_collected_reason"] = [
                str(_("Give the reason the sample was not collected."))
            ]
        if self.collected_at and self.processed_at and self.processed_at < self.collected_at:
            errors["processed_at"] = [
                str(_("A sample cannot be processed before it was collected."))
            ]
        return errors
