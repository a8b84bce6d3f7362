"""CDISC ODM 1.3.2: the trial's metadata, its sites and users, and the data of every CRF with its
audit trail, in one XML file written as a stream, never held whole.

**Study.** Built from the data dictionary (``exports.dictionary``), so names, labels, types,
units and code lists are those of every other format of the export. One StudyEventDef per
protocol visit, in protocol order, plus ``UNS`` (unscheduled, repeating) and ``LOG`` (common:
the log forms); one FormDef per CRF dataset with one ItemGroupDef; one ItemDef per item, with
its SAS name, unit and code list. Booleans are integers with the Yes/No code list, as in the
other formats. The key columns the tabular datasets repeat are ODM keys here: SubjectKey (the
subject ID, or the screening number before randomization; in a de-identified file the
subject's pseudonymous ``subject_key``, as in the tables), StudyEventRepeatKey (an
unscheduled visit's sequence number) and FormRepeatKey (a log form's record id). Form status,
source data verification and why a form or an item has no value have no ODM element: they
are ``Annotation/Flag`` values bound to code lists (OpenEDC does the same); an item without a
value but with a reason is ``IsNull="Yes"`` with that flag. Visit dates are in the visits
dataset of the other formats, not here.

**AdminData.** A Location per site of the exported subjects; a User per person named in an
AuditRecord (``USR.<pk>``, ``USR.system`` for changes without a user).

**The audit trail travels with the data (checklist AT-10).** ODM 1.3.2 says a Snapshot "does
not show how [the data] got to be in that state over time", that "an AuditRecord has no
meaning in a Snapshot transfer" and that "whenever an element has a TransactionType, an
AuditRecord must be provided" (sections 2.8 and 3.1.4.1.2); an element holds at most one
AuditRecord, and the ``AuditRecords`` container can only be referenced from typed
``ItemData[TYPE]`` elements and holds no values. So a file that carries the history is
**Transactional**, the form ODM's ``Archival`` files take:

- SubjectData (Insert, with the AuditRecord of the subject's screening) holds SiteRef and a
  StudyEventData per visit (with the AuditRecord of the visit's creation). In it, a form is a
  series of FormData elements, one per save, in time order: Insert for the first, Update for
  each later save that changed an exported value or flag, Remove for a deletion.
- Each FormData carries the AuditRecord of its save: UserRef, LocationRef (the subject's
  site), DateTimeStamp (UTC), ReasonForChange when one was given, SourceID (how the change
  came in: ``web``, ``api``, ``import`` or ``system``; absent for changes made before it was
  recorded), and EditPoint
  ``Monitoring`` for site staff and monitors, ``DataManagement`` for everyone else and for
  changes without a user (the spec's phases; ODM has no "DataEntry"). Its items inherit it.
- Its ItemGroupData holds only what that save changed: a new value (Insert), a changed one
  (Update), a cleared one (Remove). Applying a form's FormData in order gives exactly its row
  in the other formats (the last state is taken from ``rows()``), and its last FormData holds
  its last change. Earlier values come from the history tables, up to the cut-off of an
  "as of" export.

The file does not claim ``Archival="Yes"``: it carries the CRFs, not the subject-level,
allocation and query transactions an archival file would need.

A file without a trail is a **Snapshot** of the current state, without TransactionTypes or
AuditRecords: in the de-identified profile (every DateTimeStamp is a calendar time, every
ReasonForChange free text), and for exporters who may not read the clinical audit trail (the
unblinded statistician), as for the ``audit_trail`` dataset.

Values come from ``rows()``, so the profile, the cut-off and the sites in scope are those of
every other format: in a package the rows the export has read already (its spools, in the
order of the subjects' ids), so no CRF table is read twice. Subjects are written in chunks of
``SUBJECT_CHUNK``, every CRF of a chunk at once, so memory does not grow with the trial. The
arm is never read: ODM carries CRFs only. Same data and ``stamp``, same bytes.
"""

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from django.db import models
from django.db.models import F, Min

from edc import protocol
from edc.models import Site, User
from edc.roles import Action, Role, can
from exports.datasets import ExportContext, SubjectInfo, keyed_rows
from exports.dictionary import (
    BOOLEAN,
    BOOLEAN_CHOICES,
    DATE,
    DATETIME,
    FLOAT,
    INTEGER,
    PROFILE_LABELS,
    TEXT,
    Dataset,
    Profile,
    Variable,
    ascii_text,
)
from exports.escape import escape_text
from forms.models import CRF_MODELS
from forms.selectors import UNSCHEDULED_CRFS
from visits.models import Subject, Visit

NS = "http://www.cdisc.org/ns/odm/v1.3"
STUDY_OID = protocol.TRIAL_REGISTRY_ID
# Subjects whose forms are held at once: 50 keeps the peak at 600 subjects within 1.4 times
# that at 60 (100 took 1.5 times).
SUBJECT_CHUNK = 50
# Rows fetched at a time by each of the file's streams (one per form and history table).
STREAM_CHUNK = 500
LOG_EVENT = "LOG"

# Columns the tabular datasets repeat on every row: ODM keys, flags or nothing here.
KEY_COLUMNS = frozenset({
    "screening_number", "subject_id", "subject_key", "site", "record_id", "visit", "visit_date",
    "study_day", "form_status", "not_done_reason", "missing_items", "sdv_status", "last_saved",
})
# Form flags: (column, code list, annotation SeqNum on FormData).
FORM_FLAGS = (("form_status", "CL.FORM_STATUS", 1), ("sdv_status", "CL.SDV_STATUS", 2),
              ("not_done_reason", "CL.MISSING", 3))
MISSING_FLAG = "missing_reason"
FLAG_TYPES = (("form_status", "Form status"), ("sdv_status", "Source data verification"),
              ("not_done_reason", "Form not done, why"),
              (MISSING_FLAG, "Item without a value, why"))
DATA_TYPES = {INTEGER: "integer", FLOAT: "float", TEXT: "text", DATE: "date",
              DATETIME: "datetime", BOOLEAN: "integer"}
YES_NO = "CL.NY"
# ODM 1.3.2 "Monitoring: data collection and correction involving the clinician, study-site
# personnel, or study monitor"; everything else happens in data management.
MONITORING_ROLES = frozenset({Role.SITE_STAFF, Role.INVESTIGATOR, Role.MONITOR})
SYSTEM_USER = "USR.system"

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")


# --- Metadata ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Form:
    dataset: Dataset
    items: tuple[Variable, ...]
    positions: dict[str, int]

    @classmethod
    def of(cls, dataset: Dataset) -> "_Form":
        return cls(dataset, tuple(v for v in dataset.variables if v.name not in KEY_COLUMNS),
                   {v.name: i for i, v in enumerate(dataset.variables)})

    @property
    def code(self) -> str:
        return self.dataset.crf_code

    @property
    def oid(self) -> str:
        return f"F.{self.code.upper()}"

    @property
    def group_oid(self) -> str:
        return f"IG.{self.code.upper()}"

    @property
    def is_log(self) -> bool:
        return self.dataset.visits == ("log",)

    @property
    def repeating(self) -> bool:
        """Several instances per event: a log form, or a form entered once per time point of
        a visit (PK/PD), each keyed by its record id (FormRepeatKey)."""
        return self.is_log or bool(CRF_MODELS[self.code].slot_item)

    def item_oid(self, variable: Variable) -> str:
        return f"I.{self.code.upper()}.{variable.name.upper()}"

    def code_list_oid(self, variable: Variable) -> str:
        if variable.type == BOOLEAN:
            return YES_NO
        return f"CL.{self.code.upper()}.{variable.name.upper()}"


@dataclass(frozen=True)
class _Event:
    code: str
    name: str
    type: str  # Scheduled | Unscheduled | Common
    forms: tuple[_Form, ...]

    @property
    def oid(self) -> str:
        return f"SE.{self.code}"

    @property
    def repeating(self) -> bool:
        return self.type == "Unscheduled"


def _events(forms: list[_Form]) -> list[_Event]:
    by_code = {f.code: f for f in forms}
    events = [
        _Event(v.code, str(v.label), "Scheduled",
               tuple(by_code[c] for c in v.crfs if c in by_code and not by_code[c].is_log))
        for v in protocol.VISITS
    ]
    events.append(_Event(protocol.UNSCHEDULED_VISIT_CODE, str(protocol.UNSCHEDULED_VISIT_LABEL),
                         "Unscheduled", tuple(by_code[c] for c in UNSCHEDULED_CRFS
                                              if c in by_code)))
    events.append(_Event(LOG_EVENT, "Log forms", "Common", tuple(f for f in forms if f.is_log)))
    return events


def _unit_oids(forms: list[_Form]) -> dict[str, str]:
    """unit → MeasurementUnit OID, readable and stable (``°C`` → ``MU.DEG_C``)."""
    result: dict[str, str] = {}
    for unit in sorted({v.unit for f in forms for v in f.items if v.unit}):
        text = ascii_text(unit.replace("%", " percent ").replace("/", " per "))
        base = "MU." + (re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper() or "UNIT")
        oid, number = base, 2
        while oid in result.values():
            oid, number = f"{base}_{number}", number + 1
        result[unit] = oid
    return result


def _length(variable: Variable) -> int | None:
    if variable.type == BOOLEAN:
        return 1
    if variable.type == TEXT and variable.length:
        return variable.length
    if variable.type == TEXT and variable.choices:
        return max(len(str(code)) for code, _label in variable.choices)
    return None


# --- Values ------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Text with the characters XML 1.0 cannot hold escaped by the export's rule
    (:data:`exports.escape.TEXT_ESCAPE_RULE`), never dropped."""
    return escape_text(text, _NOT_XML, blanks=False)


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return _timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return _clean(str(value))


@dataclass(frozen=True)
class _State:
    """What the file says about one form at one time: item → (value, missing-data reason),
    and its flags."""

    items: dict[str, tuple[str | None, str | None]]
    flags: dict[str, str]


@dataclass(frozen=True)
class _Audit:
    user: str
    at: dt.datetime
    reason: str
    edit_point: str
    source: str = ""  # how the change came in (edc.sources.Source): the SourceID


class _Save(NamedTuple):
    """One FormData: its TransactionType (None in a Snapshot), AuditRecord, the form's state
    after it (None when removed) and before it."""

    kind: str | None
    audit: _Audit | None
    state: _State | None
    previous: _State | None


@dataclass
class _Record:
    """One form instance and the FormData that build it."""

    form: _Form
    pk: int
    subject_pk: int
    visit_pk: int | None
    saves: list[_Save]


@dataclass
class _Subject:
    info: SubjectInfo
    # Each record with its visit's (code, sequence), None for a log form.
    records: list[tuple[_Record, tuple[str, int] | None]] = field(default_factory=list)
    audit: _Audit | None = None
    visit_audits: dict[int, _Audit] = field(default_factory=dict)


def _parse_missing(text: str | None) -> dict[str, str]:
    """The ``missing_items`` column (``item=reason; …``) back into a mapping."""
    result = {}
    for part in (text or "").split("; "):
        name, _, reason = part.partition("=")
        if name and reason:
            result[name] = reason
    return result


def _state(form: _Form, values: dict, missing: dict[str, str], flags: dict) -> _State:
    items = {}
    for v in form.items:
        value = values.get(v.name)
        if value is not None:
            items[v.name] = (_value(value), None)
        elif missing.get(v.name):
            items[v.name] = (None, str(missing[v.name]))
    return _State(items, {k: str(v) for k, v in flags.items() if v not in (None, "")})


def _row_state(form: _Form, row: tuple) -> _State:
    values = {name: row[i] for name, i in form.positions.items()}
    flags = {name: values.get(name) for name, _cl, _seq in FORM_FLAGS}
    return _state(form, values, _parse_missing(values.get("missing_items")), flags)


# --- Reading, one chunk of subjects at a time --------------------------------------------------


def _up_to(queryset: models.QuerySet, context: ExportContext) -> models.QuerySet:
    if context.as_of is not None:
        queryset = queryset.filter(history_date__lte=context.as_of)
    return queryset


class _Trail:
    """The people in the audit records, and how a history row becomes an AuditRecord."""

    def __init__(self, context: ExportContext, forms: list[_Form]):
        ids: set[int | None] = set()
        pks = context.subject_pks
        querysets = [CRF_MODELS[f.code].history.model.objects.filter(subject_id__in=pks)
                     for f in forms]
        querysets += [Subject.history.model.objects.filter(id__in=pks, history_type="+"),
                      Visit.history.model.objects.filter(subject_id__in=pks, history_type="+")]
        for queryset in querysets:
            ids.update(_up_to(queryset, context).order_by()
                       .values_list("history_user_id", flat=True).distinct())
        self.people = {
            pk: (username, f"{first} {last}".strip(), role)
            for pk, username, first, last, role in User.objects.filter(pk__in=ids - {None})
            .order_by("pk").values_list("pk", "username", "first_name", "last_name", "role")
        }
        # Changes without a user, or by an account that no longer exists, are the system's.
        self.system = None in ids or bool(ids - {None} - set(self.people))

    def audit(self, user_id: int | None, at: dt.datetime, reason: str | None,
              source: str | None) -> _Audit:
        person = self.people.get(user_id)
        point = "Monitoring" if person and person[2] in MONITORING_ROLES else "DataManagement"
        return _Audit(f"USR.{user_id}" if person else SYSTEM_USER, at, reason or "", point,
                      source or "")


def _first_rows(model, subject_path: str, context: ExportContext) -> Iterator[tuple]:
    """(subject id, record id, user id, time, reason, source) of the history rows creating
    ``model``'s
    records of the exported subjects, in the order of their subjects' ids (one query)."""
    queryset = _up_to(model.history.model.objects.filter(
        history_type="+", **{f"{subject_path}__in": context.subject_pks}), context)
    return (queryset.annotate(owner=F(subject_path))
            .order_by("owner", "id", "history_date", "history_id")
            .values_list("owner", "id", "history_user_id", "history_date",
                         "history_change_reason", "history_source")
            .iterator(chunk_size=STREAM_CHUNK))


def _first_audits(taken: Iterator[tuple], chunk: set[int], trail: _Trail) -> dict:
    """record id → the AuditRecord of its creation."""
    result = {}
    for subject_pk, pk, user_id, at, reason, source in taken:
        if subject_pk in chunk and pk not in result:
            result[pk] = trail.audit(user_id, at, reason, source)
    return result


def _history_columns(form: _Form) -> list[tuple[str, str, str]]:
    """(item, history column, how to read it) for the items of a form."""
    model = CRF_MODELS[form.code]
    columns = []
    for v in form.items:
        field = model._meta.get_field(v.source)
        kind = ("staff" if v.staff else "json" if isinstance(field, models.JSONField)
                else "plain")
        columns.append((v.name, field.attname, kind))
    return columns


_HISTORY = ("id", "subject_id", "visit_id", "history_type", "history_date", "history_user_id",
            "history_change_reason", "history_source", "status", "sdv_status",
            "not_done_reason", "missing_items")


def _history_rows(form: _Form, context: ExportContext) -> Iterator[tuple]:
    """The history rows of ``form``'s records of the exported subjects, in the order of their
    subjects' ids, each record's oldest first (one query)."""
    columns = _history_columns(form)
    queryset = _up_to(CRF_MODELS[form.code].history.model.objects
                      .filter(subject_id__in=context.subject_pks), context)
    return (queryset.order_by("subject_id", "id", "history_date", "history_id")
            .values_list("subject_id", *_HISTORY, *(c for _n, c, _k in columns))
            .iterator(chunk_size=STREAM_CHUNK))


def _history(form: _Form, part: ExportContext, taken: Iterator[tuple], chunk: set[int],
             trail: _Trail) -> dict:
    """record id → [(subject, visit, audit, state or None when deleted)], oldest first, of
    the history rows ``taken`` of the subjects of ``chunk``. Values are read as ``rows()``
    reads them (user names, JSON text, '' as empty)."""
    columns = _history_columns(form)
    result = defaultdict(list)
    for owner, *entry in taken:
        if owner not in chunk:
            continue
        (pk, subject_pk, visit_pk, kind, at, user_id, reason, source, status, sdv, not_done,
         missing) = entry[:len(_HISTORY)]
        state = None
        if kind != "-":
            values = {}
            for (name, _column, how), value in zip(columns, entry[len(_HISTORY):], strict=True):
                if how == "staff" and value is not None:
                    value = part.users.get(value)
                elif how == "json":
                    value = (json.dumps(value, sort_keys=True, ensure_ascii=False)
                             if value not in (None, {}, []) else None)
                elif value == "":
                    value = None
                values[name] = value
            state = _state(form, values, missing or {}, {
                "form_status": status, "sdv_status": sdv, "not_done_reason": not_done})
        result[pk].append((subject_pk, visit_pk, trail.audit(user_id, at, reason, source),
                           state))
    return result


def _saves(entries: list, current: _State | None) -> list[_Save]:
    """The FormData of one form: its saves with a visible change, the last state the row's."""
    steps = [[audit, state] for _s, _v, audit, state in entries]
    if current is not None:
        if steps and steps[-1][1] is not None:
            steps[-1][1] = current
        else:
            steps.append([None, current])
    result = []
    previous = None
    for audit, state in steps:
        if state is None:
            if previous is not None:
                result.append(_Save("Remove", audit, None, previous))
        elif previous is None:
            result.append(_Save("Insert", audit, state, None))
        elif state != previous:
            result.append(_Save("Update", audit, state, previous))
        previous = state
    return result


def _records(form: _Form, part: ExportContext, trail: _Trail | None, keyed: Iterator[tuple],
             history: dict) -> Iterator[_Record]:
    """The forms of ``form`` of a chunk of subjects; ``keyed``: their rows with their keys,
    ``history``: their history (:func:`_history`)."""
    record_id = form.positions["record_id"]
    keys = {}
    current = {}
    for subject_pk, visit_pk, row in keyed:
        keys[row[record_id]] = (subject_pk, visit_pk)
        current[row[record_id]] = _row_state(form, row)
    for pk in sorted(set(current) | set(history)):
        entries = history.get(pk, [])
        subject_pk, visit_pk = keys[pk] if pk in keys else entries[-1][:2]
        saves = (_saves(entries, current.get(pk)) if trail
                 else [_Save(None, None, current[pk], None)])
        if saves:
            yield _Record(form, pk, subject_pk, visit_pk, saves)


# --- Writing -----------------------------------------------------------------------------------


# What XML 1.0 cannot hold at all (an element's text is escaped by the rule first, :func:`_clean`),
# and what must be written as a reference: in text, as libxml2 writes it (lxml's serializer),
# and in attribute values, where line breaks and tabs would be normalized away.
_INVALID_XML = _NOT_XML
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTRIBUTE_SPECIAL = re.compile('[&<>"\n\r\t]')
_TEXT_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ATTRIBUTE_REFERENCES = _TEXT_REFERENCES | {'"': "&quot;", "\n": "&#10;", "\t": "&#9;"}


def _xml_text(text: str) -> str:
    if _TEXT_SPECIAL.search(text):
        text = _TEXT_SPECIAL.sub(lambda m: _TEXT_REFERENCES[m[0]], text)
    return text


def _xml_attributes(attrib: dict) -> str:
    parts = []
    for name, value in attrib.items():
        if _ATTRIBUTE_SPECIAL.search(value):
            value = _ATTRIBUTE_SPECIAL.sub(lambda m: _ATTRIBUTE_REFERENCES[m[0]], value)
        parts.append(f' {name}="{value}"')
    text = "".join(parts)
    if _INVALID_XML.search(text):
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes "
                         "or control characters")
    return text


class _Out:
    """Elements in the ODM namespace (the file's default one), one per line, indented, written
    as they come. The markup is written here, as lxml's serializer writes it (the same
    bytes), without an element object or a context manager per element: the file has one
    element per value and per audit record."""

    def __init__(self, file):
        self.file = file
        self.depth = 0
        self.nested = False
        self.item_data = 0

    @contextmanager
    def element(self, tag: str, attrib: dict | None = None, *, nsmap: dict | None = None):
        self.open(tag, attrib, nsmap=nsmap)
        yield
        self.close(tag)

    def open(self, tag: str, attrib: dict | None = None, *, nsmap: dict | None = None) -> None:
        namespace = f' xmlns="{NS}"' if nsmap else ""
        if self.depth:
            self.file.write(f"\n{'  ' * self.depth}")
        self.file.write(f"<{tag}{namespace}{_xml_attributes(attrib) if attrib else ''}>")
        self.depth += 1
        self.nested = False

    def close(self, tag: str) -> None:
        self.depth -= 1
        if self.nested:
            self.file.write(f"\n{'  ' * self.depth}</{tag}>")
        else:
            self.file.write(f"</{tag}>")
        self.nested = True

    def leaf(self, tag: str, attrib: dict | None = None, text: str | None = None) -> None:
        content = _xml_text(_clean(text)) if text else ""
        self.file.write(f"\n{'  ' * self.depth}<{tag}{_xml_attributes(attrib) if attrib else ''}>"
                        f"{content}</{tag}>")
        self.nested = True

    def translated(self, tag: str, text: str) -> None:
        with self.element(tag):
            self.leaf("TranslatedText", text=text)


def write_odm(path: str | Path, context: ExportContext, datasets: list[Dataset], *,
              stamp: dt.datetime, file_oid: str,
              tables: dict[str, Callable[[], Iterator[tuple]]] | None = None) -> int:
    """Write the CRF datasets among ``datasets`` as a CDISC ODM 1.3.2 file at ``path``; return
    the number of ItemData elements written (every value, and every earlier value with a
    trail). ``tables`` gives, by dataset name, the keyed rows
    (:func:`~exports.datasets.keyed_rows`) the export has read already, so that the
    datasets are not read again; the others are read here, a chunk of subjects at a time."""
    forms = [_Form.of(d) for d in datasets if d.crf_code]
    events = _events(forms)
    trail = (_Trail(context, forms)
             if context.profile != Profile.DEIDENTIFIED and can(context.user, Action.VIEW_AUDIT)
             else None)
    mdv = f"MDV.{context.profile}"
    subject_pks = sorted(context.subjects)
    attrib = {
        "FileType": "Transactional" if trail else "Snapshot",
        "FileOID": file_oid,
        "CreationDateTime": _timestamp(stamp),
    }
    if context.as_of is not None:
        attrib["AsOfDateTime"] = _timestamp(context.as_of)
    attrib |= {"ODMVersion": "1.3.2", "Originator": "edc", "SourceSystem": "edc"}
    with suppress(metadata.PackageNotFoundError):
        attrib["SourceSystemVersion"] = metadata.version("edc")
    attrib["Description"] = (f"{protocol.TRIAL_REGISTRY_ID}: case report forms, "
                             f"{PROFILE_LABELS[context.profile]}"
                             + (", with the audit trail" if trail else ""))
    with open(path, "w", encoding="utf-8", newline="", buffering=1 << 20) as file:
        file.write("<?xml version='1.0' encoding='UTF-8'?>\n")
        out = _Out(file)
        with out.element("ODM", attrib, nsmap={None: NS}):
            _write_study(out, forms, events, context.profile, mdv)
            _write_admin(out, context, subject_pks, trail, mdv, stamp)
            with out.element("ClinicalData", {"StudyOID": STUDY_OID, "MetaDataVersionOID": mdv}):
                streams = _Streams(context, forms, trail, tables or {})
                for start in range(0, len(subject_pks), SUBJECT_CHUNK):
                    for subject in _read_chunk(context, subject_pks[start:start + SUBJECT_CHUNK],
                                               forms, trail, streams):
                        key = subject.info.subject_id or subject.info.screening_number
                        if context.profile == Profile.DEIDENTIFIED:
                            # The pseudonym of every other format of the export.
                            key = subject.info.key
                        _write_subject(out, key, subject, events, trail)
    return out.item_data


class _Chunks:
    """Rows in the order of their subjects' ids (the first value), taken a chunk of subjects
    at a time."""

    def __init__(self, rows_: Iterator[tuple]):
        self.rows = rows_
        self.next = next(rows_, None)

    def up_to(self, last_subject_pk: int) -> Iterator[tuple]:
        while self.next is not None and self.next[0] <= last_subject_pk:
            yield self.next
            self.next = next(self.rows, None)


class _Streams:
    """What the file needs of every subject, each read with one query over all the subjects
    (not one per chunk, so the number of queries does not grow with the trial), taken a chunk
    of subjects at a time: the visits, each form's rows (``tables``: those the export has read
    already) and history, and the creation of subjects and visits."""

    def __init__(self, context: ExportContext, forms: list[_Form], trail: _Trail | None,
                 tables: dict[str, Callable[[], Iterator[tuple]]]):
        self.visits = _Chunks(
            context.current(Visit).filter(subject_id__in=context.subject_pks)
            .order_by("subject_id", "id")
            .values_list("subject_id", "id", "code", "sequence").iterator(chunk_size=STREAM_CHUNK))
        self.rows = {f.code: _Chunks(tables[f.dataset.name]() if f.dataset.name in tables
                                     else keyed_rows(f.dataset, context)) for f in forms}
        self.history = {f.code: _Chunks(_history_rows(f, context)) for f in forms} if trail \
            else {}
        self.created = _Chunks(_first_rows(Subject, "id", context)) if trail else None
        self.visits_created = _Chunks(_first_rows(Visit, "subject_id", context)) \
            if trail else None


def _read_chunk(context: ExportContext, chunk: list[int], forms: list[_Form],
                trail: _Trail | None, streams: _Streams) -> list[_Subject]:
    """The subjects of ``chunk`` with every form they have, in order."""
    part = context.for_subjects(chunk)
    last, members = chunk[-1], set(chunk)
    visits = {pk: (code, sequence) for subject_pk, pk, code, sequence
              in streams.visits.up_to(last) if subject_pk in members}
    subjects = {pk: _Subject(context.subjects[pk]) for pk in chunk}
    for form in forms:
        keyed = (row for row in streams.rows[form.code].up_to(last) if row[0] in members)
        history = (_history(form, part, streams.history[form.code].up_to(last), members, trail)
                   if trail else {})
        for record in _records(form, part, trail, keyed, history):
            subjects[record.subject_pk].records.append((record, visits.get(record.visit_pk)))
    if trail:
        created = _first_audits(streams.created.up_to(last), members, trail)
        visit_audits = _first_audits(streams.visits_created.up_to(last), members, trail)
        for pk, subject in subjects.items():
            subject.audit = created.get(pk)
            subject.visit_audits = visit_audits
    return list(subjects.values())


def _location(site_code: str) -> str:
    return f"LOC.{site_code}"


def _write_study(out: _Out, forms: list[_Form], events: list[_Event], profile: Profile,
                 mdv: str) -> None:
    units = _unit_oids(forms)
    with out.element("Study", {"OID": STUDY_OID}):
        with out.element("GlobalVariables"):
            out.leaf("StudyName", text=protocol.TRIAL_REGISTRY_ID)
            out.leaf("StudyDescription", text=protocol.TRIAL_TITLE)
            out.leaf("ProtocolName", text=protocol.TRIAL_REGISTRY_ID)
        if units:
            with out.element("BasicDefinitions"):
                for unit, oid in units.items():
                    with out.element("MeasurementUnit", {"OID": oid, "Name": unit}):
                        out.translated("Symbol", unit)
        with out.element("MetaDataVersion", {
            "OID": mdv, "Name": f"{protocol.TRIAL_REGISTRY_ID} {profile}",
            "Description": str(PROFILE_LABELS[profile]),
        }):
            with out.element("Protocol"):
                for number, event in enumerate(events, 1):
                    out.leaf("StudyEventRef", {
                        "StudyEventOID": event.oid, "OrderNumber": str(number),
                        "Mandatory": "Yes" if event.type == "Scheduled" else "No"})
            for event in events:
                with out.element("StudyEventDef", {
                    "OID": event.oid, "Name": event.name,
                    "Repeating": "Yes" if event.repeating else "No", "Type": event.type,
                }):
                    for number, form in enumerate(event.forms, 1):
                        out.leaf("FormRef", {
                            "FormOID": form.oid, "OrderNumber": str(number),
                            "Mandatory": "Yes" if event.type == "Scheduled" else "No"})
            for form in forms:
                with out.element("FormDef", {"OID": form.oid, "Name": form.dataset.label,
                                             "Repeating": "Yes" if form.repeating else "No"}):
                    out.leaf("ItemGroupRef", {"ItemGroupOID": form.group_oid,
                                              "Mandatory": "Yes"})
            for form in forms:
                required = set(CRF_MODELS[form.code].required_items)
                with out.element("ItemGroupDef", {
                    "OID": form.group_oid, "Name": form.dataset.name, "Repeating": "No",
                    "SASDatasetName": form.dataset.sas_name,
                }):
                    for number, v in enumerate(form.items, 1):
                        out.leaf("ItemRef", {
                            "ItemOID": form.item_oid(v), "OrderNumber": str(number),
                            "Mandatory": "Yes" if v.name in required else "No"})
            for form in forms:
                for v in form.items:
                    _write_item_def(out, form, v, units)
            _write_code_lists(out, forms)


def _write_item_def(out: _Out, form: _Form, v: Variable, units: dict[str, str]) -> None:
    attrib = {"OID": form.item_oid(v), "Name": v.name, "DataType": DATA_TYPES[v.type]}
    if (length := _length(v)) is not None:
        attrib["Length"] = str(length)
    if v.type == FLOAT and v.digits is not None:
        attrib["SignificantDigits"] = str(v.digits)
    if v.sas_name:
        attrib["SASFieldName"] = v.sas_name
    with out.element("ItemDef", attrib):
        out.translated("Question", v.label)
        if v.unit:
            out.leaf("MeasurementUnitRef", {"MeasurementUnitOID": units[v.unit]})
        if v.choices:
            out.leaf("CodeListRef", {"CodeListOID": form.code_list_oid(v)})


def _write_code_list(out: _Out, oid: str, name: str, data_type: str, choices) -> None:
    with out.element("CodeList", {"OID": oid, "Name": name, "DataType": data_type}):
        for code, label in choices:
            with out.element("CodeListItem", {"CodedValue": str(code)}):
                out.translated("Decode", str(label))


def _write_code_lists(out: _Out, forms: list[_Form]) -> None:
    yes_no = False
    for form in forms:
        for v in form.items:
            if not v.choices:
                continue
            if v.type == BOOLEAN:
                yes_no = True
                continue
            _write_code_list(out, form.code_list_oid(v), f"{form.code}.{v.name}",
                             DATA_TYPES[v.type], v.choices)
    if yes_no:
        _write_code_list(out, YES_NO, "Yes/No", "integer", BOOLEAN_CHOICES)
    if not forms:
        return
    first = forms[0].dataset
    _write_code_list(out, "CL.FLAG_TYPE", "Flag types", "text", FLAG_TYPES)
    for column, oid, _seq in FORM_FLAGS[:2]:
        _write_code_list(out, oid, column, "text", first.variable(column).choices)
    _write_code_list(out, "CL.MISSING", "Missing data reasons", "text",
                     first.variable("not_done_reason").choices)


def _write_admin(out: _Out, context: ExportContext, subject_pks: list[int],
                 trail: _Trail | None, mdv: str, stamp: dt.datetime) -> None:
    codes = sorted({context.subjects[pk].site for pk in subject_pks})
    sites = list(Site.objects.filter(code__in=codes).order_by("code"))
    since = dict(Site.history.model.objects.filter(id__in=[s.pk for s in sites]).order_by()
                 .values("id").annotate(first=Min("history_date")).values_list("id", "first"))
    with out.element("AdminData", {"StudyOID": STUDY_OID}):
        if trail:
            for pk, (username, full_name, _role) in trail.people.items():
                with out.element("User", {"OID": f"USR.{pk}"}):
                    out.leaf("LoginName", text=username)
                    if full_name:
                        out.leaf("FullName", text=full_name)
            if trail.system:
                with out.element("User", {"OID": SYSTEM_USER}):
                    out.leaf("LoginName", text="system")
        for site in sites:
            effective = since.get(site.pk) or stamp
            with out.element("Location", {"OID": _location(site.code), "Name": str(site),
                                          "LocationType": "Site"}):
                out.leaf("MetaDataVersionRef", {
                    "StudyOID": STUDY_OID, "MetaDataVersionOID": mdv,
                    "EffectiveDate": effective.astimezone(dt.UTC).date().isoformat()})


def _write_audit(out: _Out, audit: _Audit | None, location: str) -> None:
    if audit is None:
        return
    out.open("AuditRecord", {"EditPoint": audit.edit_point})
    out.leaf("UserRef", {"UserOID": audit.user})
    out.leaf("LocationRef", {"LocationOID": location})
    out.leaf("DateTimeStamp", text=_timestamp(audit.at))
    if audit.reason.strip():
        out.leaf("ReasonForChange", text=audit.reason.strip())
    if audit.source:
        # How the change came in: web, api, import or system (checklist ER-07).
        out.leaf("SourceID", text=audit.source)
    out.close("AuditRecord")


def _write_subject(out: _Out, key: str, subject: _Subject, events: list[_Event],
                   trail: _Trail | None) -> None:
    """SubjectData: the site, then a StudyEventData per visit in protocol order (unscheduled
    ones by sequence, the log forms last), forms in the visit's order, saves in time order."""
    location = _location(subject.info.site)
    position = {event.code: i for i, event in enumerate(events)}
    grouped: dict[tuple[int, int], list[_Record]] = defaultdict(list)
    for record, visit in subject.records:
        if record.form.is_log or visit is None or visit[0] not in position:
            where = (position[LOG_EVENT], 0)
        else:
            code, sequence = visit
            where = (position[code], sequence if events[position[code]].repeating else 0)
        grouped[where].append(record)
    attrib = {"SubjectKey": key}
    if trail:
        attrib["TransactionType"] = "Insert"
    with out.element("SubjectData", attrib):
        _write_audit(out, subject.audit, location)
        out.leaf("SiteRef", {"LocationOID": location})
        for where in sorted(grouped):
            event, records = events[where[0]], grouped[where]
            attrib = {"StudyEventOID": event.oid}
            if event.repeating:
                attrib["StudyEventRepeatKey"] = str(where[1])
            with out.element("StudyEventData", attrib):
                if event.code != LOG_EVENT:
                    _write_audit(out, subject.visit_audits.get(records[0].visit_pk), location)
                order = {form.code: i for i, form in enumerate(event.forms)}
                for record in sorted(records,
                                     key=lambda r: (order.get(r.form.code, len(order)), r.pk)):
                    for save in record.saves:
                        _write_form(out, record, save, location)


def _change(before, after) -> str | None:
    if before == after:
        return None
    if before is None:
        return "Insert"
    if after is None:
        return "Remove"
    return "Update"


def _write_flag(out: _Out, seq: int, kind: str | None, inherited: str | None,
                value: str | None, code_list: str, flag_type: str) -> None:
    attrib = {"SeqNum": str(seq)}
    if kind != inherited:
        attrib["TransactionType"] = kind
    out.open("Annotation", attrib)
    if value is not None:
        out.open("Flag")
        out.leaf("FlagValue", {"CodeListOID": code_list}, value)
        out.leaf("FlagType", {"CodeListOID": "CL.FLAG_TYPE"}, flag_type)
        out.close("Flag")
    out.close("Annotation")


def _write_form(out: _Out, record: _Record, save: _Save, location: str) -> None:
    form = record.form
    kind, state, previous = save.kind, save.state, save.previous
    attrib = {"FormOID": form.oid}
    if form.repeating:
        attrib["FormRepeatKey"] = str(record.pk)
    if kind:
        attrib["TransactionType"] = kind
    with out.element("FormData", attrib):
        _write_audit(out, save.audit, location)
        if state is None:  # removed
            return
        before_flags = previous.flags if previous else {}
        for column, code_list, seq in FORM_FLAGS:
            change = _change(before_flags.get(column), state.flags.get(column))
            if change:
                _write_flag(out, seq, kind and change, kind, state.flags.get(column),
                            code_list, column)
        before_items = previous.items if previous else {}
        changes = [(v, _change(before_items.get(v.name), state.items.get(v.name)))
                   for v in form.items]
        changes = [(v, change) for v, change in changes if change]
        if previous is not None and not changes:
            return
        with out.element("ItemGroupData", {"ItemGroupOID": form.group_oid}):
            for v, change in changes:
                _write_item(out, form, v, kind and change, kind,
                            before_items.get(v.name), state.items.get(v.name))


def _write_item(out: _Out, form: _Form, v: Variable, kind: str | None, inherited: str | None,
                before: tuple | None, after: tuple | None) -> None:
    attrib = {"ItemOID": form.item_oid(v)}
    if kind != inherited:
        attrib["TransactionType"] = kind
    value, reason = after or (None, None)
    if value is not None:
        attrib["Value"] = value
    elif after is not None:
        attrib["IsNull"] = "Yes"
    out.item_data += 1
    out.open("ItemData", attrib)
    if after is not None:  # else removed, with its annotation
        change = _change(before[1] if before else None, reason)
        if change:
            _write_flag(out, 1, kind and change, kind, reason, "CL.MISSING", MISSING_FLAG)
    out.close("ItemData")
