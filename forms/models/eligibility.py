"""The eligibility checklist: derived values shown beside the investigator's confirmation of
every criterion (PROTOCOL.md, Eligibility). Randomization needs ``eligible``."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from forms.models.base import CRF, one_per_subject


class EligibilityChecklist(CRF):
    crf_code = "eligibility"
    derived_items = ("derived", "eligible", "contradictions")
    required_items = ("planned_first_infusion_at",)
    future_items = ("planned_first_infusion_at",)

    planned_first_infusion_at = models.DateTimeField(
        _("planned first infusion"), null=True, blank=True,
        help_text=_("Onset to first infusion must not exceed 72 hours."),
    )
    confirmations = models.JSONField(
        _("investigator's confirmations"), default=dict, blank=True,
        help_text=_("Criterion code → true when satisfied (inclusion) or absent (exclusion)."),
    )
    derived = models.JSONField(
        _("derived values"), default=dict, blank=True,
        help_text=_("Criterion code → value used and whether it is met, at the last save."),
    )
    contradictions = models.JSONField(_("contradictions"), default=list, blank=True)
    eligible = models.BooleanField(_("eligible"), default=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("confirmed by"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
    )
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("eligibility checklist")
        verbose_name_plural = _("eligibility checklists")
        constraints = [one_per_subject("eligibility")]
