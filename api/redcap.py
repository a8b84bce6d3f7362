"""The trial as a REDCap project: instruments, fields, events, the one schedule arm, which
instrument is collected at which event and which ones repeat. Derived from ``edc.protocol``,
the CRF models and the exports' data dictionary (``edc.exports.dictionary``), so a field's
label, type and code list are the ones every export carries.

- **Instruments**: ``subject`` (the record: screening number, subject ID, site, status), then
  one per CRF model in the protocol's order. The eligibility checklist is exported but not
  imported (the investigator confirms it on its own page).
- **Field names**: the CRF item's name, prefixed by its CRF code where two CRFs share an item
  name (``nihss_total``, ``barthel_total``, ``vital_signs_weight``). The first field,
  REDCap's record identifier, is the screening number (every subject has one, randomized or
  not). Each instrument has REDCap's ``<instrument>_complete`` status (0 incomplete, 2
  complete).
- **Events**: one per protocol visit (``scr_arm_1`` ... ``d180_arm_1``), unscheduled visits as
  a repeating event ``uns_arm_1`` (the instance is the visit's sequence) and ``logs_arm_1``
  for the log forms (adverse events, medications ...), which repeat there. PK/PD repeats at
  its visits, one instance per time point in the protocol's order.
- **Arm**: REDCap's schedule arm, one, ``Arm 1``. The treatment arm never appears.
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from functools import cache

from django.db import models

from edc import protocol
from exports.dictionary import (
    BOOLEAN,
    DATE,
    DATETIME,
    FLOAT,
    INTEGER,
    Variable,
    crf_dataset,
)
from forms.models import CRF, CRF_MODELS, CRFStatus
from forms.selectors import UNSCHEDULED_CRFS
from visits.models import SubjectStatus

RECORD_FIELD = "screening_number"
SUBJECT_FORM = "subject"
EVENT_SUFFIX = "_arm_1"
LOGS_EVENT = "logs" + EVENT_SUFFIX
UNSCHEDULED_EVENT = protocol.UNSCHEDULED_VISIT_CODE.lower() + EVENT_SUFFIX
ARM_NUMBER = 1
ARM_NAME = "Arm 1"
# Forms not written through the API or the import page.
READ_ONLY_FORMS = frozenset({SUBJECT_FORM, "eligibility"})
# REDCap's form status codes.
INCOMPLETE, COMPLETE = "0", "2"
METADATA_COLUMNS = (
    "field_name", "form_name", "section_header", "field_type", "field_label",
    "select_choices_or_calculations", "field_note", "text_validation_type_or_show_slider_number",
    "text_validation_min", "text_validation_max", "identifier", "branching_logic",
    "required_field", "custom_alignment", "question_number", "matrix_group_name",
    "matrix_ranking", "field_annotation",
)


@dataclass(frozen=True)
class Field:
    """One REDCap field: ``name`` in the API, ``item`` on the model (or the subject)."""

    name: str
    form: str
    item: str
    variable: Variable
    importable: bool
    required: bool = False

    @property
    def is_record_id(self) -> bool:
        return self.name == RECORD_FIELD


@dataclass(frozen=True)
class Instrument:
    name: str
    label: str
    fields: tuple[Field, ...]
    model: type[CRF] | None = None

    @property
    def complete_field(self) -> str:
        return f"{self.name}_complete"

    @property
    def is_log(self) -> bool:
        return self.model is not None and protocol.crf(self.name).is_log


@dataclass(frozen=True)
class Event:
    unique_name: str
    label: str
    visit_code: str  # "" for the logs event
    day: int | None = None
    window_before: int = 0
    window_after: int = 0
    repeats: bool = False


def _subject_fields() -> tuple[Field, ...]:
    status = tuple((value, str(label)) for value, label in SubjectStatus.choices)
    return (
        Field(RECORD_FIELD, SUBJECT_FORM, "screening_number",
              Variable("screening_number", "Screening number", "text", length=20), False),
        Field("subject_id", SUBJECT_FORM, "subject_id",
              Variable("subject_id", "Subject ID", "text", length=20), False),
        Field("site", SUBJECT_FORM, "site",
              Variable("site", "Site", "text", length=10), False),
        Field("subject_status", SUBJECT_FORM, "status",
              Variable("status", "Subject status", "text", choices=status), False),
    )


@cache
def instruments() -> tuple[Instrument, ...]:
    counts = Counter(name for model in CRF_MODELS.values() for name in model.item_names())
    reserved = {f.name for f in _subject_fields()}
    result = [Instrument(SUBJECT_FORM, "Subject", _subject_fields())]
    for code in (c.code for c in protocol.CRFS if c.code in CRF_MODELS):
        model = CRF_MODELS[code]
        variables = {v.name: v for v in crf_dataset(code).variables}
        fields = []
        for item in model.item_names():
            name = (f"{code}_{item}" if counts[item] > 1 or item in reserved else item)
            importable = (code not in READ_ONLY_FORMS and item in model.entry_items())
            fields.append(Field(name, code, item, variables[item], importable,
                                required=item in model.required_items))
        result.append(Instrument(code, str(protocol.crf(code).label), tuple(fields), model))
    return tuple(result)


@cache
def instrument(name: str) -> Instrument:
    return next(i for i in instruments() if i.name == name)


@cache
def fields_by_name() -> dict[str, Field]:
    return {f.name: f for i in instruments() for f in i.fields}


@cache
def events() -> tuple[Event, ...]:
    result = [Event(v.code.lower() + EVENT_SUFFIX, str(v.label), v.code, v.day,
                    v.window_before, v.window_after) for v in protocol.VISITS]
    result.append(Event(UNSCHEDULED_EVENT, str(protocol.UNSCHEDULED_VISIT_LABEL),
                        protocol.UNSCHEDULED_VISIT_CODE, repeats=True))
    result.append(Event(LOGS_EVENT, "Logs", ""))
    return tuple(result)


@cache
def event(unique_name: str) -> Event | None:
    return next((e for e in events() if e.unique_name == unique_name), None)


def event_for_visit(code: str) -> str:
    return code.lower() + EVENT_SUFFIX


@cache
def form_event_mapping() -> tuple[tuple[str, str], ...]:
    """(unique event name, instrument) in REDCap's order."""
    pairs = []
    for visit in protocol.VISITS:
        name = event_for_visit(visit.code)
        if visit is protocol.SCREENING_VISIT:
            pairs.append((name, SUBJECT_FORM))
        pairs += [(name, code) for code in visit.crfs if code in CRF_MODELS]
    pairs += [(UNSCHEDULED_EVENT, code) for code in UNSCHEDULED_CRFS]
    pairs += [(LOGS_EVENT, crf.code) for crf in protocol.LOG_FORMS if crf.code in CRF_MODELS]
    return tuple(pairs)


def repeating_forms_events() -> list[dict]:
    rows = [{"event_name": UNSCHEDULED_EVENT, "form_name": "", "custom_form_label": ""}]
    rows += [{"event_name": event_for_visit(v.code), "form_name": protocol.PKPD_CRF,
              "custom_form_label": ""} for v in protocol.VISITS if v.pkpd_timepoints]
    rows += [{"event_name": LOGS_EVENT, "form_name": crf.code, "custom_form_label": ""}
             for crf in protocol.LOG_FORMS if crf.code in CRF_MODELS]
    return rows


# --- Metadata (REDCap's data dictionary) -------------------------------------------------------


def _choices_text(variable: Variable) -> str:
    return " | ".join(f"{value}, {label}" for value, label in variable.choices)


def _field_type(variable: Variable) -> tuple[str, str]:
    """(REDCap field type, text validation)."""
    if variable.type == BOOLEAN:
        return "yesno", ""
    if variable.choices:
        return "radio", ""
    if variable.type == DATE:
        return "text", "date_ymd"
    if variable.type == DATETIME:
        return "text", "datetime_ymd"
    if variable.type == INTEGER:
        return "text", "integer"
    if variable.type == FLOAT:
        return "text", "number"
    if variable.free_text and not variable.length:
        return "notes", ""
    return "text", ""


def metadata_row(field: Field) -> dict[str, str]:
    variable = field.variable
    field_type, validation = _field_type(variable)
    notes = [variable.unit] if variable.unit else []
    annotations = [] if field.importable else ["@READONLY"]
    row = dict.fromkeys(METADATA_COLUMNS, "")
    row.update(
        field_name=field.name, form_name=field.form, field_type=field_type,
        field_label=variable.label,
        select_choices_or_calculations="" if field_type == "yesno" else _choices_text(variable),
        field_note=" ".join(notes), text_validation_type_or_show_slider_number=validation,
        required_field="y" if field.required else "",
        identifier="y" if field.is_record_id else "",
        field_annotation=" ".join(annotations),
    )
    return row


def metadata(*, fields: list[str] | None = None, forms: list[str] | None = None) -> list[dict]:
    rows = []
    for inst in instruments():
        for field in inst.fields:
            if (fields or forms) and not ((fields and field.name in fields)
                                          or (forms and inst.name in forms)):
                continue
            rows.append(metadata_row(field))
    return rows


def export_field_names(field: str | None = None) -> list[dict]:
    """REDCap's export names: the field itself (no checkbox fields here, so one per field)
    and each instrument's status field."""
    rows = []
    for inst in instruments():
        names = [f.name for f in inst.fields] + [inst.complete_field]
        rows += [{"original_field_name": n, "choice_value": "", "export_field_name": n}
                 for n in names if field is None or n == field]
    return rows


# --- Values --------------------------------------------------------------------------------


def form_status(status: str) -> str:
    return COMPLETE if status == CRFStatus.COMPLETE else INCOMPLETE


def format_value(value, variable: Variable, *, zone, label: bool = False) -> str:
    """A stored value as REDCap writes it: dates ISO, times in the site's time zone to the
    minute (``YYYY-MM-DD HH:MM``), yes/no as 1/0, codes (or their labels), JSON as JSON."""
    if value is None:
        return ""
    if label and variable.choices:
        return variable.decode(value) or str(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, models.Model):
        return str(value.pk)
    return str(value)
