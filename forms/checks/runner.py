"""Running the edit checks: hard checks before a save, soft checks after it, and re-runs over
the whole database. Opening and closing system queries is idempotent: a failure that already
has an open query gets no second one; a query whose failure is gone closes itself ("resolved by
data change")."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from forms.checks import ALL_CHECKS, HARD, SOFT, VISIT, Check, SubjectData, checks_for
from forms.locks import active_lock
from forms.models import CRF_MODELS
from forms.queries import (
    Query,
    Resolution,
    open_system_queries,
    query_close_system,
    query_open_system,
)
from visits.models import Subject, Visit


def load_subject_data(subject: Subject) -> SubjectData:
    """Every saved record of the subject: one query per CRF table."""
    data = SubjectData(
        subject=subject,
        visits={visit.pk: visit for visit in subject.visits.all()},
        kits={kit.infusion_number: kit.kit_number for kit in subject.kits.all()},
    )
    for code, model in CRF_MODELS.items():
        data.forms[code] = list(model.objects.filter(subject=subject).order_by("pk"))
    return data


def hard_check_errors(crf) -> dict[str, list[str]]:
    """Errors from the library's hard checks for this form, by item."""
    checks = checks_for(crf.crf_code, HARD)
    if not checks:
        return {}
    data = load_subject_data(crf.subject)
    errors: dict[str, list[str]] = {}
    for check in checks:
        for name in check.failing(crf, data):
            errors.setdefault(name, []).append(str(check.message))
    return errors


def _records(check: Check, data: SubjectData) -> Iterable:
    if check.form == VISIT:
        return data.visits.values()
    if check.form == "*":
        return [record for records in data.forms.values() for record in records]
    return data.all(check.form)


def soft_failures(data: SubjectData) -> dict[tuple[int, int, str, str], tuple[Check, object]]:
    """(content type, record id, item, check code) → (check, record) for every failure."""
    found = {}
    for check in ALL_CHECKS:
        if check.severity != SOFT:
            continue
        for record in _records(check, data):
            if getattr(record, "not_done_reason", ""):
                continue
            content_type = ContentType.objects.get_for_model(record)
            for name in check.failing(record, data):
                found[(content_type.pk, record.pk, name, check.code)] = (check, record)
    return found


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


def _locked(subject: Subject, record) -> bool:
    """Locked forms take no new queries."""
    if isinstance(record, Visit):
        return active_lock(subject=subject, visit=record) is not None
    return active_lock(subject=subject, visit=record.visit, record=record) is not None


@transaction.atomic
def checks_apply(subject: Subject) -> Report:
    """Run every soft check over one subject's data and reconcile the system queries."""
    subject = Subject.objects.select_related("site").get(pk=subject.pk)
    data = load_subject_data(subject)
    failures = soft_failures(data)
    report = Report(subjects=1)
    existing = {
        (q.content_type_id, q.object_id, q.field_name, q.check_code): q
        for q in open_system_queries(subject_ids=[subject.pk])
    }
    # A failure a monitor or data manager already closed (the value was confirmed as right)
    # is not queried again.
    settled = set(
        Query.objects.filter(subject=subject, resolution=Resolution.CLOSED_BY_RAISER)
        .exclude(check_code="")
        .values_list("content_type_id", "object_id", "field_name", "check_code")
    )
    for key, (check, record) in failures.items():
        if key not in existing and key not in settled and not _locked(subject, record):
            _query, created = query_open_system(target=record, field_name=key[2],
                                                check_code=check.code, text=str(check.message))
            if created:
                report.opened[check.code] += 1
    for key, query in existing.items():
        if key not in failures:
            query_close_system(query=query)
            report.closed[query.check_code] += 1
    return report


def checks_rerun(subject_ids: Iterable[int] | None = None) -> Report:
    """Every check over every subject (after a check changed): idempotent."""
    subjects = Subject.objects.exclude(consented_at=None).order_by("pk")
    if subject_ids is not None:
        subjects = subjects.filter(pk__in=list(subject_ids))
    report = Report()
    for subject in subjects.iterator():
        report.add(checks_apply(subject))
    return report
