"""Study-wide core: sites, users with their role and sites, the background-job log and the
audit trail of workflow and account events."""

import datetime as dt
import zoneinfo
from functools import cached_property

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from edc import bounds
from edc.bounds import bounded_text, length_checks
from edc.roles import UNBLINDED_ROLES, Role
from edc.sources import SOURCE_LENGTH, Source, audited_history


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

    history = audited_history()

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


_UNBLINDED_ROLE_VALUES = sorted(role.value for role in UNBLINDED_ROLES)


class AccountManager(UserManager):
    """Finds an account by its username whatever the letter case typed ("Nurse" is "nurse"),
    folded by the database exactly as the unique index on ``Lower(username)`` folds it."""

    def by_username(self, username: str):
        return self.alias(username_folded=Lower("username")).filter(
            username_folded=Lower(Value(username)))

    def get_by_natural_key(self, username):
        return self.by_username(username).get()


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
    # False while the password is one an administrator set (a new account, a reset): an
    # unblinded role is approved only once the holder has chosen their own (edc.services).
    password_chosen_by_holder = models.BooleanField(
        _("password chosen by the account holder"), default=False, editable=False)
    # Empty: the browser's language (Accept-Language) until the person chooses one.
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, blank=True,
        help_text=_("The language of the pages, e-mails and notifications this person reads. "
                    "Empty: the browser's language."),
    )

    history = audited_history(excluded_fields=["password", "last_login"], m2m_fields=[sites])

    objects = AccountManager()

    def check_password(self, raw_password) -> bool:
        """Django's check, whose hash upgrade at sign-in (an older hasher) is saved with the
        holder as the author of its history row: they are the one signing in."""

        def upgrade(raw_password) -> None:
            self.set_password(raw_password)
            self._password = None
            self._history_user = self
            self.save(update_fields=["password"])

        return check_password(raw_password, self.password, upgrade)

    class Meta:
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            # A username names one person whatever its letter case (21 CFR 11.100(a), 11.300(a):
            # "Zhang.Wei" and "zhang.wei" are never two accounts).
            models.UniqueConstraint(
                Lower("username"), name="user_username_unique_ignoring_case",
                violation_error_message=_("A user with that username already exists "
                                          "(usernames ignore letter case)."),
            ),
            # Separation of duties: whoever can change accounts never sees the allocation.
            models.CheckConstraint(
                condition=~Q(role__in=_UNBLINDED_ROLE_VALUES)
                | Q(is_staff=False, is_superuser=False),
                name="user_administrator_never_unblinded",
                violation_error_message=_("An administrator account (staff or superuser) "
                                          "never holds an unblinded role."),
            ),
        ]

    def clean(self) -> None:
        super().clean()
        if self.role in UNBLINDED_ROLES and (self.is_staff or self.is_superuser):
            raise ValidationError(_("An administrator account (staff or superuser) never "
                                    "holds an unblinded role."))

    @property
    def printed_name(self) -> str:
        return self.get_full_name() or self.username

    @cached_property
    def site_pks(self) -> frozenset[int]:
        return frozenset(self.sites.values_list("pk", flat=True))


class RoleGrantStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a second administrator")
    APPROVED = "approved", _("Approved")
    REFUSED = "refused", _("Refused")


class RoleGrantRequest(models.Model):
    """A request to give someone an unblinded role. The role is theirs only once a second
    administrator approves (DESIGN.md, "Separation of duties"); ``edc.services``
    ``role_grant_request`` and ``role_grant_decide`` write it, each act an audit event."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"),
                             on_delete=models.PROTECT, related_name="role_grant_requests")
    role = models.CharField(_("role"), max_length=32,
                            choices=[(r.value, r.label) for r in Role if r in UNBLINDED_ROLES])
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("requested by"),
                                     on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(_("requested"), default=timezone.now)
    status = models.CharField(_("status"), max_length=10, choices=RoleGrantStatus.choices,
                              default=RoleGrantStatus.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("decided by"),
                                   on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = _("unblinded role request")
        verbose_name_plural = _("unblinded role requests")
        constraints = [
            models.CheckConstraint(condition=Q(role__in=_UNBLINDED_ROLE_VALUES),
                                   name="rolegrant_unblinded_role_only"),
            models.CheckConstraint(condition=~Q(requested_by=F("user")),
                                   name="rolegrant_not_for_oneself"),
            models.CheckConstraint(condition=~Q(decided_by=F("requested_by")),
                                   name="rolegrant_second_administrator_decides"),
            models.CheckConstraint(condition=~Q(decided_by=F("user")),
                                   name="rolegrant_not_decided_by_grantee"),
            models.CheckConstraint(
                condition=Q(status=RoleGrantStatus.PENDING, decided_by__isnull=True,
                            decided_at__isnull=True)
                | (~Q(status=RoleGrantStatus.PENDING) & Q(decided_by__isnull=False,
                                                          decided_at__isnull=False)),
                name="rolegrant_decision_has_author_and_time",
            ),
            models.UniqueConstraint(fields=["user"], condition=Q(status=RoleGrantStatus.PENDING),
                                    name="rolegrant_one_pending_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} → {self.user} ({self.get_status_display()})"


class JobRun(models.Model):
    """One run of a background job: shows data managers that reminders really run."""

    name = models.CharField(_("job"), max_length=100, db_index=True)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    succeeded = models.BooleanField(_("succeeded"), default=False)
    detail = bounded_text(_("detail"), bounds.SYSTEM_TEXT, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("background job run")
        verbose_name_plural = _("background job runs")
        indexes = [models.Index(fields=["name", "-started_at"])]
        constraints = [*length_checks("job_run", detail=bounds.SYSTEM_TEXT)]

    def __str__(self) -> str:
        return f"{self.name} @ {self.started_at:%Y-%m-%d %H:%M:%S}"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ExportRunQuerySet(models.QuerySet):
    def readable(self) -> "ExportRunQuerySet":
        """Runs whose "as of" time is read only if it lies in the trial's span: a row stored
        before that was checked (year 1, which PostgreSQL keeps but Python cannot hold) is
        shown as out of range instead of failing the page (``as_of_shown``, ``as_of_odd``)."""
        start = dt.datetime.combine(bounds.TRIAL_START, dt.time.min, tzinfo=dt.UTC)
        odd = models.Q(as_of__lt=start) | models.Q(as_of__gt=timezone.now())
        return self.defer("as_of").annotate(
            as_of_odd=models.Case(models.When(odd, then=models.Value(True)),
                                  default=models.Value(False)),
            as_of_shown=models.Case(models.When(odd, then=models.Value(None)),
                                    default=models.F("as_of"),
                                    output_field=models.DateTimeField()),
        )


class ExportRun(models.Model):
    """One dataset export: what was asked, its progress, and the zip it produced
    (``exports.package``). The export itself is recorded in the audit trail."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), on_delete=models.PROTECT,
        related_name="+",
    )
    requested_at = models.DateTimeField(_("requested"), default=timezone.now)
    formats = models.JSONField(_("formats"), default=list)
    profile = models.CharField(_("profile"), max_length=20)
    as_of = models.DateTimeField(_("data as of"), null=True, blank=True)
    # The language of the labels, value labels and codebook (CDISC and statisticians expect
    # English; SAS XPORT and ODM stay English whatever is asked).
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES,
                                default="en")
    status = models.CharField(_("status"), max_length=10, choices=ExportStatus.choices,
                              default=ExportStatus.QUEUED)
    step = models.PositiveIntegerField(_("steps done"), default=0)
    steps = models.PositiveIntegerField(_("steps"), default=0)
    step_label = models.CharField(_("working on"), max_length=200, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    data_cut = models.DateTimeField(_("data cut"), null=True, blank=True)
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    size = models.PositiveBigIntegerField(_("size in bytes"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    error = bounded_text(_("error"), bounds.SYSTEM_TEXT, blank=True)

    objects = ExportRunQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        constraints = [*length_checks("export_run", error=bounds.SYSTEM_TEXT)]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.profile}, {self.status})"

    @property
    def percent(self) -> int:
        return round(100 * self.step / self.steps) if self.steps else 0

    @property
    def is_active(self) -> bool:
        return self.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)


class NotificationLog(models.Model):
    """One reminder delivered to one recipient. The unique constraint is what makes every job
    exactly-once: a job claims (kind, key, recipient) by inserting this row and sends only if
    its insert succeeded, so a second run, or a second worker racing the first, sends nothing
    (``edc.notifications.notify``)."""

    kind = models.CharField(_("kind"), max_length=40)
    key = models.CharField(_("key"), max_length=200)
    recipient = models.CharField(
        _("recipient"), max_length=254, help_text=_("user:<id>, or an e-mail address.")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
    )
    created_at = models.DateTimeField(_("sent"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notification log entry")
        verbose_name_plural = _("notification log")
        constraints = [
            models.UniqueConstraint(fields=["kind", "key", "recipient"],
                                    name="notificationlog_once_per_recipient"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} → {self.recipient}"


class Notification(models.Model):
    """A reminder as the user sees it in the web application, until they mark it read."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT,
        related_name="notifications",
    )
    title = models.CharField(_("title"), max_length=200)
    body = bounded_text(_("body"), bounds.SYSTEM_TEXT, blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_read")]
        constraints = [*length_checks("notification", body=bounds.SYSTEM_TEXT)]

    def __str__(self) -> str:
        return f"{self.title} → {self.user_id}"


# --- Audit trail (edc.audit) ------------------------------------------------------------------
# Append-only tables: the database refuses UPDATE and DELETE on them (edc.audit.audit_install).


class AuditAction(models.TextChoices):
    LOGIN = "login", _("Logged in")
    LOGIN_FAILED = "login_failed", _("Login failed")
    ACCOUNT_LOCKED = "account_locked", _("Account locked after failed passwords")
    PASSWORD_CHANGED = "password_changed", _("Password changed")
    LOGOUT = "logout", _("Logged out")
    TWO_FACTOR_ENROLLED = "two_factor_enrolled", _("Two-factor login set up")
    TWO_FACTOR_VERIFIED = "two_factor_verified", _("Two-factor code accepted")
    TWO_FACTOR_RESET = "two_factor_reset", _("Two-factor login reset by an administrator")
    USER_CREATED = "user_created", _("Account created")
    USER_CHANGED = "user_changed", _("Account changed")
    ROLE_CHANGED = "role_changed", _("Role changed")
    SITES_CHANGED = "sites_changed", _("Sites changed")
    USER_DEACTIVATED = "user_deactivated", _("Account deactivated")
    USER_REACTIVATED = "user_reactivated", _("Account reactivated")
    ROLE_GRANT_REQUESTED = "role_grant_requested", _("Unblinded role requested")
    ROLE_GRANT_APPROVED = "role_grant_approved", _("Unblinded role approved")
    ROLE_GRANT_REFUSED = "role_grant_refused", _("Unblinded role refused")
    ADMINISTRATOR_RIGHTS_GIVEN = "administrator_rights_given", _("Administrator rights given")
    RANDOMIZED = "randomized", _("Randomized")
    LIST_LOADED = "list_loaded", _("Randomization list loaded")
    UNBLINDED = "unblinded", _("Emergency unblinding")
    SOURCE_VERIFIED = "source_verified", _("Source data verified")
    QUERY_RAISED = "query_raised", _("Query raised")
    QUERY_ANSWERED = "query_answered", _("Query answered")
    QUERY_REQUERIED = "query_requeried", _("Query re-queried")
    QUERY_CLOSED = "query_closed", _("Query closed")
    QUERY_CANCELLED = "query_cancelled", _("Query cancelled")
    QUERY_AUTO_CLOSED = "query_auto_closed", _("Query closed: resolved by data change")
    SIGNED = "signed", _("Casebook signed")
    SIGNATURE_BROKEN = "signature_broken", _("Signature invalidated by a change")
    LOCKED = "locked", _("Data locked")
    UNLOCKED = "unlocked", _("Data unlocked")
    EXPORTED = "exported", _("Data exported")
    EXPORT_DOWNLOADED = "export_downloaded", _("Data export downloaded")
    API_TOKEN_CREATED = "api_token_created", _("API token created")
    API_TOKEN_REVOKED = "api_token_revoked", _("API token revoked")
    API_TOKEN_REFUSED = "api_token_refused", _("API call refused: bad token")
    API_CALL = "api_call", _("API call")
    DATA_IMPORTED = "data_imported", _("Data imported from a file")


class AuditEvent(models.Model):
    """A workflow or account event (ICH E6(R3) 4.2.2(a); 21 CFR 11.10(e)). Written only by
    ``edc.audit.audit_event``; chained like the history tables. Never holds the treatment
    arm: a randomization is recorded by its randomization number."""

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
        help_text=_("Empty for a failed login or an action of the system."),
    )
    username_attempted = models.CharField(_("user name tried"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices,
                              db_index=True)
    object_type = models.CharField(_("record type"), max_length=100, blank=True)
    object_id = models.CharField(_("record id"), max_length=64, blank=True)
    subject = models.ForeignKey(
        "visits.Subject", verbose_name=_("subject"), on_delete=models.PROTECT,
        null=True, blank=True, related_name="+",
    )
    site = models.ForeignKey(
        Site, verbose_name=_("site"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    # Where the event came from (``edc.sources``); empty on events recorded before sources were.
    source = models.CharField(_("source"), max_length=SOURCE_LENGTH, choices=Source.choices,
                              default="", blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["subject", "at"], name="auditevent_subject_at"),
            models.Index(fields=["site", "at"], name="auditevent_site_at"),
            models.Index(fields=["user", "at"], name="auditevent_user_at"),
            models.Index(fields=["object_type", "object_id"], name="auditevent_object"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} @ {self.at:%Y-%m-%d %H:%M:%S}"


CHAIN_GENESIS_HASH = "0" * 64


class AuditChainHead(models.Model):
    """One row per chained table: where its chain ends. Each writer locks it
    (``SELECT ... FOR UPDATE``) so that concurrent transactions append one after the other.
    Only the database moves it: inserting a link advances its table's head in the same
    statement, and the head refuses any other change (``edc.audit``)."""

    table = models.CharField(_("table"), max_length=100, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_sequence = models.PositiveBigIntegerField(_("last sequence"), default=0)
    last_hash = models.CharField(_("last hash"), max_length=64, default=CHAIN_GENESIS_HASH)

    class Meta:
        verbose_name = _("audit chain head")
        verbose_name_plural = _("audit chain heads")

    def __str__(self) -> str:
        return self.table


class AuditRowLayout(models.Model):
    """The columns a table had when its rows were hashed: a column added later by a migration
    does not change the hash of rows written before it."""

    table = models.CharField(_("table"), max_length=100)
    columns = models.JSONField(_("columns"))
    digest = models.CharField(_("digest"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("audit row layout")
        verbose_name_plural = _("audit row layouts")

    def __str__(self) -> str:
        return f"{self.table} ({len(self.columns)} columns)"


class AuditChainLink(models.Model):
    """Tamper evidence for one row of a history table (or of ``AuditEvent``): the SHA-256 of
    the row's canonical JSON chained to the previous link of the same table
    (``edc.audit.row_hash``). ``manage.py verify_audit`` recomputes every link."""

    table = models.CharField(_("table"), max_length=100)
    history_id = models.BigIntegerField(_("row id"))
    sequence = models.PositiveBigIntegerField(_("sequence"))
    layout = models.ForeignKey(AuditRowLayout, on_delete=models.PROTECT, related_name="+")
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    row_hash = models.CharField(_("row hash"), max_length=64)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["table", "sequence"]
        verbose_name = _("audit chain link")
        verbose_name_plural = _("audit chain links")
        constraints = [
            # A second writer that somehow read the same chain tip cannot fork the chain.
            models.UniqueConstraint(fields=["table", "sequence"], name="auditlink_one_per_seq"),
            models.UniqueConstraint(fields=["table", "history_id"], name="auditlink_one_per_row"),
        ]

    def __str__(self) -> str:
        return f"{self.table} #{self.sequence} (row {self.history_id})"
