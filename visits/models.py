"""Subjects and their visits. Written only through ``visits.services``."""

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from edc.models import Site
from edc.protocol import UNSCHEDULED_VISIT_CODE, UNSCHEDULED_VISIT_LABEL, VISITS
from edc.sources import audited_history
from visits import schedule


class SubjectStatus(models.TextChoices):
    SCREENING = "screening", _("Screening")
    SCREEN_FAILED = "screen_failed", _("Screen failed")
    RANDOMIZED = "randomized", _("Randomized")
    COMPLETED = "completed", _("Completed")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    DIED = "died", _("Died")


ON_STUDY_STATUSES = frozenset({SubjectStatus.SCREENING, SubjectStatus.RANDOMIZED})


class ConsentSigner(models.TextChoices):
    SUBJECT = "subject", _("The subject")
    GUARDIAN = "guardian", _("Legal guardian")


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
    screened_at = models.DateTimeField(_("screened"))
    consented_at = models.DateTimeField(_("informed consent signed"), null=True, blank=True)
    consent_signed_by = models.CharField(
        _("consent signed by"), max_length=10, choices=ConsentSigner.choices, blank=True
    )
    consent_form_version = models.CharField(_("consent form version"), max_length=30,
                                            blank=True)
    age_at_consent = models.PositiveSmallIntegerField(
        _("age at consent"), null=True, blank=True,
        help_text=_("Derived from the birth date, which is kept with the identifiers."),
    )
    screen_failure_criteria = models.JSONField(
        _("criteria not met at screening"), default=list, blank=True,
        help_text=_("Eligibility criterion codes, for the CONSORT flow."),
    )
    randomized_at = models.DateTimeField(_("randomized"), null=True, blank=True)
    randomization_number = models.CharField(
        _("randomization number"), max_length=20, unique=True, null=True, blank=True
    )
    emergency_unblinded = models.BooleanField(_("blind broken for this subject"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = audited_history()
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
            models.CheckConstraint(
                name="subject_consent_complete",
                condition=Q(consented_at__isnull=True)
                | (~Q(consent_signed_by="") & ~Q(consent_form_version="")),
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
    def has_consented(self) -> bool:
        return self.consented_at is not None

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


_VISIT_LABELS = dict(VISIT_CODE_CHOICES)


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
    missed_reason = bounded_text(_("reason the visit did not take place"), bounds.REASON,
                                 blank=True)

    history = audited_history()

    class Meta:
        ordering = ["subject", "planned_date", "sequence"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        constraints = [
            *length_checks("visit", missed_reason=bounds.REASON),
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
        # Not get_code_display(): Django hashes the whole (lazily translated) choice list on
        # every call, which made a digest of 10,000 visits take seconds.
        return str(_VISIT_LABELS.get(self.code, self.code))

    def status_on(self, today: dt.date) -> schedule.VisitStatus:
        return schedule.visit_status(
            window_start=self.window_start,
            window_end=self.window_end,
            actual_date=self.actual_date,
            is_missed=self.is_missed,
            today=today,
            on_study=self.subject.is_on_study,
        )


class SubjectIdentity(models.Model):
    """Direct identifiers, kept apart from clinical data: visible only to staff of the subject's
    site, never exported. Clinical data are keyed by screening number and subject ID."""

    subject = models.OneToOneField(Subject, on_delete=models.PROTECT, related_name="identity",
                                   verbose_name=_("subject"))
    full_name = models.CharField(_("full name"), max_length=200)
    hospital_record_number = models.CharField(_("hospital record number"), max_length=50,
                                              blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    birth_date = models.DateField(_("date of birth"))

    history = audited_history()

    class Meta:
        verbose_name = _("subject identity")
        verbose_name_plural = _("subject identities")

    def __str__(self) -> str:
        return f"identity of {self.subject}"


class RandomizationSlot(models.Model):
    """One row of the randomization list. The arm lives here and nowhere else: blinded pages,
    exports and e-mails never read this table."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+",
                             verbose_name=_("site"))
    stratum = models.CharField(_("NIHSS stratum"), max_length=10)
    sequence = models.PositiveIntegerField(_("sequence in stratum"))
    block_number = models.PositiveIntegerField(_("block"))
    block_size = models.PositiveSmallIntegerField(_("block size"))
    randomization_number = models.CharField(_("randomization number"), max_length=20,
                                            unique=True)
    arm = models.CharField(_("arm"), max_length=2)
    kit_1 = models.CharField(_("kit for infusion 1"), max_length=20, unique=True)
    kit_2 = models.CharField(_("kit for infusion 2"), max_length=20, unique=True)
    kit_3 = models.CharField(_("kit for infusion 3"), max_length=20, unique=True)
    list_name = models.CharField(_("list"), max_length=100)
    subject = models.OneToOneField(
        Subject, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("subject"),
    )
    allocated_at = models.DateTimeField(_("allocated"), null=True, blank=True)

    history = audited_history()

    class Meta:
        ordering = ["site", "stratum", "sequence"]
        verbose_name = _("randomization list row")
        verbose_name_plural = _("randomization list")
        constraints = [
            models.UniqueConstraint(fields=["site", "stratum", "sequence"],
                                    name="slot_unique_sequence"),
            models.CheckConstraint(
                name="slot_allocated_together",
                condition=(Q(subject__isnull=True) & Q(allocated_at__isnull=True))
                | (Q(subject__isnull=False) & Q(allocated_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return self.randomization_number

    @property
    def kits(self) -> tuple[str, str, str]:
        return (self.kit_1, self.kit_2, self.kit_3)


class KitAssignment(models.Model):
    """The kit to give at each infusion: what blinded site staff see (no arm)."""

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="kits",
                                verbose_name=_("subject"))
    infusion_number = models.PositiveSmallIntegerField(_("infusion"))
    kit_number = models.CharField(_("kit number"), max_length=20, unique=True)

    history = audited_history()

    class Meta:
        ordering = ["subject", "infusion_number"]
        constraints = [
            models.UniqueConstraint(fields=["subject", "infusion_number"],
                                    name="kit_one_per_infusion"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} infusion {self.infusion_number}: {self.kit_number}"


class Unblinding(models.Model):
    """An emergency unblinding of one subject by an investigator, with the reason."""

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="unblindings",
                                verbose_name=_("subject"))
    user = models.ForeignKey("edc.User", on_delete=models.PROTECT, related_name="+",
                             verbose_name=_("user"))
    reason = bounded_text(_("reason"), bounds.REASON)
    unblinded_at = models.DateTimeField(_("unblinded at"))

    history = audited_history()

    class Meta:
        ordering = ["-unblinded_at"]
        constraints = [*length_checks("unblinding", reason=bounds.REASON)]

    def __str__(self) -> str:
        return f"unblinding of {self.subject} by {self.user}"
