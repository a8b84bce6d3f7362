"""Protocol deviations log."""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from forms.models.base import CRF


class DeviationCategory(models.TextChoices):
    ELIGIBILITY = "eligibility", _("Eligibility")
    INFORMED_CONSENT = "informed_consent", _("Informed consent")
    VISIT_OUT_OF_WINDOW = "visit_out_of_window", _("Visit out of window")
    MISSED_ASSESSMENT = "missed_assessment", _("Missed assessment")
    INVESTIGATIONAL_PRODUCT = "investigational_product", _("Investigational product")
    PROHIBITED_MEDICATION = "prohibited_medication", _("Prohibited medication")
    OTHER = "other", _("Other")


class ProtocolDeviation(CRF):
    crf_code = "protocol_deviation"
    required_items = ("occurred_on", "category", "description", "is_major", "reported_on")

    occurred_on = models.DateField(_("date of the deviation"), null=True, blank=True)
    category = models.CharField(
        _("category"), max_length=25, blank=True, choices=DeviationCategory.choices
    )
    description = bounded_text(_("description"), bounds.DESCRIPTION, blank=True)
    is_major = models.BooleanField(
        _("major deviation"), null=True, blank=True,
        help_text=_("Major: may affect the subject's safety, rights or the reliability of "
                    "the trial's data."),
    )
    corrective_action = bounded_text(_("corrective and preventive action"), bounds.DESCRIPTION,
                                     blank=True)
    reported_on = models.DateField(_("date reported"), null=True, blank=True)

    class Meta:
        verbose_name = _("protocol deviation")
        verbose_name_plural = _("protocol deviations")
        ordering = ["occurred_on", "pk"]
        constraints = [
            *length_checks("deviation", description=bounds.DESCRIPTION,
                          corrective_action=bounds.DESCRIPTION),
            models.CheckConstraint(
                name="deviation_reported_after_it_occurred",
                condition=Q(occurred_on__isnull=True) | Q(reported_on__isnull=True)
                | Q(reported_on__gte=F("occurred_on")),
            ),
        ]

    def __str__(self) -> str:
        text = self.get_category_display() if self.category else str(_("Protocol deviation"))
        if self.occurred_on:
            text += " " + str(_("on %(date)s")) % {"date": self.occurred_on.isoformat()}
        return text

    def hard_errors(self) -> dict[str, list[str]]:
        if self.occurred_on and self.reported_on and self.reported_on < self.occurred_on:
            return {"reported_on": [str(_("A deviation cannot be reported before it occurred."))]}
        return {}
