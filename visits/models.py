"""Subjects and their visits. Written only through ``visits.services``."""

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from edc.models import Site
from edc.protocol import UNSCHEDULED_VISIT_CODE, UNSCHEDULED_VISIT_LABEL, VISITS
from visits import schedule


class SubjectStatus(models.TextChoices):
    SCREENING = "screening", _("Screening")
    SCREEN_FAILED = "screen_failed", _("Screen failed")
    RANDOMIZED = "randomized", _("Randomized")
    COMPLETED = "completed", _("Completed")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    DIED = "died", _("Died")


ON_STUDY_STATUSES = frozenset({SubjectStatus.SCREENING, SubjectStatus.RANDOMIZED})


class SubjectQuerySet(models.QuerySet):
    def with_site_and_visits(self) -> "SubjectQuerySet":
        return self.select_related("site").prefetch_related("visits")


class Subject(models.Model):
    """A screened patient, keyed by screening number and, once randomized, subject ID.

    Direct identifiers (name, hospital record number, birth date) never live here.
    """

    screening_number = models.CharField(_("screening number"), max_length=20, unique=True)
    subject_id = models.CharField(
        _("subject ID"), max_length=20, unique=True, null=True, blank=True,
        help_text=_("Assigned at randomization."),
    )
    site = models.ForeignKey(
        Site, verbose_name=_("site"), on_delete=models.PROTECT, related_name="subjects"
    )
    status = models.CharField(
        _("status"), max_length=20, choices=SubjectStatus.choices,
        default=SubjectStatus.SCREENING, db_index=True,
    )
    consented_at = models.DateTimeField(_("informed consent signed"))
    randomized_at = models.DateTimeField(_("randomized"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()
    objects = SubjectQuerySet.as_manager()

    class Meta:
        ordering = ["site__code", "screening_number"]
        verbose_name = _("subject")
        verbose_name_plural = _("subjects")
        constraints = [
            models.CheckConstraint(
                name="subject_randomized_has_id_and_date",
                condition=~Q(status__in=["randomized", "completed"])
                | (Q(subject_id__isnull=False) & Q(randomized_at__isnull=False)),
            ),
            models.CheckConstraint(
                name="subject_not_randomized_has_no_id",
                condition=~Q(status__in=["screening", "screen_failed"])
                | (Q(subject_id__isnull=True) & Q(randomized_at__isnull=True)),
            ),
            models.CheckConstraint(
                name="subject_randomized_after_consent",
                condition=Q(randomized_at__isnull=True)
                | Q(randomized_at__gte=models.F("consented_at")),
            ),
        ]

    def __str__(self) -> str:
        return self.subject_id or self.screening_number

    @property
    def label(self) -> str:
        if self.subject_id:
            return f"{self.subject_id} ({self.screening_number})"
        return self.screening_number

    @property
    def is_on_study(self) -> bool:
        return self.status in ON_STUDY_STATUSES

    @property
    def day1(self) -> dt.date | None:
        """The randomization date in the site's time zone: study Day 1."""
        if self.randomized_at is None:
            return None
        return schedule.local_date(self.randomized_at, self.site.zone)


VISIT_CODE_CHOICES = [(v.code, v.label) for v in VISITS] + [
    (UNSCHEDULED_VISIT_CODE, UNSCHEDULED_VISIT_LABEL)
]


class Visit(models.Model):
    """One visit of a subject: scheduled from ``edc.protocol`` or unscheduled."""

    subject = models.ForeignKey(
        Subject, verbose_name=_("subject"), on_delete=models.PROTECT, related_name="visits"
    )
    code = models.CharField(_("visit"), max_length=8, choices=VISIT_CODE_CHOICES)
    sequence = models.PositiveSmallIntegerField(
        _("sequence"), default=0, help_text=_("Numbers unscheduled visits 1, 2, …")
    )
    planned_date = models.DateField(_("planned date"), null=True, blank=True)
    window_start = models.DateField(_("window start"), null=True, blank=True)
    window_end = models.DateField(_("window end"), null=True, blank=True)
    actual_date = models.DateField(_("visit date"), null=True, blank=True)
    is_missed = models.BooleanField(_("missed"), default=False)
    missed_reason = models.TextField(_("reason the visit did not take place"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["subject", "planned_date", "sequence"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "code", "sequence"], name="visit_unique_per_subject"
            ),
            models.CheckConstraint(
                name="visit_window_contains_planned_date",
                condition=Q(planned_date__isnull=True)
                | (
                    Q(window_start__lte=models.F("planned_date"))
                    & Q(window_end__gte=models.F("planned_date"))
                ),
            ),
            models.CheckConstraint(
                name="visit_scheduled_has_window",
                condition=Q(code=UNSCHEDULED_VISIT_CODE)
                | (
                    Q(planned_date__isnull=False)
                    & Q(window_start__isnull=False)
                    & Q(window_end__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="visit_missed_has_reason_and_no_date",
                condition=Q(is_missed=False)
                | (Q(actual_date__isnull=True) & ~Q(missed_reason="")),
            ),
        ]

    def __str__(self) -> str:
        if self.code == UNSCHEDULED_VISIT_CODE:
            return f"{self.subject} {self.code}{self.sequence}"
        return f"{self.subject} {self.code}"

    @property
    def label(self) -> str:
        if self.code == UNSCHEDULED_VISIT_CODE:
            return f"{UNSCHEDULED_VISIT_LABEL} {self.sequence}"
        return self.get_code_display()

    def status_on(self, today: dt.date) -> schedule.VisitStatus:
        return schedule.visit_status(
            window_start=self.window_start,
            window_end=self.window_end,
            actual_date=self.actual_date,
            is_missed=self.is_missed,
            today=today,
            on_study=self.subject.is_on_study,
        )
