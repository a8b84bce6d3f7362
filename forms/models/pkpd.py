"""PK/PD sample collection (PROTOCOL.md: exploratory pharmacokinetics and pharmacodynamics),
one record per visit and time point; the time points of each visit are declared in
``edc.protocol`` (``VisitDef.pkpd_timepoints``)."""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from edc import bounds, protocol
from edc.bounds import bounded_text, length_checks
from forms.models.base import CRF

TIMEPOINT_CHOICES = [(t.code, t.label) for t in protocol.PKPD_TIMEPOINTS]


class TubeType(models.TextChoices):
    EDTA = "edta", _("EDTA (plasma)")
    SERUM = "serum", _("Serum")
    PAXGENE_RNA = "paxgene_rna", _("PAXgene RNA")
    OTHER = "other", _("Other")


class PKPDSample(CRF):
    crf_code = protocol.PKPD_CRF
    # One record per visit and time point: the time point comes from the casebook's link.
    slot_item = "timepoint"
    required_items = ("collected", "collected_at", "tube_type", "processed_at", "freezer_id")

    timepoint = models.CharField(
        _("time point"), max_length=15, choices=TIMEPOINT_CHOICES,
        help_text=_("One sample per visit and time point (edc/protocol.py)."),
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
            models.UniqueConstraint(fields=["visit", "timepoint"],
                                    name="pkpd_one_per_visit_and_timepoint"),
            models.CheckConstraint(
                name="pkpd_processed_after_collection",
                condition=Q(collected_at__isnull=True) | Q(processed_at__isnull=True)
                | Q(processed_at__gte=F("collected_at")),
            ),
        ]

    def required_for_completion(self) -> tuple[str, ...]:
        """A sample not collected needs only that answer and its reason (a hard check)."""
        if self.collected is False:
            return ("collected",)
        return self.required_items

    def expected_timepoints(self) -> tuple[str, ...]:
        try:
            return protocol.visit_def(self.visit.code).pkpd_timepoints
        except (KeyError, AttributeError):
            return ()

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.visit is not None and self.timepoint not in self.expected_timepoints():
            errors["timepoint"] = [str(_(
                "No PK/PD sample is planned at this time point of this visit."))]
        if self.collected is False and not self.not_collected_reason.strip():
            errors["not_collected_reason"] = [
                str(_("Give the reason the sample was not collected."))
            ]
        if self.collected_at and self.processed_at and self.processed_at < self.collected_at:
            errors["processed_at"] = [
                str(_("A sample cannot be processed before it was collected."))
            ]
        return errors
