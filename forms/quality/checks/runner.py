"""Running the edit checks: hard checks before a save, soft checks after it, and re-runs over
the whole database. Opening and closing system queries is idempotent: a failure that already
has an open query gets no second one; a query whose failure is gone closes itself ("resolved by
data change")."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q, QuerySet

from edc.i18n import neutral
from edc.prepared import PreparedQuery
from forms.models import CRF_MODELS
from forms.quality.checks import ALL_CHECKS, HARD, KITS, SOFT, VISIT, Check, SubjectData
from forms.quality.queries import (
    ACTIVE_STATUSES,
    Query,
    Resolution,
    query_close_system,
    query_open_system,
)
from forms.review.locks import SubjectLocks
from visits.models import Subject


def load_subject_data(subject: Subject, *, forms: Iterable[str] | None = None,
                      visits: bool = True, kits: bool = True,
                      later: Iterable[str] = ()) -> SubjectData:
    """The subject's saved records: one query per CRF table read (every table by default),
    one for the visits and one for the kits when asked. Visits already prefetched on
    ``subject`` are used as they are. The forms in ``later`` are read when a check first
    asks for them (``SubjectData.all``), if ever."""
    data = SubjectData(subject=subject, visits={})
    if visits:
        data.visits = {visit.pk: visit for visit in subject.visits.all()}
    if kits:
        data.kits = {kit.infusion_number: kit.kit_number for kit in subject.kits.all()}
    codes = CRF_MODELS if forms is None else [code for code in CRF_MODELS if code in forms]
    for code in codes:
        data.forms[code] = _stored(subject, code)
    for code in later:
        if code in CRF_MODELS and code not in data.forms:
            data.later[code] = partial(_stored, subject, code)
    return data


def _records_of(model):
    return PreparedQuery(lambda subject_id: model.objects.filter(subject_id=subject_id)
                         .order_by("pk"))


# A save runs its checks over the records of the forms they read: each table's query
# compiled once (edc.prepared).
_RECORDS = {code: _records_of(model) for code, model in CRF_MODELS.items()}


def _stored(subject: Subject, code: str) -> list:
    return _RECORDS[code].instances(subject_id=subject.pk)


@dataclass(frozen=True)
class Planned:
    """A check to run after a change: over every record of its form, or only over the changed
    record (when the check reads nothing the change touched but that record)."""

    check: Check
    every_record: bool


def checks_for_change(form: str, *, visit_fields: Iterable[str] = (),
                      severity: str = SOFT) -> list[Planned]:
    """The checks whose result a change can alter: those of the changed form (``VISIT`` for a
    visit) on the changed record, and, on every record of their form, those that read the
    changed form or one of the changed visit fields (``Check.reads``, ``Check.visit_fields``)."""
    changed_fields = frozenset(visit_fields)
    planned = []
    for check in ALL_CHECKS:
        if check.severity != severity:
            continue
        if form in check.reads or changed_fields & check.visit_fields:
            planned.append(Planned(check, every_record=True))
        elif check.form == form or (check.form == "*" and form != VISIT):
            planned.append(Planned(check, every_record=False))
    return planned


def _sources(planned: Iterable[Planned]) -> dict[str, Any]:
    """What ``load_subject_data`` must load for these checks."""
    forms: set[str] = set()
    visits = kits = False
    for item in planned:
        check = item.check
        forms |= check.reads - {KITS}
        kits = kits or KITS in check.reads
        visits = visits or bool(check.visit_fields)
        if item.every_record:
            if check.form == VISIT:
                visits = True
            elif check.form == "*":
                forms |= set(CRF_MODELS)
            else:
                forms.add(check.form)
    return {"forms": forms, "visits": visits, "kits": kits}


def _records(check: Check, data: SubjectData) -> Iterable:
    if check.form == VISIT:
        return data.visits.values()
    if check.form == "*":
        return [record for code in [*data.forms, *data.later] for record in data.all(code)]
    return data.all(check.form)


# (content type, record id, item, check code)
FailureKey = tuple[int, int, str, str]


def _evaluate(planned: Iterable[Planned], data: SubjectData, record: Any = None
              ) -> tuple[dict[FailureKey, tuple[Check, Any]], set[tuple[int, int, str]]]:
    """Every failure of the soft checks, and the (content type, record id, check code) they
    were run on: the scope of the queries to reconcile."""
    found: dict[FailureKey, tuple[Check, Any]] = {}
    scope: set[tuple[int, int, str]] = set()
    for item in planned:
        check = item.check
        for target in (_records(check, data) if item.every_record else [record]):
            content_type = ContentType.objects.get_for_model(target)
            scope.add((content_type.pk, target.pk, check.code))
            if getattr(target, "not_done_reason", ""):
                continue
            for name in check.failing(target, data):
                found[(content_type.pk, target.pk, name, check.code)] = (check, target)
    return found, scope


def soft_failures(data: SubjectData) -> dict[FailureKey, tuple[Check, object]]:
    """(content type, record id, item, check code) → (check, record) for every failure."""
    planned = [Planned(check, every_record=True) for check in ALL_CHECKS
               if check.severity == SOFT]
    return _evaluate(planned, data)[0]


@dataclass
class Report:
    opened: Counter = field(default_factory=Counter)
    closed: Counter = field(default_factory=Counter)
    subjects: int = 0

    def add(self, other: "Report") -> None:
        self.opened.update(other.opened)
        self.closed.update(other.closed)
        self.subjects += other.subjects

    def lines(self) -> list[str]:
        codes = sorted(set(self.opened) | set(self.closed))
        rows = [f"{code:<10} opened {self.opened[code]:>4}  closed {self.closed[code]:>4}"
                for code in codes]
        total = (f"{self.subjects} subjects checked: {sum(self.opened.values())} queries "
                 f"opened, {sum(self.closed.values())} closed")
        return [*rows, total]


def reconciled_queries(subject_id) -> QuerySet:
    """The system queries of a subject that a check run looks at: those in progress, and
    those a monitor or data manager closed (settled). ``subject_id`` may be an ``OuterRef``
    (``forms.entry.services`` asks whether any exists with its read of the form saved)."""
    return Query.objects.filter(subject_id=subject_id).exclude(check_code="").filter(
        Q(status__in=ACTIVE_STATUSES) | Q(resolution=Resolution.CLOSED_BY_RAISER))


_RECONCILED = PreparedQuery(reconciled_queries)


def _reconcile(subject: Subject, failures: dict[FailureKey, tuple[Check, Any]],
               scope: set[tuple[int, int, str]] | None = None,
               locks: SubjectLocks | None = None, *, queried: bool = True) -> Report:
    """Open a system query on each new failure, close those whose failure is gone. With a
    ``scope``, only the queries of the checks run on those records are looked at.
    ``queried=False``: the caller found, in this transaction, that the subject has no
    ``reconciled_queries``: none is read."""
    report = Report(subjects=1)
    # The subject's few system queries, read with SQL compiled once; those of checks that
    # did not run are passed over below.
    queries = _RECONCILED.instances(subject_id=subject.pk) if queried else []
    existing: dict[FailureKey, Query] = {}
    # A failure a monitor or data manager already closed (the value was confirmed as right)
    # is not queried again.
    settled: set[FailureKey] = set()
    for query in queries:
        key = (query.content_type_id, query.object_id, query.field_name, query.check_code)
        if scope is not None and key[:2] + key[3:] not in scope:
            continue
        if query.status in ACTIVE_STATUSES:
            existing[key] = query
        else:
            settled.add(key)
    for key, (check, record) in failures.items():
        if key in existing or key in settled:
            continue
        if locks is None:
            locks = SubjectLocks.of(subject)
        if locks.covers(record):  # locked forms take no new queries
            continue
        # The queries in progress of this check were read above: none for this failure.
        _query, created = query_open_system(target=record, field_name=key[2],
                                            check_code=check.code, text=neutral(check.message),
                                            subject=subject, looked_up=True)
        if created:
            report.opened[check.code] += 1
    for key, query in existing.items():
        if key not in failures:
            query_close_system(query=query)
            report.closed[query.check_code] += 1
    return report


@transaction.atomic
def checks_apply(subject: Subject) -> Report:
    """Run every soft check over one subject's data and reconcile the system queries."""
    subject = Subject.objects.select_related("site").get(pk=subject.pk)
    data = load_subject_data(subject)
    return _reconcile(subject, soft_failures(data))


@dataclass
class CheckRun:
    """The edit checks one change runs, over the subject's data loaded once (only the forms
    those checks read): the hard checks before the save, the soft checks after it, the saved
    record replacing its stored copy in memory."""

    subject: Subject
    form: str
    hard: list[Planned]
    soft: list[Planned]
    data: SubjectData
    locks: SubjectLocks | None = None

    @classmethod
    def for_change(cls, subject: Subject, form: str, *, visit_fields: Iterable[str] = (),
                   locks: SubjectLocks | None = None) -> "CheckRun":
        """``subject`` with its site loaded; its prefetched visits are used when read."""
        hard = [Planned(check, every_record=False) for check in ALL_CHECKS
                if check.severity == HARD and check.form in (form, "*") and form != VISIT]
        soft = checks_for_change(form, visit_fields=visit_fields)
        sources = _sources([*hard, *soft])
        # The changed form is read now, so that the record saved replaces its stored copy;
        # the others when a check first asks for them.
        sources["later"] = sources["forms"] - {form}
        sources["forms"] &= {form}
        data = load_subject_data(subject, **sources)
        return cls(subject=subject, form=form, hard=hard, soft=soft, data=data, locks=locks)

    def hard_errors(self, record) -> dict[str, list[str]]:
        """Errors from the hard checks of the record about to be saved, by item."""
        self.data.keep(record)
        errors: dict[str, list[str]] = {}
        for item in self.hard:
            for name in item.check.failing(record, self.data):
                errors.setdefault(name, []).append(str(item.check.message))
        return errors

    def apply(self, record, *, queried: bool = True) -> Report:
        """After the save of ``record``: the soft checks, and the system queries reconciled
        for the checks that ran (on the records they ran on). ``queried=False``: the subject
        has no system query to reconcile (asked by the caller in this transaction)."""
        self.data.keep(record)
        failures, scope = _evaluate(self.soft, self.data, record)
        return _reconcile(self.subject, failures, scope, self.locks, queried=queried)


def checks_rerun(subject_ids: Iterable[int] | None = None) -> Report:
    """Every check over every subject (after a check changed): idempotent."""
    subjects = Subject.objects.exclude(consented_at=None).order_by("pk")
    if subject_ids is not None:
        subjects = subjects.filter(pk__in=list(subject_ids))
    report = Report()
    for subject in subjects.iterator():
        report.add(checks_apply(subject))
    return report
