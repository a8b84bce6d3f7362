"""Adverse events log (PROTOCOL.md "Adverse events (CDASH AE)"). A serious event must reach the
sponsor within 24 hours of the site becoming aware of it: the clock starts at ``site_aware_at``."""

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from forms.models.base import CRF


class Relationship(models.TextChoices):
    NOT_RELATED = "not_related", _("Not related")
    UNLIKELY = "unlikely", _("Unlikely")
    POSSIBLY = "possibly", _("Possibly")
    PROBABLY = "probably", _("Probably")
    DEFINITELY = "definitely", _("Definitely")


class ActionTaken(models.TextChoices):
    DOSE_NOT_CHANGED = "dose_not_changed", _("Dose not changed")
    DOSE_RATE_REDUCED = "dose_rate_reduced", _("Dose rate reduced")
    DRUG_INTERRUPTED = "drug_interrupted", _("Drug interrupted")
    DRUG_WITHDRAWN = "drug_withdrawn", _("Drug withdrawn")
    NOT_APPLICABLE = "not_applicable", _("Not applicable")
    UNKNOWN = "unknown", _("Unknown")


class Outcome(models.TextChoices):
    RECOVERED = "recovered", _("Recovered / resolved")
    RECOVERING = "recovering", _("Recovering / resolving")
    NOT_RECOVERED = "not_recovered", _("Not recovered / not resolved")
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae", _("Recovered with sequelae")
    FATAL = "fatal", _("Fatal")
    UNKNOWN = "unknown", _("Unknown")


class SpecialInterest(models.TextChoices):
    NONE = "none", _("None")
    FEVER = "fever", _("Fever (≥ 38.0 °C)")
    INFUSION_REACTION = "infusion_reaction", _("Infusion reaction")
    ALLERGIC_REACTION = "allergic_reaction", _("Allergic reaction")
    THROMBOEMBOLISM = "thromboembolism", _("Thromboembolism (PE, DVT)")
    NEUROLOGICAL_WORSENING = "neurological_worsening", _(
        "Neurological worsening (NIHSS up ≥ 4 from baseline)"
    )
    HEMORRHAGIC_TRANSFORMATION = "hemorrhagic_transformation", _("Hemorrhagic transformation")
    RECURRENT_STROKE = "recurrent_stroke", _("Recurrent stroke")


CTCAE_GRADE_CHOICES = [
    (1, _("1 — Mild")),
    (2, _("2 — Moderate")),
    (3, _("3 — Severe")),
    (4, _("4 — Life-threatening")),
    (5, _("5 — Death")),
]
FATAL_GRADE = 5
INFUSION_NUMBER_CHOICES = [(1, _("Infusion 1")), (2, _("Infusion 2")), (3, _("Infusion 3"))]


# MedDRA lowest level term and preferred term codes are 8 digits.
MEDDRA_CODE_PATTERN = r"^[0-9]{8}$"
MEDDRA_CODE = RegexValidator(
    MEDDRA_CODE_PATTERN,
    _("A MedDRA code is 8 digits (the LLT or PT code, e.g. 10019211); leave it blank if the "
      "event is not coded."),
    code="meddra_code",
)


def _criterion(label) -> models.BooleanField:
    return models.BooleanField(label, default=False)


class AdverseEvent(CRF):
    crf_code = "adverse_event"
    required_items = (
        "term", "start_date", "ctcae_grade", "is_serious", "site_aware_at",
        "relationship_to_product", "relationship_to_procedure", "action_taken", "outcome",
        "special_interest",
    )

    term = models.CharField(
        _("adverse event term"), max_length=200, blank=True,
        help_text=_("One diagnosis, or a sign or symptom when there is no diagnosis."),
    )
    meddra_code = models.CharField(
        _("MedDRA code"), max_length=20, blank=True, validators=[MEDDRA_CODE],
        help_text=_("Lowest level term (LLT) code, 8 digits, if coded."),
    )
    start_date = models.DateField(_("start date"), null=True, blank=True)
    end_date = models.DateField(_("end date"), null=True, blank=True)
    ongoing = models.BooleanField(_("ongoing"), default=False)
    site_aware_at = models.DateTimeField(
        _("date and time the site became aware"), null=True, blank=True,
        help_text=_("A serious event must reach the sponsor within 24 hours of this time."),
    )
    ctcae_grade = models.PositiveSmallIntegerField(
        _("CTCAE grade"), choices=CTCAE_GRADE_CHOICES, null=True, blank=True
    )
    is_serious = models.BooleanField(_("serious"), null=True, blank=True)
    serious_death = _criterion(_("results in death"))
    serious_life_threatening = _criterion(_("is life-threatening"))
    serious_hospitalization = _criterion(
        _("requires hospitalization or prolongation of hospitalization")
    )
    serious_disability = _criterion(_("results in persistent or significant disability"))
    serious_congenital_anomaly = _criterion(_("is a congenital anomaly or birth defect"))
    serious_important_medical_event = _criterion(_("is another important medical event"))
    relationship_to_product = models.CharField(
        _("relationship to the study product"), max_length=12, blank=True,
        choices=Relationship.choices,
    )
    relationship_to_procedure = models.CharField(
        _("relationship to the infusion procedure"), max_length=12, blank=True,
        choices=Relationship.choices,
    )
    action_taken = models.CharField(
        _("action taken with the study product"), max_length=20, blank=True,
        choices=ActionTaken.choices,
    )
    outcome = models.CharField(
        _("outcome"), max_length=25, blank=True, choices=Outcome.choices
    )
    infusion_number = models.PositiveSmallIntegerField(
        _("infusion"), choices=INFUSION_NUMBER_CHOICES, null=True, blank=True,
        help_text=_("The infusion during which, or within 24 hours of which, the event began."),
    )
    special_interest = models.CharField(
        _("adverse event of special interest"), max_length=30, blank=True,
        choices=SpecialInterest.choices,
    )

    class Meta:
        verbose_name = _("adverse event")
        verbose_name_plural = _("adverse events")
        ordering = ["start_date", "pk"]
        constraints = [
            models.CheckConstraint(
                name="adverse_event_ends_after_start",
                condition=Q(start_date__isnull=True) | Q(end_date__isnull=True)
                | Q(end_date__gte=F("start_date")),
            ),
            models.CheckConstraint(
                name="adverse_event_meddra_code_8_digits",
                condition=Q(meddra_code="") | Q(meddra_code__regex=MEDDRA_CODE_PATTERN),
            ),
            models.CheckConstraint(
                name="adverse_event_grade_range",
                condition=Q(ctcae_grade__isnull=True) | Q(ctcae_grade__range=(1, 5)),
            ),
            models.CheckConstraint(
                name="adverse_event_infusion_range",
                condition=Q(infusion_number__isnull=True) | Q(infusion_number__range=(1, 3)),
            ),
        ]

    def __str__(self) -> str:
        text = self.term or str(_("Adverse event"))
        if self.ctcae_grade is not None:
            text += " " + str(_("(grade %(grade)s)")) % {"grade": self.ctcae_grade}
        if self.start_date:
            text += " " + str(_("from %(date)s")) % {"date": self.start_date.isoformat()}
        return text

    def serious_criteria(self) -> list[str]:
        """Names of the seriousness criteria ticked."""
        return [name for name in self.item_names()
                if name.startswith("serious_") and getattr(self, name)]

    def required_for_completion(self) -> tuple[str, ...]:
        if self.is_serious:
            return self.required_items
        return tuple(name for name in self.required_items if name != "site_aware_at")

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}

        def add(field: str, message) -> None:
            errors.setdefault(field, []).append(str(message))

        if self.ongoing and self.end_date:
            add("ongoing", _("An ongoing event has no end date."))
        if self.ctcae_grade == FATAL_GRADE and self.outcome and self.outcome != Outcome.FATAL:
            add("outcome", _("A grade 5 event is fatal: the outcome must be fatal."))
        if self.outcome == Outcome.FATAL and self.ctcae_grade not in (None, FATAL_GRADE):
            add("ctcae_grade", _("A fatal outcome is CTCAE grade 5."))
        if self.is_serious is False and self.serious_criteria():
            add("is_serious", _("Seriousness criteria are ticked: the event is serious, or "
                                "untick the criteria."))
        return errors
