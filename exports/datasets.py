"""The rows of each dataset, read from the live tables or, for an export "as of" a past time,
rebuilt from the history tables: the latest history row of each record at that time, records
deleted by then left out.

Rows stream from the database as tuples (``values_list(...).iterator()``: a server-side cursor on
PostgreSQL), never model instances; only the subjects, visits and user names a row refers to
are held in memory, so memory grows with the number of visits, not
with the number of form rows. Rows are ordered by record keys, so the same data give the same
rows in the same order.

Values are plain Python: ``int``, ``Decimal``, ``str``, ``bool``, ``date``, ``datetime`` (UTC)
or ``None``; writers format them.
"""

import base64
import copy
import datetime as dt
import json
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F, OuterRef, Subquery
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext

from edc.models import User
from edc.roles import Action, can, scope_to_user
from exports.dictionary import (
    DATE,
    DATETIME,
    INTEGER,
    Dataset,
    Profile,
)
from forms.models import CRF_MODELS
from visits import schedule
from visits.models import RandomizationSlot, Subject, Visit

CHUNK = 2000


def may_export(user: User, profile: Profile) -> bool:
    action = Action.EXPORT_UNBLINDED if profile == Profile.UNBLINDED else Action.EXPORT_BLINDED
    return can(user, action)


def subject_key(pk: int) -> str:
    """The subject's pseudonym: a keyed hash (HMAC-SHA256) of the subject's database id with
    the server's secret (``EXPORT_PSEUDONYM_SECRET``, else ``SECRET_KEY``), 60 bits in
    base 32 after a "P". The same subject has the same key in every dataset, format and
    export while the secret is kept; without the secret it cannot be computed from, or
    traced back to, the screening number or subject ID."""
    secret = getattr(settings, "EXPORT_PSEUDONYM_SECRET", None) or settings.SECRET_KEY
    digest = salted_hmac("edc.exports.subject_key", str(pk), secret=secret,
                         algorithm="sha256").digest()
    return "P" + base64.b32encode(digest).decode("ascii")[:12]


@dataclass(frozen=True)
class SubjectInfo:
    screening_number: str
    subject_id: str | None
    site: str
    zone: str
    day1: dt.date | None
    # The date study days count from: Day 1, or the screening date for a subject never
    # randomized (de-identified exports only).
    reference: dt.date
    key: str = ""  # the pseudonym (``subject_key``)


@dataclass
class ExportContext:
    """What every dataset of one export shares: who exports, the profile, the cut-off, and
    the subjects, visits and users rows refer to."""

    user: User
    profile: Profile = Profile.BLINDED
    as_of: dt.datetime | None = None
    _cache: dict = field(default_factory=dict)

    def __post_init__(self):
        if not may_export(self.user, self.profile):
            raise PermissionDenied(gettext("Your role does not allow this export."))

    def for_subjects(self, pks: list[int]) -> "ExportContext":
        """This context narrowed to some of its subjects, so ``rows()`` reads only theirs (an
        export written a chunk of subjects at a time); visits and users are shared."""
        part = copy.copy(self)
        part.__dict__.update(subject_pks=pks, subjects={pk: self.subjects[pk] for pk in pks},
                             visits=self.visits, users=self.users)
        return part

    # The records as they stood at the cut-off.
    def current(self, model: type[models.Model]) -> models.QuerySet:
        """``model``'s rows as of the cut-off: the live table, or the latest history row of
        each record at ``as_of`` (records deleted by then left out). The history rows carry the
        same column names as the live ones."""
        if self.as_of is None:
            return model._default_manager.all()
        history = model.history.model
        latest = (history.objects.filter(id=OuterRef("id"), history_date__lte=self.as_of)
                  .order_by("-history_date", "-history_id").values("history_id")[:1])
        return (history.objects.filter(history_date__lte=self.as_of)
                .annotate(latest=Subquery(latest)).filter(history_id=F("latest"))
                .exclude(history_type="-"))

    @cached_property
    def subject_pks(self) -> models.QuerySet:
        return scope_to_user(Subject.objects.all(), self.user).values("pk")

    @cached_property
    def subjects(self) -> dict[int, SubjectInfo]:
        from edc.models import Site

        sites = {s.pk: s for s in Site.objects.all()}
        result = {}
        rows = (self.current(Subject).filter(id__in=self.subject_pks)
                .values_list("id", "screening_number", "subject_id", "site_id", "randomized_at",
                             "screened_at"))
        for pk, screening_number, subject_id, site_id, randomized_at, screened_at in rows:
            site = sites[site_id]
            day1 = schedule.local_date(randomized_at, site.zone) if randomized_at else None
            result[pk] = SubjectInfo(
                screening_number, subject_id or None, site.code, str(site.time_zone), day1,
                day1 or schedule.local_date(screened_at, site.zone), subject_key(pk))
        return result

    @cached_property
    def visits(self) -> dict[int, tuple[str, dt.date | None]]:
        return {pk: (code, actual) for pk, code, actual in
                self.current(Visit).values_list("id", "code", "actual_date")}

    @cached_property
    def users(self) -> dict[int, str]:
        return dict(User.objects.values_list("pk", "username"))

    def study_day(self, subject: SubjectInfo, value: dt.date | None) -> int | None:
        if value is None or subject.day1 is None:
            return None
        return schedule.study_day(subject.day1, value)

    def as_study_day(self, subject: SubjectInfo, value) -> int | None:
        """A date or time replaced by its study day (de-identified exports)."""
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            value = schedule.local_date(value, subject.zone)
        return schedule.study_day(subject.reference, value)


def rows(dataset: Dataset, context: ExportContext) -> Iterator[tuple]:
    """The rows of ``dataset``, each a tuple in the order of its variables."""
    for _subject_pk, _visit_pk, row in keyed_rows(dataset, context):
        yield row


def keyed_rows(dataset: Dataset, context: ExportContext) -> Iterator[tuple[int, int | None,
                                                                           tuple]]:
    """(subject's id, visit's id, row) of ``dataset``: the rows of :func:`rows` with the
    record keys the ODM file groups them by. CRF rows come in the order of their subjects'
    ids."""
    names = dataset.names
    deidentified = context.profile == Profile.DEIDENTIFIED
    dated = {v.name for v in dataset.variables if deidentified and v.type == INTEGER}
    if dataset.name in _TUPLE_BUILDERS:
        positions = [index for index, name in enumerate(names) if name in dated]
        for subject, row in _TUPLE_BUILDERS[dataset.name](dataset, context):
            if positions:
                row = list(row)
                for index in positions:
                    if isinstance(row[index], dt.date):
                        row[index] = context.as_study_day(subject, row[index])
                row = tuple(row)
            yield None, None, row
        return
    if dataset.crf_code:
        records = _crf_records(dataset, context)
    else:
        records = _BUILDERS[dataset.name](dataset, context)
    for subject, record in records:
        keys = record.get(_KEYS) or (None, None)
        if deidentified:
            yield (*keys, tuple(
                context.as_study_day(subject, record.get(name))
                if name in dated and isinstance(record.get(name), dt.date)
                else record.get(name)
                for name in names
            ))
        else:
            yield (*keys, tuple(map(record.get, names)))


# The record's (subject id, visit id) in a CRF record: not a variable, never written.
_KEYS = "_keys"


def _subject_columns(subject: SubjectInfo) -> dict:
    return {"screening_number": subject.screening_number, "subject_id": subject.subject_id,
            "subject_key": subject.key, "site": subject.site}


def _source_columns(dataset: Dataset) -> list[tuple[str, str]]:
    """(variable name, column) of the variables read straight from the record."""
    columns = []
    for v in dataset.variables:
        if v.source:
            columns.append((v.name, v.source))
    return columns


def _crf_records(dataset: Dataset, context: ExportContext):
    from exports.dictionary import crf_dataset

    model = CRF_MODELS[dataset.crf_code]
    full = crf_dataset(dataset.crf_code)  # every column, whatever the profile keeps
    sources = _source_columns(full)
    staff = {v.name for v in full.variables if v.staff}
    json_items = {f.name for f in model._meta.concrete_fields
                  if isinstance(f, models.JSONField) and f.name != "missing_items"}
    columns = [
        model._meta.get_field(src).attname if src in staff else src for _name, src in sources
    ]
    queryset = (context.current(model).filter(subject_id__in=context.subject_pks)
                .order_by("subject_id", "visit_id", "id")
                .values_list("id", "subject_id", "visit_id", "updated_at", *columns))
    for pk, subject_pk, visit_pk, updated_at, *values in queryset.iterator(chunk_size=CHUNK):
        subject = context.subjects.get(subject_pk)
        if subject is None:
            continue
        record = _subject_columns(subject)
        code, visit_date = context.visits.get(visit_pk, ("", None))
        record.update(record_id=pk, visit=code or None, visit_date=visit_date,
                      study_day=context.study_day(subject, visit_date), last_saved=updated_at)
        record[_KEYS] = (subject_pk, visit_pk)
        for (name, _src), value in zip(sources, values, strict=True):
            if name in staff:
                value = context.users.get(value) if value is not None else None
            elif name == "missing_items":
                value = "; ".join(f"{k}={v}" for k, v in sorted((value or {}).items())) or None
            elif name in json_items:
                value = json.dumps(value, sort_keys=True, ensure_ascii=False) \
                    if value not in (None, {}, []) else None
            elif value == "":
                value = None
            record[name] = value
        yield subject, record


def _subjects(dataset: Dataset, context: ExportContext):
    arms = {}
    strata = {}
    slots = context.current(RandomizationSlot).filter(subject_id__isnull=False)
    if any(v.name == "arm" for v in dataset.variables):
        # Only an unblinded export reads the arm (``ExportContext`` checked the permission).
        arms = dict(slots.values_list("subject_id", "arm"))
    strata = dict(slots.values_list("subject_id", "stratum"))
    columns = ("status", "screened_at", "consented_at", "consent_signed_by",
               "consent_form_version", "age_at_consent", "screen_failure_criteria",
               "randomized_at", "randomization_number", "emergency_unblinded")
    queryset = (context.current(Subject).filter(id__in=context.subject_pks).order_by("id")
                .values_list("id", *columns))
    for pk, *values in queryset.iterator(chunk_size=CHUNK):
        subject = context.subjects[pk]
        record = _subject_columns(subject)
        record.update({k: (None if v == "" else v) for k, v in zip(columns, values, strict=True)})
        record["screen_failure_criteria"] = "; ".join(
            record["screen_failure_criteria"] or []) or None
        record["day1"] = subject.day1
        record["stratum"] = strata.get(pk)
        if arms:
            record["arm"] = arms.get(pk)
        yield subject, record


def _visits(dataset: Dataset, context: ExportContext):
    queryset = (context.current(Visit).filter(subject_id__in=context.subject_pks)
                .order_by("subject_id", "window_start", "sequence", "id")
                .values_list("subject_id", "code", "sequence", "planned_date", "window_start",
                             "window_end", "actual_date", "is_missed", "missed_reason"))
    for (subject_pk, code, sequence, planned_date, window_start, window_end, actual_date,
         is_missed, missed_reason) in queryset.iterator(chunk_size=CHUNK):
        subject = context.subjects.get(subject_pk)
        if subject is None:
            continue
        record = _subject_columns(subject)
        record.update(visit=code, sequence=sequence, planned_date=planned_date,
                      window_start=window_start, window_end=window_end, visit_date=actual_date,
                      study_day=context.study_day(subject, actual_date),
                      is_missed=is_missed, missed_reason=missed_reason or None)
        yield subject, record


def _queries(dataset: Dataset, context: ExportContext):
    from forms.quality.queries import Query

    queryset = (context.current(Query).filter(subject_id__in=context.subject_pks)
                .order_by("id")
                .values_list("id", "subject_id", "visit_id", "crf_code", "object_id",
                             "field_name", "check_code", "status", "text", "raised_by_id",
                             "raised_at", "answered_at", "closed_at", "closed_by_id",
                             "resolution"))
    for (pk, subject_pk, visit_pk, crf_code, object_id, field_name, check_code, status, text,
         raised_by_id, raised_at, answered_at, closed_at, closed_by_id,
         resolution) in queryset.iterator(chunk_size=CHUNK):
        subject = context.subjects.get(subject_pk)
        if subject is None:
            continue
        record = _subject_columns(subject)
        code, _date = context.visits.get(visit_pk, ("", None))
        record.update(
            query_id=pk, visit=code or None, crf=crf_code or None, record_id=object_id,
            item=field_name or None, check_code=check_code or None, status=status, text=text,
            raised_by=context.users.get(raised_by_id), raised_at=raised_at,
            answered_at=answered_at, closed_at=closed_at,
            closed_by=context.users.get(closed_by_id), resolution=resolution or None,
        )
        yield subject, record


def _query_messages(dataset: Dataset, context: ExportContext):
    from forms.quality.queries import Query, QueryMessage

    queries = context.current(Query).filter(subject_id__in=context.subject_pks)
    query_subjects = dict(queries.values_list("id", "subject_id"))
    queryset = (context.current(QueryMessage).filter(query_id__in=queries.values("id"))
                .order_by("query_id", "at", "id")
                .values_list("id", "query_id", "kind", "author_id", "at", "text"))
    for pk, query_pk, kind, author_id, at, text in queryset.iterator(chunk_size=CHUNK):
        subject = context.subjects.get(query_subjects[query_pk])
        if subject is None:
            continue
        yield subject, _subject_columns(subject) | {
            "query_id": query_pk, "message_id": pk, "kind": kind,
            "author": context.users.get(author_id), "at": at, "text": text or None,
        }


_SUBJECT_COLUMNS = ("screening_number", "subject_id", "subject_key", "site")
_TRAIL_COLUMNS = ("time", "user", "action", "record_type", "record_id", "record", "field",
                  "old_value", "new_value", "reason", "channel")


def _audit_trail(dataset: Dataset, context: ExportContext):
    """(subject, row) of the audit trail: the rows are tuples in the dataset's order already
    (its hundreds of thousands of rows skip the record dictionary of the other datasets)."""
    from forms.review.audit_sources import ALLOCATION, CLINICAL, SOURCES, may_view_audit
    from forms.review.audit_stream import audit_rows_by_record

    # Direct identifiers never leave in an export; the allocation's history only in an
    # unblinded one.
    gates = {CLINICAL, ALLOCATION} if context.profile == Profile.UNBLINDED else {CLINICAL}
    keys = {source.key for source in SOURCES if source.gate in gates}
    if not may_view_audit(context.user):
        return
    until = context.as_of + dt.timedelta(microseconds=1) if context.as_of else None
    # A variable of neither kind would be empty: the last (None) of the combined values.
    order = (*_SUBJECT_COLUMNS, *_TRAIL_COLUMNS)
    positions = [order.index(name) if name in order else len(order) for name in dataset.names]
    pick = operator.itemgetter(*positions)
    if len(positions) == 1:
        pick = (lambda one: lambda values: (one(values),))(pick)
    subjects = context.subjects
    prefixes: dict[int, tuple] = {}
    for row in audit_rows_by_record(user=context.user, until=until, keys=keys):
        prefix = prefixes.get(row.subject_pk)
        if prefix is None:
            subject = subjects.get(row.subject_pk)
            if subject is None:
                continue
            columns = _subject_columns(subject)
            prefix = prefixes[row.subject_pk] = tuple(columns[n] for n in _SUBJECT_COLUMNS)
        yield subjects[row.subject_pk], pick((
            *prefix, row.when, row.who, row.action, row.model, row.record_pk, row.record,
            row.field, row.old_value or None, row.new_value or None, row.reason or None,
            row.channel or None, None))


_BUILDERS = {
    "subjects": _subjects,
    "visits": _visits,
    "queries": _queries,
    "query_messages": _query_messages,
}
# Builders that yield (subject, row) with the row a tuple in the dataset's order.
_TUPLE_BUILDERS = {
    "audit_trail": _audit_trail,
}


def is_date_type(type_: str) -> bool:
    return type_ in (DATE, DATETIME)
