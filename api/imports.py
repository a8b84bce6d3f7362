"""Importing records (REDCap's flat layout) through ``crf_save``, all or nothing.

Each row names its record (the screening number), its event and, for a repeating form, the
instrument and instance. Its values go through the CRF's entry form (the same parsing and
bounds as the web page) and then ``forms.services.crf_save``: the hard checks refuse, the
soft checks open queries, a change to a form once complete needs a reason, locked data are
refused, the role and sites are checked. One refused row refuses the whole import: nothing is
written. A dry run reports what each row would do and writes nothing.

A row whose values equal what is stored changes nothing (no history row, no new version), so
loading the same file twice changes nothing the second time. With ``overwriteBehavior=normal``
(the default) an empty cell leaves the stored value; with ``overwrite`` it empties it.
New records (subjects) are not created by import: a patient is screened in the EDC.
"""

from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from api import redcap
from edc.models import User
from edc.roles import scope_to_user
from forms.entry import services
from forms.entry.crf_forms import MISSING_PREFIX, crf_form_class, initial_for
from forms.models import CRFStatus
from visits.models import Subject

CREATE, UPDATE, UNCHANGED, REFUSE = "create", "update", "unchanged", "refuse"
REASON_COLUMN = "reason_for_change"
_KEY_COLUMNS = {redcap.RECORD_FIELD, "redcap_event_name", "redcap_repeat_instrument",
                "redcap_repeat_instance", REASON_COLUMN}


@dataclass
class RowResult:
    """What one row of the file does to one form."""

    number: int  # 1-based row of the data (the header is not counted)
    record: str
    event: str
    form: str = ""
    instance: str = ""
    outcome: str = REFUSE
    messages: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    rows: list[RowResult]
    written: bool

    @property
    def refused(self) -> list[RowResult]:
        return [r for r in self.rows if r.outcome == REFUSE]

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def records(self) -> list[str]:
        """Records written (or that would be), in file order."""
        seen: dict[str, None] = {}
        for r in self.rows:
            if r.outcome in (CREATE, UPDATE):
                seen.setdefault(r.record)
        return list(seen)

    def error_text(self) -> str:
        return "; ".join(
            f"record {r.record}, event {r.event or '?'}"
            + (f", form {r.form}" if r.form else "") + f" (row {r.number}): "
            + " ".join(r.messages) for r in self.refused)

    def counts(self) -> dict[str, int]:
        result = {CREATE: 0, UPDATE: 0, UNCHANGED: 0, REFUSE: 0}
        for r in self.rows:
            result[r.outcome] += 1
        return result


class _Refused(Exception):
    pass


def _boolean(text: str, *, nullable: bool) -> str | bool:
    value = {"1": True, "0": False, "true": True, "false": False, "yes": True,
             "no": False}.get(text.strip().lower())
    if value is None:
        raise ValueError("must be 1 (yes) or 0 (no)")
    return str(value) if nullable else value


def _form_data(crf, inst: redcap.Instrument, given: dict[str, str], *, overwrite: bool,
               zone) -> tuple[dict, list[str], list[str]]:
    """The entry form's data: the stored values, with the given ones over them. Returns the
    data, the items given, and the messages of values not even parsed."""
    data = initial_for(crf)
    items, errors = [], []
    for rf in inst.fields:
        if rf.name not in given:
            continue
        text = given[rf.name]
        if not rf.importable:
            stored = redcap.format_value(getattr(crf, rf.item, None), rf.variable, zone=zone)
            if text.strip() and text.strip() != stored:
                errors.append(f"{rf.name}: computed or read-only, it cannot be imported.")
            continue
        if not text.strip() and not overwrite:
            continue
        model_field = crf._meta.get_field(rf.item)
        value: object = text.strip()
        if isinstance(model_field, models.BooleanField) and value != "":
            try:
                value = _boolean(text, nullable=model_field.null)
            except ValueError as error:
                errors.append(f"{rf.name}: {error}.")
                continue
        if value == "":
            value = None
        data[rf.item] = value
        data.pop(MISSING_PREFIX + rf.item, None)  # a value replaces a missing-data mark
        items.append(rf.item)
    return data, items, errors


def _complete(given: dict[str, str], inst: redcap.Instrument, crf) -> bool:
    code = given.get(inst.complete_field, "").strip()
    if code == "":
        return crf.status == CRFStatus.COMPLETE
    if code not in ("0", "1", "2"):
        raise ValueError(f"{inst.complete_field}: must be 0, 1 or 2.")
    return code == redcap.COMPLETE


def _instrument_rows(row: dict[str, str], number: int, subject: Subject | None,
                     overwrite: bool) -> list[tuple[redcap.Instrument, RowResult]]:
    """The instruments a row writes, each with its result (refused when the row is not
    well-formed)."""
    record = row.get(redcap.RECORD_FIELD, "").strip()
    event_name = row.get("redcap_event_name", "").strip()
    result = RowResult(number, record, event_name)
    by_name = redcap.fields_by_name()
    unknown = [k for k in row if k not in by_name and k not in _KEY_COLUMNS
               and not any(k == i.complete_field for i in redcap.instruments())]
    if unknown:
        result.messages.append("Unknown field(s): " + ", ".join(sorted(unknown)) + ".")
    if not record:
        result.messages.append(f"The record id ({redcap.RECORD_FIELD}) is empty.")
    elif subject is None:
        result.messages.append(
            f"Record {record} does not exist at your sites. New records are created by "
            "screening a patient in the EDC, not by import.")
    event = redcap.event(event_name)
    if event is None:
        result.messages.append(f"The event '{event_name}' is not an event of this project.")
    if result.messages:
        return [(None, result)]
    for name in ("subject_id", "site", "subject_status"):
        if row.get(name, "").strip():
            stored = {"subject_id": subject.subject_id or "", "site": subject.site.code,
                      "subject_status": subject.status}[name]
            if row[name].strip() != stored:
                result.messages.append(f"{name}: read-only, it cannot be imported.")
    mapped = {form for e, form in redcap.form_event_mapping() if e == event_name}
    repeat = row.get("redcap_repeat_instrument", "").strip()
    touched = []
    for inst in redcap.instruments():
        if inst.model is None:
            continue
        keys = [f.name for f in inst.fields if f.name in row] + (
            [inst.complete_field] if inst.complete_field in row else [])
        filled = [k for k in keys if row[k].strip()]
        if not filled and not (overwrite and keys and repeat == inst.name):
            continue
        if inst.name not in mapped:
            result.messages.append(f"{', '.join(filled)}: the form {inst.name} is not "
                                   f"collected at event {event_name}.")
            continue
        if repeat and repeat != inst.name:
            result.messages.append(f"{', '.join(filled)}: the row is an instance of {repeat}, "
                                   f"not of {inst.name}.")
            continue
        touched.append(inst)
    if result.messages:
        return [(None, result)]
    return [(inst, RowResult(number, record, event_name, inst.name,
                             row.get("redcap_repeat_instance", "").strip())) for inst in touched]


def _target(subject: Subject, inst: redcap.Instrument, event_name: str, instance: str):
    """The saved form the row writes, locked, or a new one."""
    event = redcap.event(event_name)
    number = None
    if instance:
        if not instance.isdigit() or int(instance) < 1:
            raise _Refused(f"redcap_repeat_instance '{instance}' is not a positive whole number.")
        number = int(instance)
    if inst.is_log:
        if number is None:
            raise _Refused(f"{inst.name} is a repeating form: give redcap_repeat_instrument "
                           "and redcap_repeat_instance.")
        existing = list(inst.model.objects.filter(subject=subject).order_by("pk")
                        .values_list("pk", flat=True))
        if number <= len(existing):
            return services.crf_instance(model=inst.model, subject=subject,
                                         pk=existing[number - 1], for_update=True)
        if number != len(existing) + 1:
            raise _Refused(f"{inst.name} has {len(existing)} instance(s): the next new one "
                           f"is {len(existing) + 1}, not {number}.")
        return services.crf_instance(model=inst.model, subject=subject, visit=None,
                                     for_update=True)
    sequence = 0
    if event.repeats:
        if number is None:
            raise _Refused("Unscheduled visits repeat: give redcap_repeat_instance (the "
                           "visit's number).")
        sequence, number = number, None
    visit = subject.visits.filter(code=event.visit_code, sequence=sequence).first()
    if visit is None:
        raise _Refused(f"The subject has no visit {event_name}"
                       + (f" number {sequence}" if sequence else "") + ".")
    slot = ""
    if inst.model.slot_item:
        from edc import protocol

        slots = protocol.visit_def(visit.code).pkpd_timepoints
        if number is None or number > len(slots):
            raise _Refused(f"{inst.name} at {event_name} has instances 1 to {len(slots)} "
                           f"({', '.join(slots)}).")
        slot = slots[number - 1]
    return services.crf_instance(model=inst.model, subject=subject, visit=visit, slot=slot,
                                 for_update=True)


def _messages(error: ValidationError, inst: redcap.Instrument) -> list[str]:
    names = {f.item: f.name for f in inst.fields}
    if hasattr(error, "error_dict"):
        return [f"{names.get(k, k)}: {' '.join(map(str, v))}"
                for k, v in error.message_dict.items()]
    return [str(m) for m in error.messages]


def _write_row(*, user: User, subject: Subject, inst: redcap.Instrument, result: RowResult,
               given: dict[str, str], overwrite: bool, reason: str) -> None:
    with timezone.override(subject.site.zone):
        _write_in_site_zone(user=user, subject=subject, inst=inst, result=result,
                            given=given, overwrite=overwrite, reason=reason)


def _write_in_site_zone(*, user: User, subject: Subject, inst: redcap.Instrument,
                        result: RowResult, given: dict[str, str], overwrite: bool,
                        reason: str) -> None:
    """Times typed without a zone are the site's, as on the entry page."""
    try:
        crf = _target(subject, inst, result.event, result.instance)
        data, items, errors = _form_data(crf, inst, given, overwrite=overwrite,
                                         zone=subject.site.zone)
        try:
            complete = _complete(given, inst, crf)
        except ValueError as error:
            errors.append(str(error))
        form = crf_form_class(inst.model)(data=data, subject=subject)
        if not form.is_valid():
            names = {f.item: f.name for f in inst.fields}
            for name, messages in form.errors.items():
                errors.append(f"{names.get(name, name)}: {' '.join(messages)}")
        if errors:
            raise _Refused(" ".join(errors))
        values = form.item_values()
        result.fields = [f.name for f in inst.fields if f.item in items]
        same = crf.pk is not None and all(values[i] == getattr(crf, i) for i in items) and (
            (crf.status == CRFStatus.COMPLETE) == complete)
        if same:
            result.outcome = UNCHANGED
            return
        result.outcome = UPDATE if crf.pk else CREATE
        services.crf_save(
            crf=crf, values=values, user=user, expected_version=crf.version,
            complete=complete, missing_items=form.missing_values(),
            not_done_reason=crf.not_done_reason, reason=given.get(REASON_COLUMN, "").strip()
            or reason, locked=True, imported=True)
    except _Refused as refusal:
        result.outcome, result.messages = REFUSE, [str(refusal)]
    except ValidationError as error:
        result.outcome, result.messages = REFUSE, _messages(error, inst)
    except PermissionDenied as error:
        result.outcome, result.messages = REFUSE, [str(error) or "Not allowed."]
    except services.EditConflict:
        result.outcome = REFUSE
        result.messages = ["The form was changed by someone else during the import."]


def records_import(*, user: User, rows: list[dict[str, str]], overwrite: bool = False,
                   reason: str = "", dry_run: bool = False) -> ImportReport:
    """Write ``rows`` (all or nothing) or, with ``dry_run``, report what they would do.

    Every row runs through ``crf_save`` inside one transaction, each in a savepoint so that a
    refused row does not stop the report; if any row is refused, or on a dry run, the whole
    transaction is rolled back."""
    results: list[RowResult] = []
    records = {r.get(redcap.RECORD_FIELD, "").strip() for r in rows}
    subjects = {s.screening_number: s for s in scope_to_user(
        Subject.objects.select_related("site"), user).filter(screening_number__in=records)}
    with transaction.atomic():
        for number, row in enumerate(rows, start=1):
            subject = subjects.get(row.get(redcap.RECORD_FIELD, "").strip())
            for inst, result in _instrument_rows(row, number, subject, overwrite):
                results.append(result)
                if inst is None or result.messages:
                    continue
                with transaction.atomic():
                    _write_row(user=user, subject=subject, inst=inst, result=result,
                               given=row, overwrite=overwrite, reason=reason)
                    if result.outcome == REFUSE:
                        transaction.set_rollback(True)
        report = ImportReport(results, written=False)
        if dry_run or not report.ok:
            transaction.set_rollback(True)
        else:
            report.written = True
    return report
