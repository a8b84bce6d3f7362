"""What every case report form shares: its subject and visit, status, missing-data marks,
optimistic-locking version, source data verification and history.

A CRF row exists from its first save (status *in progress*); "not started" is the absence of a
row. Concrete CRFs declare their items as fields, their required items, their units and the
items derived from others; the service layer (``forms.entry.services``) does every write.
"""

import datetime as dt
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.sources import audited_history
from visits.models import Subject, Visit


class CRFStatus(models.TextChoices):
    NOT_STARTED = "not_started", _("Not started")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETE = "complete", _("Complete")


class SDVStatus(models.TextChoices):
    """Source data verification of the whole form (``forms.quality.sdv``)."""

    NOT_VERIFIED = "not_verified", _("Not verified")
    VERIFIED = "verified", _("Source data verified")
    CHANGED = "changed_since_verified", _("Changed since verified")


class Missing(models.TextChoices):
    """Why a form or an item has no value: distinct from a blank not yet entered."""

    NOT_DONE = "not_done", _("Not done")
    UNKNOWN = "unknown", _("Unknown")
    NOT_APPLICABLE = "not_applicable", _("Not applicable")


class CRF(models.Model):
    """Abstract base of every case report form."""

    # The protocol's CRF code (``edc.protocol.CRFS``).
    crf_code: ClassVar[str]
    # Items that must have a value (or a missing-data reason) before the form is complete.
    required_items: ClassVar[tuple[str, ...]] = ()
    # Items computed from others, never typed.
    derived_items: ClassVar[tuple[str, ...]] = ()
    # Dates that may lie in the future (a planned date); every other date may not.
    future_items: ClassVar[tuple[str, ...]] = ()
    # Dates that may lie before the trial began (a medication started years ago), back to
    # ``edc.bounds.EARLIEST_DATE``; every other date lies on or after ``edc.bounds.TRIAL_START``.
    historic_items: ClassVar[tuple[str, ...]] = ()
    # Units shown beside values, by item.
    units: ClassVar[dict[str, str]] = {}
    # The item that, with the visit, identifies a record of a form entered several times per
    # visit (PK/PD: the time point). Set from the page's address, never typed.
    slot_item: ClassVar[str | None] = None

    subject = models.ForeignKey(
        Subject, verbose_name=_("subject"), on_delete=models.PROTECT, related_name="+"
    )
    visit = models.ForeignKey(
        Visit, verbose_name=_("visit"), on_delete=models.PROTECT, related_name="+",
        null=True, blank=True,
    )
    status = models.CharField(
        _("status"), max_length=20, choices=CRFStatus.choices, default=CRFStatus.IN_PROGRESS
    )
    not_done_reason = models.CharField(
        _("form not done"), max_length=20, choices=Missing.choices, blank=True,
        help_text=_("Mark the whole form as not done, and why."),
    )
    missing_items = models.JSONField(
        _("items without a value"), default=dict, blank=True,
        help_text=_("Item name → reason it has no value."),
    )
    version = models.PositiveIntegerField(_("version"), default=0)
    ever_completed = models.BooleanField(_("ever marked complete"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last saved"), auto_now=True)
    sdv_status = models.CharField(
        _("source data verification"), max_length=24, choices=SDVStatus.choices,
        default=SDVStatus.NOT_VERIFIED,
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("verified by"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
    )
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    verified_fields = models.JSONField(
        _("items verified singly"), default=dict, blank=True,
        help_text=_('Item name → {"by": user id, "at": ISO time}, for critical items verified '
                    "one by one."),
    )

    history = audited_history(inherit=True)

    class Meta:
        abstract = True

    @classmethod
    def item_names(cls) -> list[str]:
        """The form's own items, in declaration order."""
        base = {f.name for f in CRF._meta.get_fields()} | {"id"}
        return [
            f.name for f in cls._meta.concrete_fields if f.name not in base
        ]

    @classmethod
    def entry_items(cls) -> list[str]:
        return [name for name in cls.item_names()
                if name not in cls.derived_items and name != cls.slot_item]

    @property
    def slot(self) -> str:
        """This record's slot at its visit ("" for a form entered once per visit)."""
        return getattr(self, self.slot_item) if self.slot_item else ""

    @classmethod
    def earliest_date(cls, name: str) -> dt.date:
        """The earliest plausible value of date item ``name``."""
        return bounds.EARLIEST_DATE if name in cls.historic_items else bounds.TRIAL_START

    def required_for_completion(self) -> tuple[str, ...]:
        """The required items for this form's answers (a form may need fewer, e.g. an
        infusion not given needs only the reason)."""
        return self.required_items

    def derive(self) -> None:
        """Compute the derived items from the entered ones (pure arithmetic)."""

    def hard_errors(self) -> dict[str, list[str]]:
        """Impossible values: the save is refused and every error shown at once."""
        return {}


def one_per_visit(name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(fields=["visit"], name=f"{name}_one_per_visit")


def one_per_subject(name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(fields=["subject"], name=f"{name}_one_per_subject")


class EditConflict(Exception):
    """Someone else saved the form after it was opened: the save is refused, nothing typed is
    lost (the view shows the input again with the other person's change)."""

    def __init__(self, current: CRF):
        super().__init__(
            gettext("This form was changed by someone else while you were editing it."))
        self.current = current
