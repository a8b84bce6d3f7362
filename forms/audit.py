"""The audit trail, read from the history tables (issue 6, item 5): one row per changed field
(old → new, who, when, why), for subjects, visits, every CRF, queries, kits and unblindings.

21 CFR 11.10(e) and ICH E6(R3) 3.16.1 ask for a trail that shows who changed what, when and
why, and that a reviewer can read it. The blind holds here as everywhere: the arm lives only in
``RandomizationSlot``, whose history is shown only to users who may view the allocation, and
direct identifiers (``SubjectIdentity``) only to users who may view them at that site.

Each history table is read with one query for all the subjects in view (a subject has a few
hundred history rows at most), ordered by time; the diffs are computed here, so the number of
queries does not grow with the number of forms or records. Exports read the whole trail as
one ordered stream of values per history table (:func:`audit_rows_by_record`).
"""

import datetime as dt
import json
import zoneinfo
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from typing import NamedTuple

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F, Min, Window
from django.db.models.functions import FirstValue
from django.utils.functional import Promise
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _

from edc import protocol
from edc.i18n import shown
from edc.models import User
from edc.roles import Action, can, scope_to_user
from forms.models import CRF_MODELS
from forms.models.signoff import Lock, Signature
from forms.queries import Query, QueryMessage
from visits.models import (
    KitAssignment,
    RandomizationSlot,
    Subject,
    SubjectIdentity,
    Unblinding,
    Visit,
)

CREATED, CHANGED, DELETED = "created", "changed", "deleted"
ACTION_LABELS = {CREATED: _("Created"), CHANGED: _("Changed"), DELETED: _("Deleted")}
_HISTORY_ACTIONS = {"+": CREATED, "~": CHANGED, "-": DELETED}

# Bookkeeping columns: the record's key, its optimistic-locking counter and save times (the
# history row carries the time itself).
_BOOKKEEPING = frozenset({"id", "version", "created_at", "updated_at"})

CLINICAL, IDENTITY, ALLOCATION = "clinical", "identity", "allocation"


@dataclass(frozen=True)
class AuditSource:
    """One audited model: how its history rows reach their subject, and who may see them."""

    key: str
    model: type[models.Model]
    label: "str | Promise"
    # Lookup from a history row to its subject's id.
    subject_path: str = "subject_id"
    # Lookup matched against a record's primary key when the trail is of one record.
    record_path: str = "id"
    # Fields the record description already says (its subject, visit, …).
    context_fields: frozenset[str] = frozenset({"subject"})
    gate: str = CLINICAL


def _sources() -> list[AuditSource]:
    crf_context = frozenset({"subject", "visit"})
    return [
        AuditSource("subject", Subject, Subject._meta.verbose_name, subject_path="id",
                    context_fields=frozenset()),
        AuditSource("visit", Visit, Visit._meta.verbose_name),
        *(AuditSource(code, model, protocol.crf(code).label, context_fields=crf_context)
          for code, model in CRF_MODELS.items()),
        AuditSource("query", Query, Query._meta.verbose_name,
                    context_fields=frozenset({"subject", "content_type", "object_id"})),
        AuditSource("query", QueryMessage, QueryMessage._meta.verbose_name,
                    subject_path="query__subject_id", record_path="query_id",
                    context_fields=frozenset({"query"})),
        AuditSource("kit", KitAssignment, _("kit assignment")),
        AuditSource("signature", Signature, _("electronic signature"),
                    context_fields=frozenset({"subject", "visit"})),
        # Site and trial locks have no subject: they are listed on the locks page.
        AuditSource("lock", Lock, _("data lock"),
                    context_fields=frozenset({"subject", "content_type", "object_id"})),
        AuditSource("unblinding", Unblinding, _("emergency unblinding")),
        AuditSource("identity", SubjectIdentity, SubjectIdentity._meta.verbose_name,
                    gate=IDENTITY),
        # The allocation itself is the change of ``subject``: it stays a field here.
        AuditSource("randomization", RandomizationSlot, RandomizationSlot._meta.verbose_name,
                    context_fields=frozenset(), gate=ALLOCATION),
    ]


SOURCES = _sources()


@dataclass(frozen=True)
class AuditRow:
    when: dt.datetime  # UTC
    who: str
    action: str  # created / changed / deleted
    model: str
    record: str
    field_label: str
    field: str  # the field's code
    old_value: str
    new_value: str
    reason: str
    source: str
    subject_pk: int
    record_pk: int
    time_zone: str  # the subject's site zone, for display

    @property
    def reason_shown(self) -> str:
        """The reason in the reader's language when the system wrote it (``edc.i18n``)."""
        return shown(self.reason)

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS[self.action])


def may_view_audit(user: User) -> bool:
    """Readers of the trail: those who may view the audit trail, and the unblinded
    statistician, who owns the randomization list and audits its use (allocation rows only)."""
    return can(user, Action.VIEW_AUDIT) or _may_audit_allocation_only(user)


def _may_audit_allocation_only(user: User) -> bool:
    return (not can(user, Action.VIEW_AUDIT) and can(user, Action.VIEW_ALLOCATION)
            and can(user, Action.LOAD_RANDOMIZATION_LIST))


def sources_for(user: User) -> list[AuditSource]:
    """The audited models whose rows ``user`` may see at some site (each row is checked again
    against its own site)."""
    if _may_audit_allocation_only(user):
        return [s for s in SOURCES if s.gate == ALLOCATION]
    if not can(user, Action.VIEW_AUDIT):
        return []
    gates = {CLINICAL}
    if can(user, Action.VIEW_IDENTIFIERS):
        gates.add(IDENTITY)
    if can(user, Action.VIEW_ALLOCATION):
        gates.add(ALLOCATION)
    return [s for s in SOURCES if s.gate in gates]


def source_choices(user: User) -> list[tuple[str, str]]:
    """(key, label) of the forms and record types ``user`` may filter on, in protocol order."""
    seen: dict[str, str] = {}
    for source in sources_for(user):
        seen.setdefault(source.key, capfirst(str(source.label)))
    return list(seen.items())


_GATE_ACTION = {IDENTITY: Action.VIEW_IDENTIFIERS, ALLOCATION: Action.VIEW_ALLOCATION}


def audit_rows(
    *,
    user: User,
    subject: Subject | None = None,
    crf_code: str | None = None,
    record: models.Model | int | None = None,
    field: str | None = None,
    author: User | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
) -> list[AuditRow]:
    """The audit rows ``user`` may see, newest first.

    ``crf_code`` is a CRF code or a record type (``subject``, ``visit``, ``query``, ``kit``,
    ``unblinding``, ``identity``, ``randomization``); ``record`` is a record of that type (or
    its primary key); ``field`` a field code; ``author`` the person who made the change;
    ``since`` (inclusive) and ``until`` (exclusive) bound the time of the change.
    """
    if not may_view_audit(user):
        raise PermissionDenied(gettext("Your role does not allow viewing the audit trail."))
    sources = sources_for(user)
    if isinstance(record, models.Model):
        sources = [s for s in sources if s.model is type(record)]
        record = record.pk
    if crf_code:
        sources = [s for s in sources if s.key == crf_code]
    subjects = scope_to_user(Subject.objects.all(), user)
    if subject is not None:
        subjects = subjects.filter(pk=subject.pk)
    subject_ids = subjects.values("pk")

    groups: list[_Group] = []
    for source in sources:
        groups.extend(_read(source, subject_ids=subject_ids, record=record, author=author,
                            since=since, until=until))
    context = _Context(groups)
    groups = [g for g in groups if g.subject_id in context.subjects
              and _visible(user, g.source, context.subjects[g.subject_id])]

    def wanted(entry) -> bool:
        return ((author is None or entry.history_user_id == author.pk)
                and (since is None or entry.history_date >= since)
                and (until is None or entry.history_date < until))

    timeline = []
    for group in groups:
        for previous, entry in zip([None, *group.entries], group.entries, strict=False):
            if wanted(entry):
                timeline.append((entry.history_date, entry.history_id, group, previous, entry))
    timeline.sort(key=lambda item: (item[0], item[1]), reverse=True)

    rows: list[AuditRow] = []
    for _when, _id, group, previous, entry in timeline:
        for row in _entry_rows(group, previous, entry, context):
            if field and row.field.lower() != field.lower():
                continue
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                return rows
    return rows


class TrailRow(NamedTuple):
    """One changed field, as the export's audit trail dataset carries it."""

    subject_pk: int
    when: dt.datetime  # UTC
    who: str
    action: str  # created / changed / deleted
    model: str
    record_pk: int
    record: str
    field: str  # the field's code
    old_value: str
    new_value: str
    reason: str


def audit_rows_by_record(*, user: User, until: dt.datetime | None = None,
                         keys: Iterable[str] | None = None) -> Iterator[TrailRow]:
    """Every audit row ``user`` may see, changed before ``until``, of the sources named by
    ``keys`` (every source the user may see when None): source by source, record by record
    (in the order of their first change), oldest change first. The same rows as
    :func:`audit_rows`, for exports.

    Set-wise: each history table is one ordered stream from a server-side cursor (values, not
    model instances), each row compared with the one before it field by field in a tight loop;
    one record's history is held at a time (besides the labels of the subjects, visits, people
    and queries in view), and the number of queries does not grow with the subjects."""
    if not may_view_audit(user):
        raise PermissionDenied(gettext("Your role does not allow viewing the audit trail."))
    subject_ids = scope_to_user(Subject.objects.all(), user).values("pk")
    lookup = _Lookup(subject_ids)
    for source in sources_for(user):
        if keys is None or source.key in keys:
            yield from _stream_source(user, source, subject_ids, until, lookup)


class _Named(NamedTuple):
    label: str


class _Person(NamedTuple):
    printed_name: str


class _QueryPlace(NamedTuple):
    crf_code: str
    field_name: str


class _Lookup:
    """What the rows' descriptions need, each read once with one query (duck-typing
    :class:`_Context`): the subjects in view with their sites, visit labels, people, and the
    queries that messages belong to."""

    def __init__(self, subject_ids):
        from edc.models import Site

        self.sites = {site.pk: site for site in Site.objects.all()}
        self.subjects: dict[int, _Named] = {}
        self.subject_sites: dict[int, object] = {}
        for pk, subject_id, screening_number, site_id in (
                Subject.objects.filter(pk__in=subject_ids)
                .values_list("pk", "subject_id", "screening_number", "site_id")):
            label = f"{subject_id} ({screening_number})" if subject_id else screening_number
            self.subjects[pk] = _Named(label)
            self.subject_sites[pk] = self.sites[site_id]
        self._subject_ids = subject_ids
        self._may: dict[tuple, bool] = {}

    @cached_property
    def users(self) -> dict[int, _Person]:
        return {u.pk: _Person(u.printed_name) for u in User.objects.all()}

    @cached_property
    def visits(self) -> dict[int, str]:
        labels: dict[tuple, str] = {}
        result = {}
        for pk, code, sequence in (Visit.objects.filter(subject_id__in=self._subject_ids)
                                   .values_list("pk", "code", "sequence")):
            if (code, sequence) not in labels:
                labels[code, sequence] = str(Visit(code=code, sequence=sequence).label)
            result[pk] = labels[code, sequence]
        return result

    @cached_property
    def queries(self) -> dict[int, _QueryPlace]:
        return {pk: _QueryPlace(crf_code, field_name) for pk, crf_code, field_name in
                Query.objects.filter(subject_id__in=self._subject_ids)
                .values_list("pk", "crf_code", "field_name")}

    def may(self, user: User, action: Action, site) -> bool:
        """``can(user, action, site)``, asked once per site."""
        if (action, site.pk) not in self._may:
            self._may[action, site.pk] = can(user, action, site)
        return self._may[action, site.pk]

    def visit_label(self, pk: int | None) -> str:
        if pk is None:
            return ""
        label = self.visits.get(pk)
        return label if label is not None else f"{gettext('visit')} #{pk}"


_STREAM_HEAD = ("id", "history_id", "history_date", "history_type", "history_user_id",
                "history_change_reason", "audit_subject_id")


def _stream_source(user: User, source: AuditSource, subject_ids, until,
                   lookup: _Lookup) -> Iterator[TrailRow]:
    history = source.model.history.model
    tracked = _tracked_fields(source.model)
    names = [f.attname for f in tracked]
    fields = _fields(source)
    compared = [(f.name, len(_STREAM_HEAD) + names.index(f.attname), _displayer(f, lookup))
                for f in fields]
    entry_type = _entry_type(source.model, tuple(names))
    rows = history.objects.annotate(audit_subject_id=F(source.subject_path))
    allocation = source.gate == ALLOCATION
    if allocation:
        # A list row has no subject until it is allocated: the whole life of the rows ever
        # allocated to these subjects, its subject the last one it had.
        rows = rows.filter(id__in=history.objects.filter(subject_id__in=subject_ids)
                           .values("id"))
    else:
        rows = rows.filter(audit_subject_id__in=subject_ids)
        if until is not None:
            # Earlier changes of a record all come before a change at or after ``until``.
            rows = rows.filter(history_date__lt=until)
    # Records in the order of their first change, each record's changes in time order.
    by_record = {"partition_by": [F("id")]}
    rows = (rows.annotate(
        first_date=Window(Min("history_date"), **by_record),
        first_id=Window(FirstValue("history_id"), **by_record,
                        order_by=[F("history_date").asc(), F("history_id").asc()]))
        .order_by("first_date", "first_id", "history_date", "history_id")
        .values_list(*_STREAM_HEAD, *names))
    model_label = _text(source.label)
    system = gettext("system")
    people = lookup.users
    group: list[tuple] = []
    for row in rows.iterator(chunk_size=5000):
        if group and row[0] != group[0][0]:
            yield from _record_rows(user, source, group, compared, entry_type, lookup,
                                    model_label, system, people, until, allocation)
            group = []
        group.append(row)
    if group:
        yield from _record_rows(user, source, group, compared, entry_type, lookup,
                                model_label, system, people, until, allocation)


@cache
def _entry_type(model: type[models.Model], names: tuple[str, ...]) -> type:
    """A light history entry (the record's tracked columns by attribute name) for
    :func:`_describe`."""
    return namedtuple(f"{model.__name__}Entry", names, rename=True)


def _displayer(f: models.Field, context: _Lookup) -> Callable[[object, str], str]:
    """:func:`_display` for the field ``f``, with what it looks up for every value (labels,
    the kind of field) looked up once."""
    if f.is_relation:
        model = f.related_model
        if model is User:
            def label(pk):
                return context.users[pk].printed_name if pk in context.users else f"#{pk}"
        elif model is Visit:
            label = context.visit_label
        elif model is Subject:
            def label(pk):
                return context.subjects[pk].label if pk in context.subjects else f"#{pk}"
        else:
            name = capfirst(str(model._meta.verbose_name))

            def label(pk):
                return f"{name} #{pk}"
        return lambda value, zone: "" if _empty(value) else label(value)
    if f.choices and not (f.model is RandomizationSlot and f.name == "arm"):
        labels = {code: str(text) for code, text in _choice_labels(f).items()}
        return lambda value, zone: ("" if _empty(value) else
                                    labels[value] if value in labels else str(value))
    if isinstance(f, models.BooleanField):
        yes, no = gettext("Yes"), gettext("No")
        return lambda value, zone: "" if value is None else (yes if value else no)
    return lambda value, zone: _display(f, value, context, zone)


def _record_rows(user, source, group, compared, entry_type, lookup, model_label, system,
                 people, until, allocation) -> Iterator[TrailRow]:
    subject_pk = None
    for row in group:
        if row[6] is not None:
            subject_pk = row[6]
    subject = lookup.subjects.get(subject_pk)
    if subject is None:
        return
    site = lookup.subject_sites[subject_pk]
    if source.gate in _GATE_ACTION and not lookup.may(user, _GATE_ACTION[source.gate], site):
        return
    zone = site.time_zone
    head = len(_STREAM_HEAD)
    previous = None
    for row in group:
        if allocation and until is not None and row[2] >= until:
            break
        record_pk, _hid, when, kind, user_id, reason = row[:6]
        action = _HISTORY_ACTIONS[kind]
        who = people[user_id].printed_name if user_id in people else system
        record = _describe(source, entry_type(*row[head:]), subject, lookup)
        when = when.astimezone(dt.UTC)
        for name, index, display in compared:
            new = row[index]
            if action == CHANGED:
                old = previous[index] if previous is not None else None
                if old == new or (_empty(old) and _empty(new)):
                    continue
            elif _empty(new):
                continue
            else:
                old = None
            if action == DELETED:
                old, new = new, None
            yield TrailRow(subject_pk, when, who, action, model_label, record_pk, record,
                           name, display(old, zone), display(new, zone), reason or "")
        previous = row


def _visible(user: User, source: AuditSource, subject: Subject) -> bool:
    if source.gate in _GATE_ACTION:
        return can(user, _GATE_ACTION[source.gate], subject.site)
    return True


@dataclass
class _Group:
    """The history of one record, oldest first."""

    source: AuditSource
    record_pk: int
    entries: list
    subject_id: int | None = None


def _read(source: AuditSource, *, subject_ids, record, author, since, until) -> list[_Group]:
    history = source.model.history.model
    rows = history.objects.annotate(audit_subject_id=F(source.subject_path))
    if source.gate == ALLOCATION:
        # A list row has no subject until it is allocated: read the whole life of the rows
        # ever allocated to these subjects.
        rows = rows.filter(id__in=history.objects.filter(subject_id__in=subject_ids)
                           .values("id"))
    else:
        rows = rows.filter(audit_subject_id__in=subject_ids)
    if record is not None:
        rows = rows.filter(**{source.record_path: record})
    if author is not None or since is not None or until is not None:
        # Whole histories of the records touched, so each change is diffed against its
        # predecessor even when that one is outside the filter.
        touched = rows
        if author is not None:
            touched = touched.filter(history_user=author)
        if since is not None:
            touched = touched.filter(history_date__gte=since)
        if until is not None:
            touched = touched.filter(history_date__lt=until)
        rows = rows.filter(id__in=touched.values("id"))
    rows = rows.select_related("history_user").order_by("history_date", "history_id")
    groups: dict[int, _Group] = {}
    for entry in rows:
        group = groups.setdefault(entry.id, _Group(source, entry.id, []))
        group.entries.append(entry)
        if entry.audit_subject_id is not None:
            group.subject_id = entry.audit_subject_id
    return list(groups.values())


class _Context:
    """What the rows' descriptions need, read once: subjects with their sites, visit labels,
    the people named in user fields, and the queries that messages belong to."""

    def __init__(self, groups: list[_Group]):
        self.groups = groups
        subject_ids = {g.subject_id for g in groups if g.subject_id is not None}
        self.subjects: dict[int, Subject] = (
            Subject.objects.select_related("site").in_bulk(subject_ids) if subject_ids else {}
        )

    def _fk_ids(self, related_model) -> set[int]:
        ids: set[int] = set()
        for group in self.groups:
            for f in _tracked_fields(group.source.model):
                if f.is_relation and f.related_model is related_model:
                    ids.update(getattr(e, f.attname) for e in group.entries)
        ids.discard(None)
        return ids

    @cached_property
    def visits(self) -> dict[int, Visit]:
        ids = self._fk_ids(Visit) | {
            g.record_pk for g in self.groups if g.source.model is Visit
        }
        return Visit.objects.in_bulk(ids) if ids else {}

    @cached_property
    def users(self) -> dict[int, User]:
        ids = self._fk_ids(User)
        return User.objects.in_bulk(ids) if ids else {}

    @cached_property
    def queries(self) -> dict[int, Query]:
        ids = self._fk_ids(Query)
        return Query.objects.in_bulk(ids) if ids else {}

    def visit_label(self, pk: int | None) -> str:
        if pk is None:
            return ""
        visit = self.visits.get(pk)
        return str(visit.label) if visit is not None else f"{gettext('visit')} #{pk}"


@cache
def _tracked_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The fields a model's history tracks. Read once: simple-history builds a new manager
    class on every ``Model.history`` access, which made exporting the trail crawl."""
    return tuple(model.history.model.tracked_fields)


@cache
def _choice_labels(f: models.Field) -> dict:
    return dict(f.flatchoices)


def _fields(source: AuditSource) -> list[models.Field]:
    return [f for f in _tracked_fields(source.model)
            if f.name not in _BOOKKEEPING and f.name not in source.context_fields]


def _entry_rows(group: _Group, previous, entry, context: _Context) -> Iterable[AuditRow]:
    source = group.source
    subject = context.subjects[group.subject_id]
    action = _HISTORY_ACTIONS[entry.history_type]
    user = entry.history_user
    who = user.printed_name if user is not None else gettext("system")
    record = _describe(source, entry, subject, context)
    model_label = _text(source.label)
    zone = subject.site.time_zone
    language = get_language()
    for f in _fields(source):
        new = getattr(entry, f.attname)
        if action == CHANGED:
            old = getattr(previous, f.attname) if previous is not None else None
            if old == new or (_empty(old) and _empty(new)):
                continue
        elif _empty(new):
            continue
        else:
            old = None
        if action == DELETED:
            old, new = new, None
        yield AuditRow(
            when=entry.history_date.astimezone(dt.UTC),
            who=who,
            action=action,
            model=model_label,
            record=record,
            field_label=_text(f.verbose_name, language),
            field=f.name,
            old_value=_display(f, old, context, zone),
            new_value=_display(f, new, context, zone),
            reason=entry.history_change_reason or "",
            source=source.key,
            subject_pk=subject.pk,
            record_pk=group.record_pk,
            time_zone=zone,
        )


# (id of the label, language) → (the label, kept alive so its id is never reused; its text).
_TEXTS: dict[tuple[int, str | None], tuple[object, str]] = {}


def _text(label, language: str | None = None) -> str:
    """A model's or field's (lazily translated) label, capitalized, translated once per
    language: the trail repeats the same few labels thousands of times."""
    key = (id(label), language or get_language())
    if key not in _TEXTS:
        _TEXTS[key] = (label, capfirst(str(label)))
    return _TEXTS[key][1]


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _describe(source: AuditSource, entry, subject: Subject, context: _Context) -> str:
    parts = [subject.label]
    model = source.model
    if model is Subject:
        return subject.label
    if model is Visit:
        parts.append(context.visit_label(entry.id))
    elif model in CRF_MODELS.values():
        if entry.visit_id is not None:
            parts.append(context.visit_label(entry.visit_id))
        parts.append(f"{_text(source.label)} #{entry.id}")
    elif model is Query:
        where = f"{entry.crf_code or gettext('visit')}.{entry.field_name}"
        parts.append(gettext("query #%(pk)s on %(item)s") % {"pk": entry.id, "item": where})
    elif model is QueryMessage:
        query = context.queries.get(entry.query_id)
        where = f"{query.crf_code or gettext('visit')}.{query.field_name}" if query else "?"
        parts.append(gettext("query #%(pk)s on %(item)s") % {"pk": entry.query_id,
                                                             "item": where})
    elif model is KitAssignment:
        parts.append(gettext("infusion %(n)s") % {"n": entry.infusion_number})
    elif model is RandomizationSlot:
        parts.append(entry.randomization_number)
    else:
        parts.append(f"{capfirst(str(source.label))} #{entry.id}")
    return " · ".join(str(p) for p in parts if p)


def _display(f: models.Field, value, context: _Context, zone: str) -> str:
    """The value as a reader sees it: choice labels, names of people, visit labels, times in
    the site's zone with their offset."""
    if _empty(value):
        return ""
    if f.is_relation:
        return _related_label(f.related_model, value, context)
    if f.model is RandomizationSlot and f.name == "arm":
        # Reached only by users who may view the allocation (``sources_for``).
        labels = {arm.code: arm.label for arm in protocol.ARMS}
        return f"{value} — {labels[value]}" if value in labels else str(value)
    if f.choices:
        return str(_choice_labels(f).get(value, value))
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, dt.datetime):
        return value.astimezone(zoneinfo.ZoneInfo(zone)).isoformat(" ", "seconds")
    if isinstance(value, dt.date | Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _related_label(model, pk: int, context: _Context) -> str:
    labels: dict[type, Callable[[int], str]] = {
        User: lambda pk: context.users[pk].printed_name if pk in context.users else f"#{pk}",
        Visit: context.visit_label,
        Subject: lambda pk: (context.subjects[pk].label if pk in context.subjects
                             else f"#{pk}"),
    }
    if model in labels:
        return labels[model](pk)
    return f"{capfirst(str(model._meta.verbose_name))} #{pk}"


CSV_COLUMNS = ("time_utc", "user", "action", "model", "record", "field", "old_value",
               "new_value", "reason")


def csv_cells(row: AuditRow) -> list[str]:
    """One CSV line: UTC time, the field as "label (code)"; cells that a spreadsheet would
    run as a formula are prefixed with an apostrophe (OWASP, CSV injection)."""
    cells = [
        row.when.strftime("%Y-%m-%dT%H:%M:%SZ"), row.who, row.action, row.model, row.record,
        f"{row.field_label} ({row.field})", row.old_value, row.new_value, row.reason,
    ]
    return [_inert(cell) for cell in cells]


def _inert(cell: str) -> str:
    if cell[:1] in ("=", "+", "@", "\t", "\r") or (
        cell[:1] == "-" and not cell[1:2].isdigit()
    ):
        return "'" + cell
    return cell

