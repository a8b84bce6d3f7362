"""What a save must know before it writes, asked in the statement that reads the saved form:
whether a lock is in force over the subject's data, whether a valid signature covers the
record, and whether the subject has system queries for the edit checks to reconcile. The
statements are built by the ORM once and kept (``edc.prepared``): a save asks them every
time."""

from django.db import models

from edc.prepared import PreparedQuery
from forms.models import CRF, CRF_MODELS
from forms.quality.checks.runner import reconciled_queries
from forms.review.locks import locks_over
from forms.review.signatures import signatures_covering
from visits.models import Subject


def cached(record: models.Model, name: str) -> bool:
    return record._meta.get_field(name).is_cached(record)


# Whether any lock is in force over the subject's data, whether a valid signature covers the
# record, and whether the subject has system queries for the edit checks to reconcile: asked
# in the same statement that reads the saved form FOR UPDATE, so that a save of an unlocked,
# unsigned form of a subject without queries (most of them) reads none of those tables again.
LOCKED, SIGNED, QUERIED = "locks_in_force", "signatures_in_force", "system_queries_in_force"


def with_guards(queryset: models.QuerySet, subject: Subject) -> models.QuerySet:
    return queryset.annotate(**{
        LOCKED: models.Exists(locks_over(subject)),
        SIGNED: models.Exists(signatures_covering(models.OuterRef("subject_id"),
                                                  models.OuterRef("visit_id"))),
        QUERIED: models.Exists(reconciled_queries(models.OuterRef("subject_id"))),
    })


def _guarded_read(model: type[CRF]) -> PreparedQuery:
    """A saved form of a subject, by its key or its visit (the first), read locked with its
    guards."""
    def build(subject_id: int, site_id: int, pk: int | None, visit_id: int | None):
        queryset = model.objects.filter(subject_id=subject_id).select_for_update()
        queryset = queryset.filter(pk=pk) if visit_id is None else \
            queryset.filter(visit_id=visit_id).order_by("pk")[:1]
        return with_guards(queryset, Subject(pk=subject_id, site_id=site_id))
    return PreparedQuery(build)


_GUARDED_READ = {model.crf_code: _guarded_read(model) for model in CRF_MODELS.values()}


def guarded_read(model: type[CRF], subject: Subject, *, pk: int | None = None,
                 visit_id: int | None = None) -> CRF | None:
    """The subject's saved form ``pk`` (or the first of visit ``visit_id``), read locked with
    its guards; DoesNotExist when ``pk`` is not the subject's, None when the visit has none."""
    found = next(iter(_GUARDED_READ[model.crf_code].instances(
        subject_id=subject.pk, site_id=subject.site_id, pk=pk,
        visit_id=None if pk is not None else visit_id)), None)
    if found is None and pk is not None:
        raise model.DoesNotExist(f"{model.__name__} {pk} of subject {subject.pk}")
    return found


def _guard(crf: CRF, name: str) -> bool:
    """A guard of ``with_guards`` (True, so read the table, when the form was not read with
    them: a new form)."""
    return getattr(crf, name, True) if crf.pk is not None else True


def guards_for(crf: CRF, subject: Subject) -> dict[str, bool]:
    """The guards of ``with_guards`` for this save: those read with the saved form, or, for
    a new form, all three asked in one statement (instead of reading the locks, the
    signatures and the system queries, mostly to find none)."""
    if crf.pk is not None:
        return {name: _guard(crf, name) for name in (LOCKED, SIGNED, QUERIED)}
    return subject_guards(subject, crf.visit_id)


def _guards_query(*, signed: bool) -> PreparedQuery:
    def build(subject_id: int, site_id: int, visit_id: int | None) -> models.QuerySet:
        guards = {LOCKED: models.Exists(locks_over(Subject(pk=subject_id, site_id=site_id))),
                  QUERIED: models.Exists(reconciled_queries(subject_id))}
        if signed:
            guards[SIGNED] = models.Exists(signatures_covering(subject_id, visit_id))
        return Subject.objects.filter(pk=subject_id).annotate(**guards).values_list(*guards)
    return PreparedQuery(build)


# Asked before every first save of a form: built and compiled by the ORM once.
_SUBJECT_GUARDS = {True: _guards_query(signed=True), False: _guards_query(signed=False)}


def subject_guards(subject: Subject, visit_id: int | None, *, signed: bool = True
                   ) -> dict[str, bool]:
    """Whether a lock is in force over the subject's data, a valid signature covers its
    ``visit_id`` (or its logs: None) and the subject has system queries to reconcile, in one
    statement (the subject's own row carries the answers)."""
    found = _SUBJECT_GUARDS[signed].first(subject_id=subject.pk, site_id=subject.site_id,
                                          visit_id=visit_id if signed else None)
    if found is None:
        raise Subject.DoesNotExist(f"subject {subject.pk}")
    names = (LOCKED, QUERIED, SIGNED) if signed else (LOCKED, QUERIED)
    return dict(zip(names, map(bool, found), strict=True))


def relock(crf: CRF, subject: Subject) -> CRF:
    """The saved row read again, locked until the transaction ends (its subject and visit
    objects kept: a save changes neither), with its guards (``with_guards``)."""
    fresh = guarded_read(type(crf), subject, pk=crf.pk)
    for name in ("subject", "visit"):
        if cached(crf, name) and getattr(fresh, f"{name}_id") == getattr(crf, f"{name}_id"):
            setattr(fresh, name, getattr(crf, name))
    return fresh
