"""Study-wide core: sites, users with their role and sites, and the background-job log."""

import zoneinfo
from functools import cached_property

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from edc.roles import Role


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(value)s is not a known IANA time zone."), params={"value": value}
        )


class Site(models.Model):
    """A hospital that screens and enrols subjects. Times are shown in its time zone."""

    code = models.CharField(
        _("site code"),
        max_length=8,
        unique=True,
        help_text=_("Short code used in screening numbers, e.g. SZ01."),
    )
    name = models.CharField(_("name"), max_length=200)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_time_zone]
    )
    is_active = models.BooleanField(_("active"), default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class User(AbstractUser):
    """A person using the EDC. Deactivated, never deleted, so every record keeps its author."""

    role = models.CharField(_("role"), max_length=32, choices=Role.choices, blank=True)
    sites = models.ManyToManyField(
        Site,
        verbose_name=_("sites"),
        related_name="members",
        blank=True,
        help_text=_("The sites this person works at. Data managers, statisticians and "
                    "administrators work across all sites."),
    )

    history = HistoricalRecords(
        excluded_fields=["password", "last_login"], m2m_fields=[sites]
    )

    class Meta:
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    @property
    def printed_name(self) -> str:
        return self.get_full_name() or self.username

    @cached_property
    def site_pks(self) -> frozenset[int]:
        return frozenset(self.sites.values_list("pk", flat=True))


class JobRun(models.Model):
    """One run of a background job: shows data managers that reminders really run."""

    name = models.CharField(_("job"), max_length=100, db_index=True)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    succeeded = models.BooleanField(_("succeeded"), default=False)
    detail = models.TextField(_("detail"), blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("background job run")
        verbose_name_plural = _("background job runs")
        indexes = [models.Index(fields=["name", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.name} @ {self.started_at:%Y-%m-%d %H:%M:%S}"
