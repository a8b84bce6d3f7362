"""NIH Stroke Scale (PROTOCOL.md, Scales). The total is computed, never typed; "UN"
(untestable) is stored as UN and counts 0."""

from django.db import models
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from forms import derivations
from forms.models.base import CRF, one_per_visit

UN = "UN"
UN_LABEL = _("UN — untestable (amputation, joint fusion, intubation)")

# Item code → (field name, item text, score meanings from 0 up).
NIHSS_ITEM_TEXT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "1a": ("loc", _("1a. Level of consciousness"), (
        _("Alert; keenly responsive"), _("Not alert; arousable by minor stimulation"),
        _("Not alert; requires repeated stimulation"), _("Unresponsive or reflex responses only"))),
    "1b": ("loc_questions", _("1b. LOC questions (month, age)"), (
        _("Answers both correctly"), _("Answers one correctly"), _("Answers neither correctly"))),
    "1c": ("loc_commands", _("1c. LOC commands (open/close eyes, grip)"), (
        _("Performs both correctly"), _("Performs one correctly"),
        _("Performs neither correctly"))),
    "2": ("best_gaze", _("2. Best gaze"), (
        _("Normal"), _("Partial gaze palsy"), _("Forced deviation"))),
    "3": ("visual", _("3. Visual fields"), (
        _("No visual loss"), _("Partial hemianopia"), _("Complete hemianopia"),
        _("Bilateral hemianopia"))),
    "4": ("facial_palsy", _("4. Facial palsy"), (
        _("Normal"), _("Minor paralysis"), _("Partial paralysis"), _("Complete paralysis"))),
    "5a": ("motor_arm_left", _("5a. Motor arm, left"), (
        _("No drift"), _("Drift"), _("Some effort against gravity"),
        _("No effort against gravity"), _("No movement"))),
    "5b": ("motor_arm_right", _("5b. Motor arm, right"), (
        _("No drift"), _("Drift"), _("Some effort against gravity"),
        _("No effort against gravity"), _("No movement"))),
    "6a": ("motor_leg_left", _("6a. Motor leg, left"), (
        _("No drift"), _("Drift"), _("Some effort against gravity"),
        _("No effort against gravity"), _("No movement"))),
    "6b": ("motor_leg_right", _("6b. Motor leg, right"), (
        _("No drift"), _("Drift"), _("Some effort against gravity"),
        _("No effort against gravity"), _("No movement"))),
    "7": ("limb_ataxia", _("7. Limb ataxia"), (
        _("Absent"), _("Present in one limb"), _("Present in two limbs"))),
    "8": ("sensory", _("8. Sensory"), (
        _("Normal"), _("Mild-to-moderate sensory loss"), _("Severe to total sensory loss"))),
    "9": ("best_language", _("9. Best language"), (
        _("No aphasia"), _("Mild-to-moderate aphasia"), _("Severe aphasia"),
        _("Mute, global aphasia"))),
    "10": ("dysarthria", _("10. Dysarthria"), (
        _("Normal"), _("Mild-to-moderate dysarthria"), _("Severe dysarthria"))),
    "11": ("extinction", _("11. Extinction and inattention"), (
        _("No abnormality"), _("Inattention in one modality"),
        _("Profound hemi-inattention or extinction in more than one modality"))),
}
FIELD_TO_ITEM = {field: code for code, (field, _text, _m) in NIHSS_ITEM_TEXT.items()}


def _item_field(code: str) -> models.CharField:
    _field, text, meanings = NIHSS_ITEM_TEXT[code]
    # format_lazy: the meaning is read in the reader's language, not once at import.
    choices = [(str(score), format_lazy("{} — {}", score, meaning))
               for score, meaning in enumerate(meanings)]
    if code in derivations.NIHSS_UN_ALLOWED:
        choices.append((UN, UN_LABEL))
    return models.CharField(text, max_length=2, choices=choices, blank=True)


class NIHSS(CRF):
    crf_code = "nihss"
    derived_items = ("total",)

    assessed_at = models.DateTimeField(_("date and time of assessment"), null=True, blank=True)
    loc = _item_field("1a")
    loc_questions = _item_field("1b")
    loc_commands = _item_field("1c")
    best_gaze = _item_field("2")
    visual = _item_field("3")
    facial_palsy = _item_field("4")
    motor_arm_left = _item_field("5a")
    motor_arm_right = _item_field("5b")
    motor_leg_left = _item_field("6a")
    motor_leg_right = _item_field("6b")
    limb_ataxia = _item_field("7")
    sensory = _item_field("8")
    best_language = _item_field("9")
    dysarthria = _item_field("10")
    extinction = _item_field("11")
    un_explanation = bounded_text(
        _("explanation for items scored UN"), bounds.REASON, blank=True,
        help_text=_("Required when any item is untestable."),
    )
    total = models.PositiveSmallIntegerField(_("NIHSS total (computed)"), null=True, blank=True)

    required_items = ("assessed_at", *FIELD_TO_ITEM)

    class Meta:
        verbose_name = _("NIHSS")
        verbose_name_plural = _("NIHSS")
        constraints = [
            *length_checks("nihss", un_explanation=bounds.REASON),
            one_per_visit("nihss"),
            models.CheckConstraint(
                name="nihss_total_range", condition=models.Q(total__isnull=True)
                | models.Q(total__lte=42)
            ),
        ]

    def items(self) -> dict[str, int | str | None]:
        """Scores by item code: an int, "UN", or None when not yet entered."""
        scores: dict[str, int | str | None] = {}
        for field, code in FIELD_TO_ITEM.items():
            value = getattr(self, field)
            if value in ("", None):
                scores[code] = None
            elif value == UN:
                scores[code] = UN
            else:
                scores[code] = int(value)
        return scores

    def derive(self) -> None:
        self.total = derivations.nihss_total(self.items())

    def hard_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        item_field = {code: field for field, code in FIELD_TO_ITEM.items()}
        for code, message in derivations.nihss_item_errors(self.items()).items():
            errors.setdefault(item_field[code], []).append(str(message))
        if UN in self.items().values() and not self.un_explanation.strip():
            errors.setdefault("un_explanation", []).append(
                str(_("Explain why an item is untestable."))
            )
        return errors
