"""Every write to case report forms (randomization, which needs the eligibility CRF, is in
``forms.entry.services``).

``crf_save`` is the one path by which clinical data change: it checks the user's role and site,
that consent exists, that nobody saved the form since it was opened (optimistic locking), the
hard checks, the required items when completing, and that a change to a form once complete
gives a reason; it then derives the computed items and saves with the author and reason on
the history row, and counts a form's new status in its visit's form counts (``forms.tally``,
read by the dashboard), all in one transaction.
"""

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds, protocol
from edc.audit import chain_batch
from edc.history import audited_save
from edc.models import User
from edc.roles import Action, can
from edc.validation import changed_fields, field_values
from forms.entry.guards import (
    LOCKED,
    QUERIED,
    SIGNED,
    cached,
    guarded_read,
    guards_for,
    relock,
    subject_guards,
    with_guards,
)
from forms.models import (
    CRF,
    CRFStatus,
    Demographics,
    LabPanel,
    Missing,
)
from forms.models.base import EditConflict, SDVStatus
from forms.models.labs import reference_ranges
from forms.quality.checks import VISIT
from forms.quality.checks.runner import CheckRun
from forms.review.locks import SubjectLocks
from forms.review.signatures import signatures_break
from forms.tally import tally_form_saved
from forms.tasks import sae_saved
from visits import schedule
from visits import services as visit_services
from visits.models import Subject, SubjectIdentity, Visit


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _date_errors(crf: CRF, subject: Subject) -> dict[str, list[str]]:
    """Dates outside their plausible span: before the trial (or before 1900 for a date that
    may precede it, ``CRF.historic_items``), or in the future unless the item is planned."""
    now = timezone.now()
    today = schedule.local_date(now, subject.site.zone)
    errors: dict[str, list[str]] = {}
    for field in crf._meta.concrete_fields:
        value = getattr(crf, field.attname)
        if (value is None or field.name in ("created_at", "updated_at", "verified_at")
                or not isinstance(field, models.DateField)):
            continue
        early = bounds.date_span_error(value, earliest=crf.earliest_date(field.name))
        if early:
            errors[field.name] = [early]
        elif field.name in crf.future_items:
            continue
        elif isinstance(field, models.DateTimeField) and value > now:
            errors[field.name] = [_("A date and time in the future is not possible.")]
        elif not isinstance(field, models.DateTimeField) and value > today:
            errors[field.name] = [_("A date in the future is not possible.")]
    return errors


def _save_or_conflict(crf: CRF, *, is_new: bool, **save) -> None:
    """Save; a first save that loses the race to another first save of the same form (both
    opened it empty) is an edit conflict, like a later save on a stale version.

    The second INSERT waits for the first transaction and then violates the form's
    one-per-visit (or one-per-subject) constraint; the savepoint keeps this transaction usable
    to read the row that won, which the view shows beside the user's input."""
    try:
        audited_save(crf, savepoint=True, **save)
    except IntegrityError:
        current = _saved_twin(crf) if is_new else None
        if current is None:
            raise
        raise EditConflict(current) from None


def _saved_twin(crf: CRF) -> CRF | None:
    """The saved record that a unique constraint says ``crf`` duplicates, if any."""
    model = type(crf)
    for constraint in model._meta.constraints:
        if not (isinstance(constraint, models.UniqueConstraint) and constraint.fields
                and constraint.condition is None):
            continue
        values = {name: getattr(crf, name) for name in constraint.fields}
        if any(value is None for value in values.values()):
            continue  # NULLs never collide
        found = model.objects.filter(**values).exclude(pk=crf.pk).first()
        if found is not None:
            return found
    return None


def crf_instance(*, model: type[CRF], subject: Subject, visit: Visit | None = None,
                 pk: int | None = None, slot: str = "", for_update: bool = False) -> CRF:
    """The saved form for this subject and visit (or log entry ``pk``), or a new unsaved one.
    A form entered several times per visit (PK/PD) is also identified by its ``slot`` (the
    time point). ``for_update`` locks the saved row until the transaction ends (a save
    follows: ``crf_save(..., locked=True)``)."""
    slot_filter = {model.slot_item: slot} if model.slot_item else {}
    if for_update:
        # Before the form's row: a signature in progress is waited for, and seen.
        visit_services.subject_hold(subject.pk)
    found = _read(model, subject, visit, pk, slot_filter, for_update=for_update)
    if found is None:
        found = model(subject=subject, visit=visit, **slot_filter)
    else:
        found.subject = subject
        if visit is not None and found.visit_id == visit.pk:
            found.visit = visit
    found._subject_held = for_update
    return found


def _read(model: type[CRF], subject: Subject, visit: Visit | None, pk: int | None,
          slot_filter: dict, *, for_update: bool) -> CRF | None:
    if for_update and (pk is not None or (visit is not None and not slot_filter)):
        # The page's read before every save: SQL compiled once per form (edc.prepared).
        found = guarded_read(model, subject, pk=pk, visit_id=visit.pk if visit else None)
    else:
        queryset = model.objects.filter(subject=subject)
        if for_update:
            queryset = with_guards(queryset.select_for_update(), subject)
        if pk is not None:
            found = queryset.get(pk=pk)
        else:
            found = (queryset.filter(visit=visit, **slot_filter).first()
                     if visit is not None else None)
    return found


def _sample_date(labs: LabPanel, subject: Subject) -> dt.date:
    return (schedule.local_date(labs.sampled_at, subject.site.zone) if labs.sampled_at
            else timezone.localdate(timezone.now(), subject.site.zone))


def age_on(subject: Subject, day: dt.date) -> int | None:
    """The subject's age in completed years on ``day``, from the birth date kept with the
    identifiers (read here, never shown); the age at consent when no birth date is recorded.
    Raises ValidationError when ``day`` is before the birth date."""
    birth_date = (SubjectIdentity.objects.filter(subject_id=subject.pk)
                  .values_list("birth_date", flat=True).first())
    if birth_date is None:
        return subject.age_at_consent
    if day < birth_date:
        raise ValidationError(
            {"sampled_at": _("The sample date is before the subject's date of birth.")})
    return schedule.age_in_years(birth_date, day)


def lab_egfr_basis(labs: LabPanel, subject: Subject) -> tuple[str | None, int | None]:
    """The sex and the age on the sample date that a panel's eGFR is computed with."""
    sex = Demographics.objects.filter(subject=subject).values_list("sex", flat=True).first()
    return sex or None, age_on(subject, _sample_date(labs, subject))


def crf_derive(crf: CRF) -> None:
    """Compute the derived items. Labs need the site lab's ranges on the sample date and the
    subject's sex and age on that date; every other form derives from its own items."""
    if isinstance(crf, LabPanel):
        subject = crf.subject
        sex, age = lab_egfr_basis(crf, subject)
        ranges = reference_ranges(subject.site, sex or "", _sample_date(crf, subject))
        crf.apply_reference(ranges=ranges, sex=sex, age=age)
    else:
        crf.derive()


def _snapshot(crf: CRF) -> dict[str, Any]:
    return {name: getattr(crf, name) for name in crf.item_names()} | {
        "missing_items": crf.missing_items, "not_done_reason": crf.not_done_reason,
    }


def _subject_of(crf: CRF, *, locked: bool) -> Subject:
    """The subject with its site: the one the caller read in this transaction (``locked``),
    else read afresh."""
    if locked and cached(crf, "subject") and crf.subject.pk is not None \
            and cached(crf.subject, "site"):
        return crf.subject
    return Subject.objects.select_related("site").get(pk=crf.subject_id)


def crf_save(
    *,
    crf: CRF,
    values: dict[str, Any],
    user: User,
    expected_version: int,
    complete: bool = False,
    missing_items: dict[str, str] | None = None,
    not_done_reason: str = "",
    reason: str = "",
    locked: bool = False,
    imported: bool = False,
) -> CRF:
    """``locked``: the caller read ``crf`` with ``crf_instance(for_update=True)`` in the
    transaction this save runs in (the view), so it is current and needs no second read.
    ``imported``: the values come from a file or the API (``api.imports``), which a user who
    may import data (a data manager) writes as well as one who enters data."""
    with visit_services.current_transaction():
        return _crf_save(crf=crf, values=values, user=user, expected_version=expected_version,
                         complete=complete, missing_items=missing_items,
                         not_done_reason=not_done_reason, reason=reason,
                         locked=locked and transaction.get_connection().in_atomic_block,
                         imported=imported)


def _crf_save(*, crf: CRF, values: dict[str, Any], user: User, expected_version: int,
              complete: bool, missing_items: dict[str, str] | None, not_done_reason: str,
              reason: str, locked: bool, imported: bool = False) -> CRF:
    subject = _subject_of(crf, locked=locked)
    if not (can(user, Action.ENTER_DATA, subject.site)
            or (imported and can(user, Action.IMPORT_DATA, subject.site))):
        raise PermissionDenied(_("Your role does not allow data entry at this site."))
    reason = bounds.text_input(reason, limit=bounds.REASON, field="reason")
    if not subject.has_consented:
        raise ValidationError(
            _("No clinical data can be saved for a subject before informed consent is recorded.")
        )
    model = type(crf)
    if not (locked and getattr(crf, "_subject_held", False)):
        # Before the form's row and its guards (``visits.services.subject_hold``).
        visit_services.subject_hold(subject.pk)
    if crf.pk:
        if not locked:
            crf = relock(crf, subject)
        if crf.version != expected_version:
            raise EditConflict(crf)
    elif expected_version != 0:
        raise EditConflict(crf)
    elif (not locked and not protocol.crf(model.crf_code).is_log
          and (twin := _saved_twin(crf)) is not None):
        # The visit's form was opened empty, but someone's first save has committed since.
        # (The caller that read it in this transaction, ``locked``, looked for it then. A
        # second entry of a one-per-subject log, such as a death report, is refused by
        # validation instead: it duplicates a record, it does not race one.)
        raise EditConflict(twin)
    # The guards came with the saved form's locked read (``guards.with_guards``); a new form's
    # are asked here; the locks are read only when one is in force.
    guards = guards_for(crf, subject)
    locks = SubjectLocks.of(subject) if guards[LOCKED] else SubjectLocks.none(subject)
    locks.refuse(crf)
    crf.subject = subject
    before = _snapshot(crf) if crf.pk else None
    status_before = crf.status if crf.pk else None
    stored = field_values(crf) if crf.pk else None
    checks = CheckRun.for_change(subject, model.crf_code, locks=locks)

    entry = set(model.entry_items())
    for name, value in values.items():
        if name in entry:
            setattr(crf, name, value)
    allowed_reasons = set(Missing.values)
    crf.missing_items = {
        name: why for name, why in (missing_items or {}).items()
        if name in entry and why in allowed_reasons
    }
    crf.not_done_reason = not_done_reason if not_done_reason in allowed_reasons else ""

    errors: dict[str, list[str]] = {}
    for name in crf.missing_items:
        if not _is_blank(getattr(crf, name)):
            errors.setdefault(name, []).append(
                _("An item with a value cannot also be marked as missing.")
            )
    for found in (_date_errors(crf, subject), crf.hard_errors(), checks.hard_errors(crf)):
        for name, messages in found.items():
            errors.setdefault(name, []).extend(str(m) for m in messages)
    if complete and not crf.not_done_reason:
        for name in crf.required_for_completion():
            if _is_blank(getattr(crf, name)) and name not in crf.missing_items:
                errors.setdefault(name, []).append(
                    _("Required to complete the form: enter a value or mark it missing.")
                )
    if errors:
        raise ValidationError(errors)

    crf_derive(crf)
    changed = before is not None and before != _snapshot(crf)
    if crf.ever_completed and changed and not reason.strip():
        raise ValidationError(
            {"reason": _("This form was complete: give the reason for the change.")}
        )
    if changed and (crf.sdv_status == SDVStatus.VERIFIED or crf.verified_fields):
        crf.sdv_status = SDVStatus.CHANGED  # forms.quality.sdv: verified data changed
    crf.status = CRFStatus.COMPLETE if complete else CRFStatus.IN_PROGRESS
    crf.ever_completed = crf.ever_completed or complete
    crf.version += 1
    # The subject and visit were set here, not typed, and their rows exist (foreign keys):
    # not read again. An update changes neither, nor the time point: their unique
    # constraints (one per visit, per subject, per time point) hold.
    # The constraints over the items changed (all of them on a first save). A second entry
    # of a one-per-subject log (a death report) is refused here; the twin of a visit's form
    # was looked for above, and a race is caught by the insert.
    save = {"user": user, "reason": reason, "exclude": ["subject", "visit"],
            "constraints": "all" if stored is None else changed_fields(crf, stored),
            "unique": stored is None and protocol.crf(model.crf_code).is_log}

    def after_save() -> None:
        tally_form_saved(crf, was=status_before)
        sae_saved(crf)
        if (before is None or changed) and guards[SIGNED]:
            signatures_break(crf=crf, user=user)
        checks.apply(crf, queried=guards[QUERIED])

    # From the first write on, a failure dooms the whole transaction (no savepoint): nothing
    # half-saved is ever committed, even by a caller that goes on after an error. The
    # history rows written from here (the form's, a broken signature's, the queries') are
    # linked in the audit chain together at the end (``chain_batch``).
    if before is None:
        # Its own savepoint: a first save that lost the race leaves nothing written.
        _save_or_conflict(crf, is_new=True, **save)
        with transaction.atomic(savepoint=False), chain_batch():
            after_save()
    else:
        # The row is locked and no key of it changes: no race to catch.
        audited_save(crf, **save, then=after_save)
    return crf


def _visit_change(visit: Visit, change, written: tuple[str, ...]) -> Visit:
    """Apply ``change`` to an unlocked visit, then run the edit checks of the visit record
    and those that read the fields it wrote. The subject's visits already read with it
    (a page's) are reused, the changed one replaced."""
    subject = visit.subject
    if not cached(subject, "site"):
        subject = Subject.objects.select_related("site").get(pk=subject.pk)
    guards = subject_guards(subject, visit.pk, signed=False)
    locks = SubjectLocks.of(subject) if guards[LOCKED] else SubjectLocks.none(subject)
    locks.refuse(visit)
    saved = change()
    # After the write: an error dooms the transaction (no savepoint), as in crf_save.
    with transaction.atomic(savepoint=False):
        CheckRun.for_change(subject, VISIT, visit_fields=written, locks=locks).apply(
            saved, queried=guards[QUERIED])
    return saved


# In the caller's transaction without a savepoint (``current_transaction``): a refusal comes
# before the first write; the visit service dooms the transaction on an error after it.
def visit_record(*, visit: Visit, actual_date: dt.date, user: User, reason: str = "") -> Visit:
    """Record a visit date and run the edit checks that read it (window, sample dates)."""
    with visit_services.current_transaction():
        return _visit_change(visit, lambda: visit_services.visit_record_date(
            visit=visit, actual_date=actual_date, user=user, reason=reason),
            ("actual_date", "is_missed", "missed_reason"))


def visit_missed(*, visit: Visit, reason: str, user: User) -> Visit:
    with visit_services.current_transaction():
        return _visit_change(visit, lambda: visit_services.visit_mark_missed(
            visit=visit, reason=reason, user=user), ("is_missed", "missed_reason"))
