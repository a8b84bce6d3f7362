"""Data queries: questions about one item of one record (a CRF or a visit), answered by the
site and closed by the monitor or data manager (DESIGN.md, "Edit checks and queries").

A *manual* query is raised by a monitor or data manager; a *system* query is raised by a soft
edit check (``check_code``) and closes itself when corrected data pass the check again
("resolved by data change"). Life: open → answered → closed, an answered query may be
re-queried (open again), and its raiser may cancel it. Every message and state change is
kept: messages are only ever added, and both tables have history.
"""

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from edc.audit import AuditAction, audit_event
from edc.history import SYSTEM, audited_save
from edc.i18n import neutral
from edc.models import User
from edc.roles import Action, can, scope_to_user
from edc.validation import field_values
from forms.models.base import CRF

# The one item of a visit record a manual query may concern.
from forms.models.queries import (
    ACTIVE_STATUSES,
    VISIT_QUERY_ITEMS,
    MessageKind,
    Query,
    QueryMessage,
    QueryStatus,
    Resolution,
)
from forms.review.locks import refuse_if_locked
from visits.models import Subject, Visit

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
    audited_save(message, user=author or SYSTEM, exclude=["query", "author"])
    return message


# The links of a query: the subject (read with its site in this transaction), the form's
# content type, its visit (the form's own), the raiser and the closer (the user acting, or
# the stored row's): their rows exist and are not read again to validate the query.
_LINKS = ["subject", "content_type", "visit", "raised_by", "closed_by"]


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
    refuse_if_locked(subject=subject, visit=visit,
                     record=None if isinstance(target, Visit) else target)
    now = timezone.now()
    query = Query(
        subject=subject, content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk, field_name=field_name, crf_code=crf_code, visit=visit,
        text=text, raised_by=user, raised_at=now,
    )
    audited_save(query, user=user, reason=neutral(MessageKind.RAISED.label), exclude=_LINKS,
                 constraints="all")
    _message(query, MessageKind.RAISED, text, user, now)
    audit_event(action=AuditAction.QUERY_RAISED, user=user, obj=query, subject=subject,
                detail={"form": crf_code, "item": field_name})
    return query


@transaction.atomic
def query_answer(*, query: Query, text: str, user: User) -> Query:
    """The site's answer (any correction of the data goes through ``crf_save`` with a
    reason)."""
    query = _locked(query)
    stored = field_values(query)
    if not can(user, Action.ANSWER_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow answering queries at this "
                                       "site."))
    _require_status(query, (QueryStatus.OPEN,), gettext("answered"))
    text = _required_text(text)
    now = timezone.now()
    query.status = QueryStatus.ANSWERED
    query.answered_at = now
    audited_save(query, user=user, reason=neutral(MessageKind.ANSWERED.label), exclude=_LINKS,
                 stored=stored)
    _message(query, MessageKind.ANSWERED, text, user, now)
    audit_event(action=AuditAction.QUERY_ANSWERED, user=user, obj=query, subject=query.subject)
    return query


@transaction.atomic
def query_requery(*, query: Query, text: str, user: User) -> Query:
    """The answer does not settle it: the query is open again, with a new question."""
    query = _locked(query)
    stored = field_values(query)
    if not can(user, Action.RAISE_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow re-querying at this site."))
    _require_status(query, (QueryStatus.ANSWERED,), gettext("re-queried"))
    text = _required_text(text)
    query.status = QueryStatus.OPEN
    audited_save(query, user=user, reason=neutral(MessageKind.REQUERIED.label), exclude=_LINKS,
                 stored=stored)
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
    audited_save(query, user=user or SYSTEM, reason=neutral(MessageKind(kind).label),
                 exclude=_LINKS, stored=stored)
    _message(query, kind, text, user, now)
    return query


@transaction.atomic
def query_close(*, query: Query, user: User, text: str = "") -> Query:
    query = _locked(query)
    if not can(user, Action.CLOSE_QUERY, query.subject.site):
        raise PermissionDenied(gettext("Your role does not allow closing queries at this site."))
    _require_status(query, ACTIVE_STATUSES, gettext("closed"))
    query = _end(query, status=QueryStatus.CLOSED, resolution=Resolution.CLOSED_BY_RAISER,
                 kind=MessageKind.CLOSED, text=(text or "").strip(), user=user,
                 stored=field_values(query))
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
                 kind=MessageKind.CANCELLED, text=text, user=user, stored=field_values(query))
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
    try:
        audited_save(query, user=SYSTEM, reason=neutral(MessageKind.RAISED.label),
                     exclude=["subject", "content_type", "visit"], constraints="database",
                     savepoint=True)
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


def query_age_band_label(low: int, high: int | None) -> str:
    """How a band of ``QUERY_AGE_BANDS`` is named on every page (query list, dashboard)."""
    if high is None:
        return gettext("%(low)s days or more") % {"low": low}
    return gettext("%(low)s–%(high)s days") % {"low": low, "high": high}


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
