"""How a subject's participation ends: end of study at D180, early termination, death."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from edc.protocol import INFUSIONS_PER_SUBJECT
from forms.models.adverse_events import INFUSION_NUMBER_CHOICES, AdverseEvent, Relationship
from forms.models.base import CRF, one_per_subject, one_per_visit


class EndReason(models.TextChoices):
    WITHDREW_CONSENT = "withdrew_consent", _("Withdrew consent")
    LOST_TO_FOLLOW_UP = "lost_to_follow_up", _("Lost to follow-up")
    ADVERSE_EVENT = "adverse_event", _("Adverse event")
    DEATH = "death", _("Death")
    INVESTIGATOR_DECISION = "investigator_decision", _("Investigator decision")
    OTHER = "other", _("Other")


LAST_DOSE_CHOICES = [(0, _("None given")), *INFUSION_NUMBER_CHOICES]


class EndOfStudy(CRF):
    crf_code = "end_of_study"
    required_items = ("completed", "last_contact_date")

    completed = models.BooleanField(_("completed the study"), null=True, blank=True)
    last_contact_date = models.DateField(_("date of last contact"), null=True, blank=True)
    reason_not_completed = models.CharField(
        _("main reason the study was not completed"), max_length=25, blank=True,
        choices=EndReason.choices,
        help_text=_("Required when the subject did not complete the study."),
    )
    comments = bounded_text(_("comments"), bounds.DESCRIPTION, blank=True)

    class Meta:
        verbose_name = _("end of study")
        verbose_name_plural = _("end of study")
        constraints = [one_per_visit("end_of_study"),
                       *length_checks("end_of_study", comments=bounds.DESCRIPTION)]

    def hard_errors(self) -> dict[str, list[str]]:
        if self.completed is False and not self.reason_not_completed:
            return {"reason_not_completed": [
                str(_("Give the reason the subject did not complete the study."))
            ]}
        return {}


class EarlyTermination(CRF):
    crf_code = "early_termination"
    required_items = ("terminated_on", "reason", "last_dose_infusion_number")

    terminated_on = models.DateField(_("date of termination"), null=True, blank=True)
    reason = models.CharField(
        _("main reason for termination"), max_length=25, blank=True, choices=EndReason.choices
    )
    last_dose_infusion_number = models.PositiveSmallIntegerField(
        _("last infusion received"), choices=LAST_DOSE_CHOICES, null=True, blank=True
    )
    comments = bounded_text(_("comments"), bounds.DESCRIPTION, blank=True)

    class Meta:
        verbose_name = _("early termination")
        verbose_name_plural = _("early terminations")
        constraints = [
            *length_checks("early_termination", comments=bounds.DESCRIPTION),
            one_per_subject("early_termination"),
            models.CheckConstraint(
                name="early_termination_last_dose_range",
                condition=Q(last_dose_infusion_number__isnull=True)
                | Q(last_dose_infusion_number__lte=INFUSIONS_PER_SUBJECT),
            ),
        ]

    def __str__(self) -> str:
        text = str(_("Early termination"))
        if self.terminated_on:
            text += " " + str(_("on %(date)s")) % {"date": self.terminated_on.isoformat()}
        if self.reason:
            text += f": {self.get_reason_display()}"
        return text


class Death(CRF):
    crf_code = "death"
    required_items = ("died_on", "primary_cause", "relationship_to_product")

    died_on = models.DateField(_("date of death"), null=True, blank=True)
    primary_cause = bounded_text(_("primary cause of death"), bounds.NOTE, blank=True)
    related_adverse_event = models.ForeignKey(
        AdverseEvent, verbose_name=_("fatal adverse event"), on_delete=models.PROTECT,
        related_name="+", null=True, blank=True,
        help_text=_("The adverse event that led to death, if any (record it first)."),
    )
    autopsy = models.BooleanField(_("autopsy performed"), null=True, blank=True)
    relationship_to_product = models.CharField(
        _("relationship of the death to the study product"), max_length=12, blank=True,
        choices=Relationship.choices,
    )

    class Meta:
        verbose_name = _("death report")
        verbose_name_plural = _("death reports")
        constraints = [one_per_subject("death"), *length_checks("death", primary_cause=bounds.NOTE)]

    def __str__(self) -> str:
        text = str(_("Death"))
        if self.died_on:
            text += " " + str(_("on %(date)s")) % {"date": self.died_on.isoformat()}
        if self.primary_cause:
            text += f": {self.primary_cause}"
        return text

    def hard_errors(self) -> dict[str, list[str]]:
        event = self.related_adverse_event
        if event is not None and event.subject_id != self.subject_id:
            return {"related_adverse_event": [
                str(_("The adverse event must be one of this subject's."))
            ]}
        return {}
