"""Record export in REDCap's flat layout, streamed a few subjects at a time.

One row per subject and event (``redcap_event_name``) that holds data; PK/PD once per time
point and the log forms once per entry (``redcap_repeat_instrument``,
``redcap_repeat_instance``); unscheduled visits as instances of a repeating event. Rows hold
what the exports' blinded datasets hold: no treatment arm, no identifiers (the subject's
identity table is never read). Memory holds one chunk of subjects at a time.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q

from api import redcap
from edc import protocol
from edc.models import User
from edc.roles import scope_to_user
from forms.models import CRF_MODELS
from visits.models import Subject, Visit

CHUNK = 100
HEADER = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


@dataclass(frozen=True)
class RecordQuery:
    records: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    labels: bool = False
    begin: dt.datetime | None = None
    end: dt.datetime | None = None


def columns(query: RecordQuery) -> list[str]:
    """The export's columns: the record id, the event and repeat columns, then each chosen
    instrument's fields and its status field, in the data dictionary's order."""
    result = [redcap.RECORD_FIELD, *HEADER]
    for inst in redcap.instruments():
        chosen_form = not (query.fields or query.forms) or inst.name in query.forms
        for field in inst.fields:
            if field.is_record_id:
                continue
            if chosen_form or field.name in query.fields:
                result.append(field.name)
        if chosen_form or inst.complete_field in query.fields:
            result.append(inst.complete_field)
    return result


def subjects(user: User, query: RecordQuery):
    found = scope_to_user(Subject.objects.select_related("site"), user)
    if query.records:
        found = found.filter(screening_number__in=query.records)
    if query.begin or query.end:
        found = found.filter(pk__in=_changed_subjects(query.begin, query.end))
    return found.order_by("screening_number")


def _changed_subjects(begin, end) -> set[int]:
    """Subjects with a change in [begin, end): any history row of theirs (REDCap's
    ``dateRangeBegin``/``dateRangeEnd`` select records created or changed then)."""
    def window(prefix: str = "") -> Q:
        q = Q()
        if begin:
            q &= Q(**{f"{prefix}history_date__gte": begin})
        if end:
            q &= Q(**{f"{prefix}history_date__lt": end})
        return q

    pks = set(Subject.history.filter(window()).values_list("id", flat=True))
    pks |= set(Visit.history.filter(window()).values_list("subject_id", flat=True))
    for model in CRF_MODELS.values():
        pks |= set(model.history.filter(window()).values_list("subject_id", flat=True))
    return pks


def _value(record: dict, field: redcap.Field, *, zone, labels: bool) -> str:
    return redcap.format_value(record.get(field.item), field.variable, zone=zone, label=labels)


def _subject_values(subject: Subject, *, labels: bool) -> dict:
    status = redcap.fields_by_name()["subject_status"]
    return {
        redcap.RECORD_FIELD: subject.screening_number,
        "subject_id": subject.subject_id or "",
        "site": subject.site.code,
        "subject_status": redcap.format_value(subject.status, status.variable,
                                              zone=subject.site.zone, label=labels),
        "subject_complete": redcap.COMPLETE,
    }


def _form_values(inst: redcap.Instrument, record: dict, *, zone, labels: bool) -> dict:
    values = {f.name: _value(record, f, zone=zone, labels=labels) for f in inst.fields}
    values[inst.complete_field] = redcap.form_status(record["status"])
    return values


def rows(user: User, query: RecordQuery) -> Iterator[dict]:
    """Every row of the export, streamed: subjects a chunk at a time, each form table read
    once per chunk."""
    wanted_events = set(query.events)
    chosen = subjects(user, query)
    pks = list(chosen.values_list("pk", flat=True))
    for start in range(0, len(pks), CHUNK):
        chunk = list(chosen.filter(pk__in=pks[start:start + CHUNK]))
        visits = {v.pk: v for v in Visit.objects.filter(subject__in=chunk)}
        forms: dict[int, list[tuple[redcap.Instrument, dict]]] = {s.pk: [] for s in chunk}
        for inst in redcap.instruments():
            if inst.model is None:
                continue
            names = ["pk", "subject_id", "visit_id", "status",
                     *{inst.model._meta.get_field(f.item).attname for f in inst.fields}]
            for record in (inst.model.objects.filter(subject__in=chunk).order_by("pk")
                           .values(*names)):
                for f in inst.fields:  # values() is keyed by attname
                    attname = inst.model._meta.get_field(f.item).attname
                    if attname != f.item:
                        record[f.item] = record.get(attname)
                forms[record["subject_id"]].append((inst, record))
        for subject in chunk:
            yield from _subject_rows(subject, forms[subject.pk], visits, wanted_events,
                                     labels=query.labels)


def _subject_rows(subject, records, visits, wanted_events, *, labels) -> Iterator[dict]:
    zone = subject.site.zone
    scr = redcap.event_for_visit(protocol.SCREENING_VISIT.code)
    plain: dict[tuple[str, int], dict] = {(scr, 0): _subject_values(subject, labels=labels)}
    repeated: list[tuple[str, str, int, dict]] = []
    log_counts: dict[str, int] = {}
    for inst, record in records:
        values = _form_values(inst, record, zone=zone, labels=labels)
        visit = visits.get(record["visit_id"])
        if inst.is_log:
            log_counts[inst.name] = log_counts.get(inst.name, 0) + 1
            repeated.append((redcap.LOGS_EVENT, inst.name, log_counts[inst.name], values))
            continue
        event = redcap.event_for_visit(visit.code) if visit else scr
        if inst.model.slot_item and visit is not None:
            slots = protocol.visit_def(visit.code).pkpd_timepoints
            slot = record.get(inst.model.slot_item)
            instance = slots.index(slot) + 1 if slot in slots else len(slots) + 1
            repeated.append((event, inst.name, instance, values))
            continue
        plain.setdefault((event, visit.sequence if visit else 0), {}).update(values)
    order = {e.unique_name: i for i, e in enumerate(redcap.events())}
    out = [(order[e], seq, "", 0, e, "", seq, v) for (e, seq), v in plain.items()]
    out += [(order[e], 0, form, n, e, form, n, v) for e, form, n, v in repeated]
    for *_key, event, form, instance, values in sorted(out, key=lambda r: r[:4]):
        if wanted_events and event not in wanted_events:
            continue
        row = {redcap.RECORD_FIELD: subject.screening_number, "redcap_event_name": event,
               "redcap_repeat_instrument": form,
               "redcap_repeat_instance": str(instance) if instance else ""}
        row.update(values)
        yield row
