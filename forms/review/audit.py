"""The audit trail, read from the history tables (issue 6, item 5): one row per changed field
(old → new, who, when, why), for subjects, visits, every CRF, queries, kits and unblindings.

21 CFR 11.10(e) and ICH E6(R3) 3.16.1 ask for a trail that shows who changed what, when and
why, and that a reviewer can read it. The blind holds here as everywhere: the arm lives only in
``RandomizationSlot``, whose history is shown only to users who may view the allocation, and
direct identifiers (``SubjectIdentity``) only to users who may view them at that site.

Each history table is read with one query for all the subjects in view (a subject has a few
hundred history rows at most), ordered by time; the diffs are computed here, so the number of
queries does not grow with the number of forms or records. Exports read the whole trail as
one ordered stream of values per history table
(:func:`forms.review.audit_stream.audit_rows_by_record`).
"""

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext

from edc import protocol
from edc.models import User
from edc.roles import can, scope_to_user
from forms.models import CRF_MODELS, Query, QueryMessage
from forms.review.audit_sources import (
    _GATE_ACTION,
    _HISTORY_ACTIONS,
    ALLOCATION,
    CHANGED,
    DELETED,
    AuditRow,
    AuditSource,
    _choice_labels,
    _empty,
    _fields,
    _text,
    _tracked_fields,
    may_view_audit,
    sources_for,
)
from visits.models import (
    KitAssignment,
    RandomizationSlot,
    Subject,
    Visit,
)


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
            channel=entry.history_source,
        )


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


