"""Sign-off records: electronic signatures and data locks. Their rules live in
``forms.review.signatures`` and ``forms.review.locks``."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edc import bounds
from edc.bounds import bounded_text, length_checks
from edc.models import Site
from edc.sources import audited_history
from visits.models import Subject, Visit


class Signature(models.Model):
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="signatures",
                                verbose_name=gettext_lazy("subject"))
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=gettext_lazy("visit"), help_text=gettext_lazy("Empty: the whole casebook."),
    )
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="+", verbose_name=gettext_lazy("signer"))
    printed_name = models.CharField(gettext_lazy("printed name"), max_length=200)
    meaning = bounded_text(gettext_lazy("meaning of the signature"), bounds.DESCRIPTION)
    signed_at = models.DateTimeField(gettext_lazy("signed at"))
    fingerprint = models.CharField(gettext_lazy("fingerprint of the signed data"), max_length=64)
    is_broken = models.BooleanField(gettext_lazy("broken by a later change"), default=False)
    broken_at = models.DateTimeField(gettext_lazy("broken at"), null=True, blank=True)
    broken_reason = bounded_text(gettext_lazy("why the signature was broken"), bounds.REASON,
                                 blank=True)

    history = audited_history()

    class Meta:
        ordering = ["-signed_at"]
        constraints = [
            *length_checks("signature", meaning=bounds.DESCRIPTION, broken_reason=bounds.REASON),
            models.CheckConstraint(
                name="signature_broken_has_time",
                condition=models.Q(is_broken=False) | models.Q(broken_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        scope = self.visit.label if self.visit_id else _("casebook")
        return f"{self.subject} {scope} signed by {self.printed_name}"


class LockScope(models.TextChoices):
    FORM = "form", gettext_lazy("Form")
    VISIT = "visit", gettext_lazy("Visit")
    SUBJECT = "subject", gettext_lazy("Subject")
    SITE = "site", gettext_lazy("Site")
    TRIAL = "trial", gettext_lazy("Whole trial (database lock)")


class Lock(models.Model):
    scope = models.CharField(gettext_lazy("scope"), max_length=10, choices=LockScope.choices)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="+", verbose_name=gettext_lazy("site"))
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+", verbose_name=gettext_lazy("subject"))
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", verbose_name=gettext_lazy("visit"))
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True,
                                     blank=True, verbose_name=gettext_lazy("form type"))
    object_id = models.PositiveBigIntegerField(gettext_lazy("form record id"), null=True,
                                               blank=True)
    form = GenericForeignKey("content_type", "object_id")
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+", verbose_name=gettext_lazy("locked by"))
    locked_at = models.DateTimeField(gettext_lazy("locked at"))
    reason = bounded_text(gettext_lazy("reason"), bounds.REASON, blank=True)
    unlocked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    null=True, blank=True, related_name="+",
                                    verbose_name=gettext_lazy("unlocked by"))
    unlocked_at = models.DateTimeField(gettext_lazy("unlocked at"), null=True, blank=True)
    unlock_reason = bounded_text(gettext_lazy("reason for unlocking"), bounds.REASON,
                                 blank=True)

    history = audited_history()

    class Meta:
        ordering = ["-locked_at"]
        constraints = [
            *length_checks("lock", reason=bounds.REASON, unlock_reason=bounds.REASON),
            models.CheckConstraint(
                name="lock_unlock_has_reason",
                condition=Q(unlocked_at__isnull=True) | ~Q(unlock_reason=""),
            ),
        ]

    def __str__(self) -> str:
        target = {
            LockScope.TRIAL: _("whole trial"), LockScope.SITE: str(self.site),
            LockScope.SUBJECT: str(self.subject), LockScope.VISIT: str(self.visit),
            LockScope.FORM: str(self.form),
        }[self.scope]
        return f"{self.get_scope_display()}: {target}"

    @property
    def is_active(self) -> bool:
        return self.unlocked_at is None
