"""Data queries, the records: a question about one item of one record (a CRF or a visit), its
status and its thread of messages. The workflow that writes them is ``forms.quality.queries``."""


from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from edc.i18n import shown, shown_for
from edc.sources import audited_history
from visits.models import Subject, Visit

# The one item of a visit record a manual query may concern.
VISIT_QUERY_ITEMS = ("actual_date",)


class QueryStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ANSWERED = "answered", _("Answered")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_STATUSES = (QueryStatus.OPEN, QueryStatus.ANSWERED)


class Resolution(models.TextChoices):
    NONE = "", _("Not resolved")
    CLOSED_BY_RAISER = "closed by raiser", _("Closed by the monitor or data manager")
    RESOLVED_BY_DATA_CHANGE = "resolved by data change", _("Resolved by data change")
    CANCELLED = "cancelled", _("Cancelled")


class MessageKind(models.TextChoices):
    RAISED = "raised", _("Raised")
    ANSWERED = "answered", _("Answered")
    REQUERIED = "requeried", _("Re-queried")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")
    AUTO_CLOSED = "auto_closed", _("Closed: resolved by data change")
    REOPENED_BY_CHECK = "reopened_by_check", _("Re-opened by the edit check")


class Query(models.Model):
    """A question on one item of one record. ``raised_by`` is empty for system queries."""

    subject = models.ForeignKey(
        Subject, verbose_name=_("subject"), on_delete=models.PROTECT, related_name="queries"
    )
    content_type = models.ForeignKey(
        ContentType, verbose_name=_("record type"), on_delete=models.PROTECT, related_name="+"
    )
    object_id = models.PositiveBigIntegerField(_("record id"))
    target = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(_("item"), max_length=64)
    crf_code = models.CharField(
        _("form"), max_length=40, blank=True, help_text=_("Blank for a query on the visit.")
    )
    visit = models.ForeignKey(
        Visit, verbose_name=_("visit"), on_delete=models.PROTECT, related_name="+",
        null=True, blank=True,
    )
    check_code = models.CharField(
        _("edit check"), max_length=20, blank=True,
        help_text=_("The soft check that raised it; blank for a manual query."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=QueryStatus.choices, default=QueryStatus.OPEN
    )
    text = bounded_text(_("question"), bounds.DESCRIPTION)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("raised by"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+", help_text=_("Empty: raised by an edit check."),
    )
    raised_at = models.DateTimeField(_("raised at"), default=timezone.now)
    answered_at = models.DateTimeField(_("last answered at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("closed by"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
    )
    resolution = models.CharField(
        _("resolution"), max_length=30, choices=Resolution.choices, blank=True
    )

    history = audited_history()

    class Meta:
        ordering = ["-raised_at", "-pk"]
        verbose_name = _("query")
        verbose_name_plural = _("queries")
        indexes = [
            models.Index(fields=["status", "raised_at"], name="query_status_raised"),
            models.Index(fields=["subject", "status"], name="query_subject_status"),
            models.Index(fields=["check_code", "status"], name="query_check_status"),
            models.Index(fields=["content_type", "object_id", "field_name"],
                         name="query_target"),
        ]
        constraints = [
            *length_checks("query", text=bounds.DESCRIPTION),
            # No second query for a check failure that already has one in progress.
            models.UniqueConstraint(
                fields=["content_type", "object_id", "field_name", "check_code"],
                condition=Q(status__in=ACTIVE_STATUSES) & ~Q(check_code=""),
                name="query_one_active_per_check_failure",
            ),
            models.CheckConstraint(
                name="query_ended_has_time_and_resolution",
                condition=(Q(status__in=ACTIVE_STATUSES) & Q(closed_at__isnull=True)
                           & Q(resolution=""))
                | (Q(status__in=[QueryStatus.CLOSED, QueryStatus.CANCELLED])
                   & Q(closed_at__isnull=False) & ~Q(resolution="")),
            ),
            models.CheckConstraint(
                name="query_answered_has_time",
                condition=~Q(status=QueryStatus.ANSWERED) | Q(answered_at__isnull=False),
            ),
            models.CheckConstraint(
                name="query_manual_has_raiser",
                condition=~Q(check_code="") | Q(raised_by__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.crf_code or 'visit'}.{self.field_name} ({self.status})"

    @property
    def is_system(self) -> bool:
        return bool(self.check_code)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def shown_text(self) -> str:
        """The question in the reader's language when an edit check wrote it (stored
        language-neutral, ``edc.i18n``): the check's message rendered for the reader while
        the stored text is still that message; a person's question as they typed it."""
        return shown_for(self.check_code, self.text) if self.is_system else self.text


class QueryMessage(models.Model):
    """One step of a query's conversation. Only ever added, never edited."""

    query = models.ForeignKey(
        Query, verbose_name=_("query"), on_delete=models.PROTECT, related_name="messages"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+", help_text=_("Empty: the edit-check system."),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    kind = models.CharField(_("kind"), max_length=20, choices=MessageKind.choices)
    text = bounded_text(_("text"), bounds.DESCRIPTION, blank=True)

    history = audited_history()

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("query message")
        verbose_name_plural = _("query messages")
        constraints = [*length_checks("query_message", text=bounds.DESCRIPTION)]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"

    @property
    def shown_text(self) -> str:
        """The text in the reader's language when the system wrote it (no author): the
        question an edit check raised reads as its query's (``Query.shown_text``)."""
        if self.author_id is not None:
            return self.text
        if self.kind == MessageKind.RAISED and self.text == self.query.text:
            return self.query.shown_text
        return shown(self.text)
