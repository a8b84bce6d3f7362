"""Data queries: questions about one item of one record (a CRF or a visit), answered by the
site and closed by the monitor or data manager (DESIGN.md, "Edit checks and queries").

A *manual* query is raised by a monitor or data manager; a *system* query is raised by a soft
edit check (``check_code``) and closes itself when corrected data pass the check again
("resolved by data change"). Life: open → answered → closed, an answered query may be
re-queried (open again), and its raiser may cancel it. Every message and state change is
kept: messages are only ever added, and both tables have history.
"""

import datetime as dt

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from edc import bounds
from edc.audit import AuditAction, audit_event
from edc.bounds import bounded_text, length_checks
from edc.i18n import neutral, shown
from edc.models import User
from edc.roles import Action, can, scope_to_user
from edc.validation import changed_fields, field_values, validate_constraints_over
from forms.models.base import CRF
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

    history = HistoricalRecords()

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
    def shown_text(self) -> str:
        """The question in the reader's language when an edit check wrote it (stored
        language-neutral, ``edc.i18n``): the check's message rendered for the reader while the
        stored text is still that message; a question the check has since reworded, as
        stored (or its translation). A person's question as they typed it."""
        if not self.is_system:
            return self.text
        from forms.checks import CHECKS_BY_CODE

        check = CHECKS_BY_CODE.get(self.check_code)
        if check is not None and neutral(check.message) == self.text:
            return str(check.message)
        return shown(self.text)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


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

    history = HistoricalRecords()

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


# --- Services ----------------------------------------------------------------------------------


def _required_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": gettext("Write the text of the message.")})
    return text


def _target_parts(target: CRF | Visit) -> tuple[Subject, Visit | None, str]:
    """(subject with its site, visit, CRF code) of a saved CRF or visit."""
    if not isinstance(target, CRF | Visit) or target.pk is None:
        raise ValidationError(gettext("A query concerns a saved form or visit."))
    subject = Subject.objects.select_related("site").get(pk=target.subject_id)
    if isinstance(target, Visit):
        return subject, target, ""
    return subject, target.visit, target.crf_code


def _check_field(target: CRF | Visit, field_name: str, *, system: bool) -> None:
    if isinstance(target, Visit):
        allowed = ([f.name for f in Visit._meta.concrete_fields] if system
                   else VISIT_QUERY_ITEMS)
    else:
        allowed = type(target).item_names()
    if field_name not in allowed:
        raise ValidationError(
            {"field_name": gettext("%(item)s is not an item of this record.")
             % {"item": field_name}}
        )


def _message(query: Query, kind: str, text: str, author: User | None, at: dt.datetime):
    message = QueryMessage(query=query, kind=kind, text=text, author=author, at=at)
    # The query was just saved or read locked, the author is the signed-in user: their rows
    # exist and are not read again.
    message.full_clean(exclude=["query", "author"])
    message._history_user = author
    message.save()
    return message


def _save(query: Query, user: User | None, kind: str,
          stored: dict[str, object] | None = None) -> None:
    """Validate and save ``query``. ``stored``: its values as read locked in this transaction
    (``field_values``), when it changes only its own state (status, resolution, times, who
    closed it): its links (subject, form, visit, raiser) are the stored row's, not read again,
    and only the constraints over the fields changed are judged (``validate_constraints_over``)."""
    if stored is None:
        query.full_clean()
    else:
        query.full_clean(exclude=["subject", "content_type", "visit", "raised_by"],
                         validate_constraints=False)
        validate_constraints_over(query, changed_fields(query, stored))
    query._history_user = user
    query._change_reason = neutral(MessageKind(kind).label)
    query.save()


def _locked(query: Query) -> Query:
    return (Query.objects.select_for_update(of=("self",)).select_related("subject__site")
            .get(pk=query.pk))


def _require_status(query: Query, allowed: tuple[str, ...], doing: str) -> None:
    if query.status not in allowed:
        raise ValidationError(
            gettext("This query is %(status)s: it cannot be %(doing)s.")
            % {"status": query.get_status_display().lower(), "doing": doing}
        )


@transaction.atomic
def query_raise(*, target: CRF | Visit, field_name: str, text: str, user: User) -> Query:
    """A manual query by a monitor or data manager on one item of a saved form or visit."""
    subject, visit, crf_code = _target_parts(target)
    if not can(user, Action.RAISE_QUERY, subject.site):
        raise PermissionDenied(gettext("Your role does not allow raising queries at this site."))
    _check_field(target, field_name, system=False)
    text = _required_text(text)
    # Imported here: the lock rules build on the CRF models, which register this module.
    from forms.locks import refuse_if_locked

    refuse_if_locked(subject=subject, visit=visit,
                     record=None if isinstance(target, Visit) else target)
    now = timezone.now()
    query = Query(
        subject=subject, content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk, field_name=field_name, crf_code=crf_code, visit=visit,
        text=text, raised_by=user, raised_at=now,
    )
    _save(query, user, MessageKind.RAISED)
    _message(query, MessageKind.RAISED, text, user, now)
    audit_event(action=AuditAction.QUERY_RAISED, user=user, obj=query, subject=subject,
                detail={"form": crf_code, "item": field_name})
    return query


@transaction.atomic
def query_answer(*, query: Query, text: str, user: User) -> Query:
    """The site's answer (any correction of the data goes through ``crf_save`` with a
    reason)."""
    query = _locked(query)
    if not can(user, Action.ANSWER_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow answering queries at this "
                                       "site."))
    _require_status(query, (QueryStatus.OPEN,), gettext("answered"))
    text = _required_text(text)
    now = timezone.now()
    query.status = QueryStatus.ANSWERED
    query.answered_at = now
    _save(query, user, MessageKind.ANSWERED)
    _message(query, MessageKind.ANSWERED, text, user, now)
    audit_event(action=AuditAction.QUERY_ANSWERED, user=user, obj=query, subject=query.subject)
    return query


@transaction.atomic
def query_requery(*, query: Query, text: str, user: User) -> Query:
    """The answer does not settle it: the query is open again, with a new question."""
    query = _locked(query)
    if not can(user, Action.RAISE_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow re-querying at this site."))
    _require_status(query, (QueryStatus.ANSWERED,), gettext("re-queried"))
    text = _required_text(text)
    query.status = QueryStatus.OPEN
    _save(query, user, MessageKind.REQUERIED)
    _message(query, MessageKind.REQUERIED, text, user, timezone.now())
    audit_event(action=AuditAction.QUERY_REQUERIED, user=user, obj=query, subject=query.subject)
    return query


def _end(query: Query, *, status: str, resolution: str, kind: str, text: str,
         user: User | None, stored: dict[str, object] | None = None) -> Query:
    now = timezone.now()
    query.status = status
    query.resolution = resolution
    query.closed_at = now
    query.closed_by = user
    _save(query, user, kind, stored)
    _message(query, kind, text, user, now)
    return query


@transaction.atomic
def query_close(*, query: Query, user: User, text: str = "") -> Query:
    query = _locked(query)
    if not can(user, Action.CLOSE_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow closing queries at this site."))
    _require_status(query, ACTIVE_STATUSES, gettext("closed"))
    query = _end(query, status=QueryStatus.CLOSED, resolution=Resolution.CLOSED_BY_RAISER,
                 kind=MessageKind.CLOSED, text=(text or "").strip(), user=user)
    audit_event(action=AuditAction.QUERY_CLOSED, user=user, obj=query, subject=query.subject)
    return query


@transaction.atomic
def query_cancel(*, query: Query, user: User, text: str) -> Query:
    """Withdrawn by the person who raised it (raised in error), with the reason."""
    query = _locked(query)
    if query.raised_by_id is None or query.raised_by_id != user.pk or not can(
        user, Action.RAISE_QUERY, query.subject.site
    ):
        raise PermissionDenied(gettext("Only the person who raised a query may cancel it."))
    _require_status(query, ACTIVE_STATUSES, gettext("cancelled"))
    text = _required_text(text)
    query = _end(query, status=QueryStatus.CANCELLED, resolution=Resolution.CANCELLED,
                 kind=MessageKind.CANCELLED, text=text, user=user)
    audit_event(action=AuditAction.QUERY_CANCELLED, user=user, obj=query, subject=query.subject)
    return query


def _active_system_query(target: CRF | Visit, field_name: str, check_code: str) -> Query | None:
    return Query.objects.filter(
        content_type=ContentType.objects.get_for_model(target), object_id=target.pk,
        field_name=field_name, check_code=check_code, status__in=ACTIVE_STATUSES,
    ).first()


# No savepoint of its own: it is run inside the save whose checks found the failure, and an
# error in it dooms that save anyway; the insert keeps its savepoint (a concurrent run).
@transaction.atomic(savepoint=False)
def query_open_system(
    *, target: CRF | Visit, field_name: str, check_code: str, text: str,
    subject: Subject | None = None, looked_up: bool = False,
) -> tuple[Query, bool]:
    """The query in progress for this check failure, or a new one raised by the system.
    Returns (query, created). Idempotent, also under concurrent runs (the unique
    constraint decides). ``subject``: the target's subject with its site, when the caller
    has it (the edit checks), so that it is not read again. ``looked_up``: the caller read
    the queries in progress of this check in this transaction and found none for this
    failure (the edit checks' reconciliation), so it is not looked for again."""
    if not check_code:
        raise ValidationError(gettext("A system query needs the code of its edit check."))
    existing = None if looked_up else _active_system_query(target, field_name, check_code)
    if existing is not None:
        return existing, False
    if subject is None or subject.pk != getattr(target, "subject_id", None):
        subject, _visit, crf_code = _target_parts(target)
    else:
        crf_code = "" if isinstance(target, Visit) else target.crf_code
    _check_field(target, field_name, system=True)
    text = _required_text(text)
    now = timezone.now()
    query = Query(
        subject=subject, content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk, field_name=field_name, crf_code=crf_code,
        visit_id=target.pk if isinstance(target, Visit) else target.visit_id,
        check_code=check_code, text=text, raised_by=None, raised_at=now,
    )
    # The unique constraint is left to the insert: only the database sees a concurrent run.
    # The subject, content type and visit are the saved target's own: not read again.
    query.full_clean(exclude=["subject", "content_type", "visit"], validate_constraints=False)
    query._history_user = None
    query._change_reason = neutral(MessageKind.RAISED.label)
    try:
        with transaction.atomic():
            query.save()
    except IntegrityError:
        # Another run opened it between our look-up and our insert.
        return _active_system_query(target, field_name, check_code), False
    _message(query, MessageKind.RAISED, text, None, now)
    audit_event(action=AuditAction.QUERY_RAISED, obj=query, subject=subject,
                detail={"form": crf_code, "item": field_name, "check": check_code})
    return query, True


@transaction.atomic(savepoint=False)  # run inside the save whose checks pass: see above
def query_close_system(*, query: Query) -> Query:
    """The data now pass the check that raised this query: it closes itself."""
    query = _locked(query)
    if not query.is_system:
        raise ValidationError(gettext("Only a query raised by an edit check closes itself."))
    _require_status(query, ACTIVE_STATUSES, gettext("closed"))
    query = _end(query, status=QueryStatus.CLOSED, resolution=Resolution.RESOLVED_BY_DATA_CHANGE,
                 kind=MessageKind.AUTO_CLOSED, text=neutral(_("Resolved by data change.")),
                 user=None, stored=field_values(query))
    audit_event(action=AuditAction.QUERY_AUTO_CLOSED, obj=query, subject=query.subject,
                detail={"check": query.check_code})
    return query


# --- Selectors ---------------------------------------------------------------------------------


def open_system_queries(*, subject_ids=None, check_codes=None) -> models.QuerySet:
    """System queries in progress (open or answered), optionally of some subjects or checks."""
    queries = Query.objects.exclude(check_code="").filter(status__in=ACTIVE_STATUSES)
    if subject_ids is not None:
        queries = queries.filter(subject_id__in=subject_ids)
    if check_codes is not None:
        queries = queries.filter(check_code__in=check_codes)
    return queries


def queries_for_user(user: User) -> models.QuerySet:
    """Every query (closed ones included) at the user's sites, ready for the query list. Only
    the roles that raise or answer queries see them: the pharmacist, statistician and
    administrator see no clinical data."""
    if not (can(user, Action.RAISE_QUERY) or can(user, Action.ANSWER_QUERY)):
        return Query.objects.none()
    queries = Query.objects.select_related(
        "subject__site", "visit", "content_type", "raised_by", "closed_by"
    )
    return scope_to_user(queries, user, site_field="subject__site")


def queries_for_target(target: CRF | Visit) -> models.QuerySet:
    """Every query on this record, oldest first, with their messages and authors."""
    return (
        Query.objects.filter(content_type=ContentType.objects.get_for_model(target),
                             object_id=target.pk)
        .select_related("raised_by", "closed_by")
        .prefetch_related(models.Prefetch(
            "messages", queryset=QueryMessage.objects.select_related("author")
        ))
        .order_by("raised_at", "pk")
    )


# Age of a query in progress in whole days (``query_age_days``): low and high bounds,
# inclusive; None is open-ended. The query list and the dashboard show the same bands.
QUERY_AGE_BANDS: tuple[tuple[int, int | None], ...] = ((0, 7), (8, 14), (15, 30), (31, None))


def query_age_band_counts(now: dt.datetime) -> dict[str, Count]:
    """Aggregates ``band_0`` … counting queries by age band in SQL: ``days >= low`` and
    ``days <= high`` of ``(now - raised_at).days``, as ``query_age_days`` counts them."""
    bands = {}
    for index, (low, high) in enumerate(QUERY_AGE_BANDS):
        condition = Q(raised_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            condition &= Q(raised_at__gt=now - dt.timedelta(days=high + 1))
        bands[f"band_{index}"] = Count("pk", filter=condition)
    return bands


def query_age_days(query: Query, now: dt.datetime) -> int:
    """Whole days the query has been (or was) in progress."""
    end = query.closed_at or now
    return (end - query.raised_at).days
