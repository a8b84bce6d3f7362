"""The audit-trail CSV file of a CSV-only export, built by PostgreSQL (issue 15, item 4).

The audit trail is most of an export's rows (one per changed field). Built in Python it costs
a loop over every tracked field of every history row; here each history table is one query:
``LAG`` over the table, partitioned by record and ordered by ``history_date, history_id``,
gives each row its predecessor, a ``LATERAL (VALUES …)`` unnests the tracked fields and keeps
those that changed (``IS DISTINCT FROM``), and the cells are formatted in SQL by the rules of
:mod:`exports.csvfiles` and :func:`forms.review.audit._display`. What only Python knows (labels
of people, visits, subjects and code lists in the current language, the subjects' pseudonyms,
sites and study-day references, who may see which site) is computed once and bound into the
query: ``jsonb`` maps and arrays.

The query quotes the cells as Python's ``csv`` module does and joins the lines of each history
row into one text (CRLF ends), so Python only writes texts: a few thousand fetched values
instead of a Python object per cell. The cells of the history row (time, user, record, …) are
computed once per row, not once per changed field.

The rows other formats read stay Python's (:func:`forms.review.audit_stream.audit_rows_by_record`):
the same query returning typed rows cost PostgreSQL more than it saved Python, whose time there is
loading the values, not diffing them (measured at 60 subjects).

The rows, their order and every cell are those of the Python path
(:func:`exports.datasets.rows` over :func:`forms.review.audit_stream.audit_rows_by_record`), which
SQLite uses; ``tests/exports/test_sql_csv.py`` checks that both give the same bytes.
"""

import datetime as dt
import json
import re
from collections.abc import Iterator

from django.db import connection, models
from django.utils.text import capfirst
from django.utils.translation import gettext

from exports.datasets import ExportContext
from exports.dictionary import Dataset, Profile
from forms.models import CRF_MODELS
from visits.models import KitAssignment, RandomizationSlot, Subject, Visit

# History rows' texts fetched at a time: a created form's text is a few kB (a line per item).
PIECES = 256


def available() -> bool:
    return connection.vendor == "postgresql"


def audit_trail_lines(dataset: Dataset, context: ExportContext) -> Iterator[tuple[str, int]]:
    """The audit trail's CSV lines (CRLF ends, no header) as PostgreSQL writes them: pieces of
    text with the number of lines each holds, the lines of one history row a piece (read a
    block of pieces at a time from a server-side cursor)."""
    for query in _queries(dataset, context):
        with connection.chunked_cursor() as cursor:
            cursor.execute(query)
            while block := cursor.fetchmany(PIECES):
                yield from block


def _queries(dataset: Dataset, context: ExportContext) -> Iterator[str]:
    """The trail's query for each audited model the exporter may read, its values bound."""
    from psycopg import ClientCursor

    from forms.review import audit_sources as audit
    from forms.review.audit_stream import _Lookup

    if not audit.may_view_audit(context.user):
        return
    gates = ({audit.CLINICAL, audit.ALLOCATION} if context.profile == Profile.UNBLINDED
             else {audit.CLINICAL})
    subject_ids = list(context.subject_pks.values_list("pk", flat=True))
    lookup = _Lookup(subject_ids)
    until = context.as_of + dt.timedelta(microseconds=1) if context.as_of else None
    maps = _Maps(lookup)
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            # These queries are long but cheap to run: their cost estimate (the unnested
            # fields) crosses PostgreSQL's JIT thresholds, and compiling them took 20 s of a
            # 0.8 s query at 600 subjects. Until the export's transaction ends.
            cursor.execute("SET LOCAL jit = off")
    for source in audit.sources_for(context.user):
        if source.gate not in gates:
            continue
        subjects = _subjects(source, context, lookup)
        if not subjects:
            continue
        statement, params = _statement(source, dataset, subjects, subject_ids, until, maps)
        connection.ensure_connection()
        yield ClientCursor(connection.connection).mogrify(statement, params)


class _Maps:
    """The labels the cells look up, as ``jsonb`` texts (built once per export)."""

    def __init__(self, lookup):
        self.users = json.dumps({str(pk): p.printed_name for pk, p in lookup.users.items()},
                                ensure_ascii=False)
        self.visits = json.dumps({str(pk): label for pk, label in lookup.visits.items()},
                                 ensure_ascii=False)
        self.subjects = json.dumps({str(pk): named.label for pk, named in lookup.subjects.items()},
                                   ensure_ascii=False)
        self.queries = json.dumps(
            {str(pk): f"{q.crf_code or gettext('visit')}.{q.field_name}"
             for pk, q in lookup.queries.items()}, ensure_ascii=False)

def _subjects(source, context: ExportContext, lookup) -> dict[int, tuple]:
    """Subject id → (label, zone, screening number, subject ID, key, site, study-day
    reference) of the subjects whose rows of ``source`` the export carries: in the export (as
    of its cut), in view, at a site whose gate the exporter passes."""
    from forms.review import audit_sources as audit

    result = {}
    for pk, info in context.subjects.items():
        named = lookup.subjects.get(pk)
        if named is None:
            continue
        site = lookup.subject_sites[pk]
        if source.gate in audit._GATE_ACTION and not lookup.may(
                context.user, audit._GATE_ACTION[source.gate], site):
            continue
        result[pk] = (named.label, site.time_zone, info.screening_number, info.subject_id,
                      info.key, info.site, info.reference)
    return result


# A cell Python's ``csv`` module quotes (``QUOTE_MINIMAL``): one holding a comma, a quote, CR
# or LF.
_NEEDS_QUOTES = "E'[\",\\r\\n]'"


def _csv_cell(sql: str) -> str:
    """SQL: the text ``sql`` as a CSV cell, quoted as Python's ``csv`` module quotes; NULL is
    an empty cell."""
    return (f"COALESCE(CASE WHEN {sql} ~ {_NEEDS_QUOTES} THEN '\"' || replace({sql}, '\"', "
            f"'\"\"') || '\"' ELSE {sql} END, '')")


def _empty(sql: str, f: models.Field) -> str:
    """SQL: is the value empty as :func:`forms.review.audit_sources._empty` says (None, "", [],
    {})?"""
    if isinstance(f, models.JSONField):
        return (f"({sql} IS NULL OR {sql} IN ('[]'::jsonb, '{{}}'::jsonb, '\"\"'::jsonb, "
                f"'null'::jsonb))")
    if isinstance(f, models.CharField | models.TextField):
        return f"({sql} IS NULL OR {sql} = '')"
    return f"({sql} IS NULL)"


class _Params:
    """Collects the statement's parameters; each ``add`` gives its (named) placeholder."""

    def __init__(self):
        self.values: dict[str, object] = {}

    def add(self, value, cast: str = "") -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s{cast}"


def _json_text(sql: str) -> str:
    """``json.dumps(value, ensure_ascii=False, sort_keys=True)`` of a ``jsonb`` value: an
    object's keys in code-point order (``jsonb`` keeps them by length); values as ``jsonb``
    writes them, which Python's ``json`` writes alike for strings, lists and numbers."""
    return (f"CASE WHEN jsonb_typeof({sql}) = 'object' THEN '{{' || (SELECT string_agg("  # noqa: S608
            f"to_jsonb(e.key)::text || ': ' || e.value::text, ', ' ORDER BY e.key COLLATE \"C\")"
            f" FROM jsonb_each({sql}) e) || '}}' ELSE {sql}::text END")


def _display(sql: str, f: models.Field, params: _Params, maps: _Maps) -> str:
    """SQL: the cell of the value ``sql`` of ``f`` (``forms.review.audit_stream._displayer``),
    NULL when empty."""
    from edc import protocol
    from edc.models import User
    from forms.review.audit_sources import _choice_labels

    if f.is_relation:
        model = f.related_model
        key = f"({sql})::text"
        if model is User:
            text = f"COALESCE({params.add(maps.users, '::jsonb')} ->> {key}, '#' || {key})"
        elif model is Visit:
            text = (f"COALESCE({params.add(maps.visits, '::jsonb')} ->> {key}, "
                    f"{params.add(gettext('visit') + ' #')} || {key})")
        elif model is Subject:
            text = f"COALESCE({params.add(maps.subjects, '::jsonb')} ->> {key}, '#' || {key})"
        else:
            text = f"{params.add(capfirst(str(model._meta.verbose_name)) + ' #')} || {key}"
    elif f.model is RandomizationSlot and f.name == "arm":
        labels = {arm.code: f"{arm.code} — {arm.label}" for arm in protocol.ARMS}
        text = (f"COALESCE({params.add(json.dumps(labels, ensure_ascii=False), '::jsonb')} "
                f"->> ({sql})::text, ({sql})::text)")
    elif f.choices:
        labels = {str(code): str(label) for code, label in _choice_labels(f).items()}
        text = (f"COALESCE({params.add(json.dumps(labels, ensure_ascii=False), '::jsonb')} "
                f"->> ({sql})::text, ({sql})::text)")
    elif isinstance(f, models.BooleanField):
        return (f"CASE WHEN {sql} THEN {params.add(gettext('Yes'))} "
                f"WHEN NOT {sql} THEN {params.add(gettext('No'))} END")
    elif isinstance(f, models.DateTimeField):
        local = f"({sql} AT TIME ZONE h.s_zone)"
        offset = f"({local} - ({sql} AT TIME ZONE 'UTC'))"
        text = (f"to_char({local}, 'YYYY-MM-DD HH24:MI:SS') || CASE WHEN {offset} < "
                f"interval '0' THEN '-' || to_char(-{offset}, 'HH24:MI') ELSE '+' || "
                f"to_char({offset}, 'HH24:MI') END")
    elif isinstance(f, models.DateField):
        text = f"to_char({sql}, 'YYYY-MM-DD')"
    elif isinstance(f, models.JSONField):
        text = _json_text(sql)
    else:
        text = f"({sql})::text"
    return f"CASE WHEN {_empty(sql, f)} THEN NULL ELSE NULLIF({text}, '') END"


def _template(text: str, values: dict[str, str], params: _Params) -> str:
    """SQL concatenating a translated ``%(name)s`` template with SQL values."""
    parts = re.split(r"%\((\w+)\)s", text)
    pieces = []
    for index, part in enumerate(parts):
        if index % 2:
            pieces.append(f"({values[part]})")
        elif part:
            pieces.append(params.add(part.replace("%%", "%")))
    return " || ".join(pieces) or "''"


def _describe(source, params: _Params, maps: _Maps) -> str:
    """SQL: the record as :func:`forms.review.audit._describe` names it."""
    from forms.quality.queries import Query, QueryMessage

    model = source.model
    dot = params.add(" · ")
    if model is Subject:
        return "h.s_label"
    if model is Visit:
        return f"h.s_label || {dot} || " + _visit_label("h.id", params, maps)
    if model in CRF_MODELS.values():
        return (f"h.s_label || CASE WHEN h.visit_id IS NULL THEN '' ELSE {dot} || "
                f"{_visit_label('h.visit_id', params, maps)} END || {dot} || "
                f"{params.add(capfirst(str(source.label)) + ' #')} || h.id")
    if model is Query:
        where = (f"COALESCE(NULLIF(h.crf_code, ''), {params.add(gettext('visit'))}) || '.' "
                 "|| h.field_name")
        return f"h.s_label || {dot} || " + _template(
            gettext("query #%(pk)s on %(item)s"), {"pk": "h.id::text", "item": where}, params)
    if model is QueryMessage:
        where = f"COALESCE({params.add(maps.queries, '::jsonb')} ->> h.query_id::text, '?')"
        return f"h.s_label || {dot} || " + _template(
            gettext("query #%(pk)s on %(item)s"), {"pk": "h.query_id::text", "item": where},
            params)
    if model is KitAssignment:
        return f"h.s_label || {dot} || " + _template(
            gettext("infusion %(n)s"), {"n": "COALESCE(h.infusion_number::text, 'None')"},
            params)
    if model is RandomizationSlot:
        return (f"h.s_label || CASE WHEN COALESCE(h.randomization_number, '') = '' THEN '' "
                f"ELSE {dot} || h.randomization_number END")
    return f"h.s_label || {dot} || {params.add(capfirst(str(source.label)) + ' #')} || h.id"


def _visit_label(column: str, params: _Params, maps: _Maps) -> str:
    return (f"COALESCE({params.add(maps.visits, '::jsonb')} ->> {column}::text, "
            f"{params.add(gettext('visit') + ' #')} || {column})")


_SUBJECT_COLUMNS = ("pk", "label", "zone", "sn", "sid", "skey", "site", "ref")
_ORDER = "h.audit_first_date, h.audit_first_id, h.history_date, h.history_id"
_ACTION = "CASE h.history_type WHEN '+' THEN 'created' WHEN '~' THEN 'changed' ELSE 'deleted' END"
_UTC = "(h.history_date AT TIME ZONE 'UTC')"
# Python's ``isoformat``: microseconds only when there are some.
_TIME = (f"to_char({_UTC}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', "
         f"{_UTC}) = {_UTC} THEN '' ELSE to_char({_UTC}, '.US') END || 'Z'")
_STUDY_DAY = ("CASE WHEN (h.history_date AT TIME ZONE h.s_zone)::date >= h.s_ref THEN "
              "(h.history_date AT TIME ZONE h.s_zone)::date - h.s_ref + 1 ELSE "
              "(h.history_date AT TIME ZONE h.s_zone)::date - h.s_ref END")


def _statement(source, dataset: Dataset, subjects: dict[int, tuple], subject_ids: list[int],
               until: dt.datetime | None, maps: _Maps) -> tuple[str, dict]:
    """The query of one audited model's part of the trail, as (CSV text of a history row's
    changed fields, number of lines) in the trail's order, and its parameters. The text holds
    only names from the models' metadata (quoted) and SQL of this module; every value
    (labels, subjects, times) is a parameter."""
    from exports.dictionary import INTEGER
    from forms.quality.queries import Query
    from forms.review.audit_sources import ALLOCATION, _fields, _text

    quote = connection.ops.quote_name
    params = _Params()
    table = quote(source.model.history.model._meta.db_table)
    fields = _fields(source)
    join = ""
    if source.subject_path == "id":
        subject = "h.id"
    elif source.subject_path == "subject_id":
        subject = "h.subject_id"
    elif source.subject_path == "query__subject_id":
        join = f"JOIN {quote(Query._meta.db_table)} q ON q.id = h.query_id"
        subject = "q.subject_id"
    else:
        raise ValueError(f"no SQL for the subject path {source.subject_path!r}")
    allocation = source.gate == ALLOCATION
    scope = params.add(subject_ids, "::int[]")
    where, outer = [], []
    if allocation:
        # A list row has no subject until it is allocated: the whole life of the rows ever
        # allocated to these subjects, its subject the last one it had.
        where.append(f"h.id IN (SELECT id FROM {table} WHERE subject_id = ANY({scope}))")  # noqa: S608
        record_subject = (f"(array_agg({subject}) FILTER (WHERE {subject} IS NOT NULL) OVER "
                          "everything)")
        if until is not None:
            outer.append(f"h.history_date < {params.add(until)}")
    else:
        where.append(f"{subject} = ANY({scope})")
        record_subject = f"ARRAY[last_value({subject}) OVER everything]"
        if until is not None:
            where.append(f"h.history_date < {params.add(until)}")
    columns = [f"LAG(h.{quote(f.column)}) OVER ordered AS audit_old{i}"
               for i, f in enumerate(fields)]
    inner = (
        f"SELECT h.*, {record_subject} AS audit_subjects, "  # noqa: S608
        "min(h.history_date) OVER (PARTITION BY h.id) AS audit_first_date, "
        "first_value(h.history_id) OVER ordered AS audit_first_id, "
        f"{', '.join(columns)} FROM {table} h {join} WHERE {' AND '.join(where)} "
        "WINDOW ordered AS (PARTITION BY h.id ORDER BY h.history_date, h.history_id), "
        "everything AS (PARTITION BY h.id ORDER BY h.history_date, h.history_id ROWS BETWEEN "
        "UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
    changes = []
    olds, news = [], []
    for i, f in enumerate(fields):
        new, old = f"h.{quote(f.column)}", f"h.audit_old{i}"
        changed = (f"CASE h.history_type WHEN '~' THEN NOT ({old} IS NOT DISTINCT FROM {new} "
                   f"OR ({_empty(old, f)} AND {_empty(new, f)})) ELSE NOT {_empty(new, f)} END")
        changes.append(f"({i}, {params.add(f.name)}, {changed})")
        if {"old_value", "new_value"} & set(dataset.names):
            shown = _display(new, f, params, maps)
            olds.append(f"WHEN {i} THEN CASE h.history_type WHEN '~' THEN "
                        f"{_display(old, f, params, maps)} WHEN '-' THEN {shown} END")
            news.append(f"WHEN {i} THEN CASE WHEN h.history_type <> '-' THEN {shown} END")
    kinds = {v.name: v.type for v in dataset.variables}
    variables = {v.name: v for v in dataset.variables}
    cells = {
        "screening_number": "h.s_sn", "subject_id": "h.s_sid", "subject_key": "h.s_skey",
        "site": "h.s_site", "action": _ACTION, "record_id": "h.id", "field": "c.field",
        "reason": "NULLIF(h.history_change_reason, '')",
        "channel": "NULLIF(h.history_source, '')",
    }
    # Cells of the history row (computed once per row, not once per changed field) and cells
    # of the changed field, in the dataset's order.
    select: list[tuple[bool, str]] = []
    for name in dataset.names:
        if name == "field":
            select.append((False, "c.field"))
        elif name == "old_value":
            select.append((False, f"CASE c.position {' '.join(olds)} END"))
        elif name == "new_value":
            select.append((False, f"CASE c.position {' '.join(news)} END"))
        elif name in cells:
            select.append((True, cells[name]))
        elif name == "time":
            select.append((True, _STUDY_DAY if kinds[name] == INTEGER else _TIME))
        elif name == "user":
            select.append((True, f"COALESCE({params.add(maps.users, '::jsonb')} ->> "
                                 f"h.history_user_id::text, {params.add(gettext('system'))})"))
        elif name == "record_type":
            select.append((True, params.add(_text(source.label))))
        elif name == "record":
            select.append((True, _describe(source, params, maps)))
        else:
            select.append((True, "NULL"))
        variable = variables[name]
        if variable.is_coded:
            # The label column a coded variable has beside its code (``csvfiles.write_csv``).
            per_row, code = select[-1]
            labels = json.dumps({str(value): label for value, label in variable.choices},
                                ensure_ascii=False)
            select.append((per_row, f"COALESCE({params.add(labels, '::jsonb')} ->> "
                                    f"({code})::text, '')"))
    rows = list(subjects.items())
    unnest = ", ".join([
        params.add([pk for pk, _ in rows], "::int[]"),
        *(params.add([info[k] for _, info in rows], "::text[]") for k in range(6)),
        params.add([info[6] for _, info in rows], "::date[]"),
    ])
    # The records' rows in the trail's order, with their subjects and their own cells (CSV
    # text); the fields are unnested after, and the lines of each row joined into one text.
    ordered = (
        f"SELECT h.*, {', '.join(f's.{c} AS s_{c}' for c in _SUBJECT_COLUMNS)} "  # noqa: S608
        f"FROM ({inner}) h JOIN unnest({unnest}) AS s({', '.join(_SUBJECT_COLUMNS)}) "
        "ON s.pk = h.audit_subjects[cardinality(h.audit_subjects)] "
        f"{'WHERE ' + ' AND '.join(outer) if outer else ''} ORDER BY {_ORDER}")
    own = ", ".join(f"{_csv_cell(f'({sql})::text')} AS audit_cell{i}"
                    for i, (per_row, sql) in enumerate(select) if per_row)
    described = f"SELECT h.*, {own or 'NULL'} FROM ({ordered}) h ORDER BY {_ORDER}"  # noqa: S608
    fields = [(i, sql) for i, (per_row, sql) in enumerate(select) if not per_row]
    values = ", ".join(f"({sql})::text AS c{i}" for i, sql in fields)
    test = ", ".join(f"v.c{i}" for i, _sql in fields) or "''"
    quoted = " || ',' || ".join(
        f"h.audit_cell{i}" if per_row else _csv_cell(f"v.c{i}")
        for i, (per_row, _sql) in enumerate(select))
    plain = " || ',' || ".join(
        f"h.audit_cell{i}" if per_row else f"COALESCE(v.c{i}, '')"
        for i, (per_row, _sql) in enumerate(select))
    statement = (
        f"SELECT t.lines, t.count FROM ({described}) h CROSS JOIN LATERAL ("  # noqa: S608
        # Most changed fields need no quotes: one test of their cells, not one per cell.
        f"SELECT string_agg(CASE WHEN concat({test}) ~ {_NEEDS_QUOTES} "
        f"THEN {quoted} ELSE {plain} END || E'\\r\\n', '' ORDER BY c.position) AS lines, "
        f"count(*) AS count FROM (VALUES {', '.join(changes)}) AS c(position, field, changed) "
        f"CROSS JOIN LATERAL (SELECT {values or 'NULL'} OFFSET 0) v WHERE c.changed) t "
        f"WHERE t.count > 0 ORDER BY {_ORDER}")
    return statement, params.values


# Datasets whose CSV lines PostgreSQL writes when CSV is the export's only reader.
CSV_BUILDERS = {"audit_trail": audit_trail_lines}
