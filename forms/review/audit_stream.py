"""The whole audit trail as one ordered stream of values per history table, for the exports
(:func:`audit_rows_by_record`): each table read once, in chunks, its rows diffed here; the
same sources, permissions and displays as the audit trail page (``forms.review.audit``)."""

import datetime as dt
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from functools import cache, cached_property
from typing import NamedTuple

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F, Min, Window
from django.db.models.functions import FirstValue
from django.utils.text import capfirst
from django.utils.translation import gettext

from edc.models import User
from edc.roles import Action, can, scope_to_user
from forms.models import Query
from forms.review.audit import _describe, _display
from forms.review.audit_sources import (
    _GATE_ACTION,
    _HISTORY_ACTIONS,
    ALLOCATION,
    CHANGED,
    DELETED,
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
    RandomizationSlot,
    Subject,
    Visit,
)

_STREAM_HEAD = ("id", "history_id", "history_date", "history_type", "history_user_id",
                "history_change_reason", "audit_subject_id", "history_source")


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
    channel: str  # how the change came in (edc.sources.Source), "" before it was recorded



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
        record_pk, _hid, when, kind, user_id, reason, _subject, channel = row[:8]
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
                           name, display(old, zone), display(new, zone), reason or "",
                           channel)
        previous = row
