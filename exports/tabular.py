"""Writers for the tabular formats: Excel, SAS XPORT v5, Stata, SPSS and R.

Each writer takes a :class:`~exports.dictionary.Dataset` and its rows (tuples aligned with
``dataset.variables``, as :func:`exports.datasets.rows` yields them) and a ``stamp``, the
export's time: the same rows and the same stamp give byte-identical files. Every creation time
a file carries is the stamp, never the clock.

How each variable type is written:

=========  ===============  ===============  ================  ================  =============
type       Excel            SAS XPORT v5     Stata 118         SPSS              R
=========  ===============  ===============  ================  ================  =============
integer    number           numeric          long (nullable)   numeric F10.0     integer
float      number (exact)   numeric          double            numeric F.d       double
boolean    1/0              numeric 1/0      byte 1/0,         numeric 1/0,      logical
                                             labels Yes/No     labels Yes/No
text       text cell (never ASCII char, ≤ 200   str# or strL      string ≤ 32,767   character
           a formula),      bytes (rest in                     bytes (split,
           split at 32,767  companion,                         escaped)
                            escaped)
coded      code + label     the code         numeric with      the code, with    factor (codes
           column                            value labels      value labels      as levels) +
                                                                                 label column
date       Excel date       DATE9.           %td               DATE11            Date
datetime   naive UTC        DATETIME20. UTC  %tc UTC (ms)      DATETIME20 UTC    POSIXct UTC
=========  ===============  ===============  ================  ================  =============

No writer refuses a text for its length or its characters: what a format cannot hold in
one value continues in further columns, and what it cannot carry is escaped by one
documented, reversible rule (:data:`TEXT_ESCAPE_RULE`, repeated in the manifest and the data
dictionary).

Missing values are empty cells, SAS/Stata/SPSS system missing, R ``NA``; a missing text is
blank where the format has no missing string (XPORT, Stata, SPSS). Datetimes are UTC wherever
the format has no time zone; their labels say so in Stata, SPSS and the Excel dictionary.

Coded text in Stata (:func:`stata_codes`): Stata users expect a numeric variable with value
labels. A code that is an integer ("0" … "4" of an NIHSS item) is that number, labelled with
its label; other codes are numbered in code-list order after the largest integer code
(sex: F=1, M=2; NIHSS "UN" = 5), labelled "code: label" so the stored code can be read back.
Codes that are the empty string are never values (rows give ``None`` for them) and get no
number, level or label.

R: pyreadr 0.5.8 writes dates and datetimes as character vectors (its writer knows character,
integer, double, logical and factor columns only), so :func:`write_rds` serializes the data
frame itself (R serialization version 2, gzip, as ``saveRDS`` does): factors, ``Date``,
``POSIXct`` with ``tzone = "UTC"``, and each column's label in the ``label`` attribute (the
convention of haven and Hmisc). Booleans are logical vectors, not factors. Coded integers
(mRS, Barthel items) are factors too: ``as.integer(as.character(x))`` gives the score back.

Memory and size: every writer reads its rows once (an iterator is enough; the row count
need not be known) into an on-disk spool of pickled chunks of :data:`CHUNK_ROWS` rows,
learning on the way what its header needs (column widths, codes outside a code list, the
row count), then writes chunk by chunk: memory holds one chunk, whatever the trial's
size. Values are converted a chunk of rows at a time, column by column, never one call per
value. XPORT headers are written by pyreadstat and its records here (:func:`write_xpt`);
SPSS headers by pyreadstat and its bytecode here (:func:`write_sav`); Stata rows are
written in the storage types pandas declared in the header (:func:`write_dta`); R writes
column by column from a spool kept by column. No
text costs its longest value's width on every row: XPORT v5 rows are fixed-width, so a text
column is as wide as keeps the files smallest and only the longer values continue in a
companion file (SDTM practice, :func:`write_xpt`); Stata stores a text as a strL where that
is smaller, SPSS files are zlib-compressed, R files gzip-compressed.
"""

import datetime as dt
import gzip
import itertools
import math
import pickle
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
from openpyxl.packaging.core import DocumentProperties
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from exports.codebook import COLUMNS
from exports.dictionary import (
    BOOLEAN,
    DATE,
    DATETIME,
    FLOAT,
    INTEGER,
    SAS_LABEL_LENGTH,
    SAS_NAME_LENGTH,
    TEXT,
    Dataset,
    Variable,
    ascii_text,
)
from exports.escape import (
    BLANK_RUN,
    TEXT_ESCAPE_RULE,
    XPT_LONG_TEXT_RULE,
    escape_text,
    unescape_text,
)


class ExportError(Exception):
    """The data or the dataset definition cannot be written in the format without loss."""


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
UTC_SUFFIX = " (UTC)"


def _utc(stamp: dt.datetime) -> dt.datetime:
    """The stamp as a naive UTC datetime (what the file headers carry)."""
    if stamp.tzinfo is None:
        raise ExportError("The export stamp must be a timezone-aware datetime.")
    return stamp.astimezone(dt.UTC).replace(tzinfo=None)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ExportError(f"Naive datetime {value} in the export rows.")
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _codes(v: Variable) -> list:
    """The variable's codes, in code-list order, without the empty code (never a value)."""
    return [code for code, _label in v.choices if code != ""]


def _all_codes(v: Variable, values: list) -> list:
    """The code list, then any value outside it (sorted), so that no value is lost."""
    codes = _codes(v)
    known = set(codes)
    extra = sorted({value for value in values if value is not None and value not in known},
                   key=str)
    return codes + extra


def _label_with_code(code, label: str) -> str:
    if re.match(rf"{re.escape(str(code))}\W", label):
        return label
    return f"{code}: {label}"


def stata_codes(v: Variable, values: list | None = None) -> dict[str, tuple[int, str]]:
    """code → (number, value label) of a coded text variable in Stata (see the module
    docstring). ``values`` outside the code list are numbered after it."""
    codes = _all_codes(v, values or [])
    labels = {code: str(label) for code, label in v.choices}
    integers = {code: int(code) for code in codes if re.fullmatch(r"-?(0|[1-9]\d*)", str(code))}
    number = max(integers.values(), default=0)
    result = {}
    for code in codes:
        label = labels.get(code, str(code))
        if code in integers:
            result[code] = (integers[code], label)
        else:
            number += 1
            result[code] = (number, _label_with_code(code, label))
    return result


def _label(v: Variable, length: int) -> str:
    label = v.label + UTC_SUFFIX if v.type == DATETIME else v.label
    if len(label) > length and v.type == DATETIME:
        label = v.label[: length - len(UTC_SUFFIX)] + UTC_SUFFIX
    return label[:length]


# What each format cannot hold, in runs (escaped a run at a time, :func:`escape_text`).
_NOT_XPT = re.compile("[^\t\n\r\x20-\x7e]+")
_NOT_SPSS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")
_NOT_EXCEL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]+")


# Spooling -----------------------------------------------------------------------------------

CHUNK_ROWS = 10_000


class _Spool:
    """Rows kept on disk in chunks of :data:`CHUNK_ROWS` (pickled lists), so that a writer
    reads its input once, learns what the file's header needs (widths, codes, the row count)
    and then writes the rows chunk by chunk: memory holds one chunk, whatever the trial's
    size."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.count = 0
        self.chunks = 0
        self._pending: list = []

    def append(self, row) -> None:
        self._pending.append(row)
        self.count += 1
        if len(self._pending) == CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            pickle.dump(self._pending, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.chunks += 1
            self._pending = []

    def put(self, chunk, rows: int) -> None:
        """Spool ``chunk`` (``rows`` rows kept in any shape, e.g. by column) as one item."""
        self._flush()
        pickle.dump(chunk, self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.chunks += 1
        self.count += rows

    def __iter__(self):
        """The spooled rows, chunk by chunk (lists)."""
        self._flush()
        self.file.seek(0)
        for _ in range(self.chunks):
            yield pickle.load(self.file)  # noqa: S301 (our own temporary file)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Excel --------------------------------------------------------------------------------------

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_TEXT = 32_767
EXCEL_SHEET_NAME = 31
DICTIONARY_SHEET = "dictionary"


# A text cell starting with one of these is a formula to a spreadsheet that re-reads it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def excel_pieces(value: str) -> list[str]:
    """``value`` (escaped, :data:`TEXT_ESCAPE_RULE`) in pieces of at most
    :data:`EXCEL_MAX_TEXT` characters as Excel counts them (UTF-16 units), never half a
    character; their concatenation is the escaped text."""
    value = escape_text(value, _NOT_EXCEL, blanks=False)
    if len(value) <= EXCEL_MAX_TEXT // 2:
        return [value]
    pieces, start, units = [], 0, 0
    for i, char in enumerate(value):
        size = 2 if ord(char) > 0xFFFF else 1
        if units + size > EXCEL_MAX_TEXT:
            pieces.append(value[start:i])
            start, units = i, 0
        units += size
    pieces.append(value[start:])
    return pieces


# The workbook is written as its OOXML parts directly (SpreadsheetML, ECMA-376 part 1), each
# cell from a template chosen by its value's type: openpyxl's write-only mode builds a cell
# object and an XML element per value, which cost the export forty times reading the data.
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_DOCUMENT_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Cell styles (the cellXfs of styles.xml): 1 date, 2 date and time, 3 text with the quote
# prefix; the number formats are those openpyxl gives dates and datetimes.
_DATE_STYLE, _DATETIME_STYLE, _QUOTED_STYLE = 1, 2, 3
_STYLES = (
    f'{_XML_DECLARATION}<styleSheet xmlns="{_MAIN_NS}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd h:mm:ss"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/>'
    '</fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    '</cellStyleXfs><cellXfs count="4">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/>'
    '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
    '</cellStyles></styleSheet>')
_SHEET_START = (
    f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN_NS}"><dimension ref="A1:{{last}}"/>'
    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
    'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft"/></sheetView>'
    '</sheetViews><sheetFormatPr defaultRowHeight="15"/><sheetData>')
_SHEET_END = "</sheetData></worksheet>"
# What a text cannot carry as it is in a worksheet: what XML escapes (a carriage return too,
# which an XML reader would read as a line feed), what the export's rule escapes
# (:data:`_NOT_EXCEL`, and the rule's own "\u{"), and what the cell must say (a text
# starting like a formula, or starting or ending with a blank): such text takes
# :func:`_text_tail`, any other is written as it is.
_EXCEL_SPECIAL = re.compile(
    "[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|\\\\u\\{|^[-=+@\\s]|\\s\\Z")
EXCEL_EPOCH = dt.date(1899, 12, 30)
EXCEL_EPOCH_TIME = dt.datetime(1899, 12, 30)  # noqa: DTZ001 (naive UTC, as Excel counts)
# Excel counts a 29 February 1900 that never was: the serials of earlier days are one less.
_EXCEL_LEAP_BUG = 60
_DAY = dt.timedelta(days=1)
_EXCEL_UNIX_DAYS = (dt.date(1970, 1, 1) - EXCEL_EPOCH).days  # the serial of 1 January 1970
_EXCEL_ORDINAL = EXCEL_EPOCH.toordinal()
_SHEET_BLOCK_ROWS = 1000
_XLSX_DEFLATE_LEVEL = 1


def _xml_text(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _text_tail(text: str) -> str:
    """An inline-string cell holding ``text`` (one piece, already escaped by the rule), from
    the end of its reference on: never a formula, and text a spreadsheet could take for one
    carries Excel's quote prefix, so editing the cell keeps it text."""
    style = f' s="{_QUOTED_STYLE}"' if text.startswith(FORMULA_STARTS) else ""
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f'"{style} t="inlineStr"><is><t{space}>{_xml_text(text)}</t></is></c>'


def _text_cell(ref: str, text: str) -> str:
    return f'<c r="{ref}{_text_tail(text)}'


def _serial_days(days: int) -> int:
    return days - 1 if 0 < days <= _EXCEL_LEAP_BUG else days


def _date_cell(ref: str, value: dt.date) -> str:
    return (f'<c r="{ref}" s="{_DATE_STYLE}">'
            f'<v>{_serial_days((value - EXCEL_EPOCH).days)}</v></c>')


def _datetime_cell(ref: str, value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ExportError(f"Naive datetime {value} in the export rows.")
    serial = value.timestamp() / 86400 + _EXCEL_UNIX_DAYS
    if serial > _EXCEL_LEAP_BUG + 1:
        return f'<c r="{ref}" s="{_DATETIME_STYLE}"><v>{serial!r}</v></c>'
    since = _naive_utc(value) - EXCEL_EPOCH_TIME
    serial = _serial_days(since.days) + (since - dt.timedelta(days=since.days)) / _DAY
    return f'<c r="{ref}" s="{_DATETIME_STYLE}"><v>{serial!r}</v></c>'


def _integer_cell(ref: str, value: int) -> str:
    return f'<c r="{ref}"><v>{value}</v></c>'


def _float_cell(ref: str, value: float) -> str:
    return f'<c r="{ref}"><v>{value!r}</v></c>' if math.isfinite(value) else ""


def _decimal_cell(ref: str, value: Decimal) -> str:
    return f'<c r="{ref}"><v>{value:f}</v></c>' if value.is_finite() else ""


def _boolean_cell(ref: str, value: bool) -> str:
    return f'<c r="{ref}"><v>{int(value)}</v></c>'


# The cell of a value that is not text, by its type (a boolean variable's value is 1/0).
_CELLS = {int: _integer_cell, float: _float_cell, Decimal: _decimal_cell, bool: _boolean_cell,
          dt.date: _date_cell, dt.datetime: _datetime_cell}


def _continuation_header(name: str, part: int) -> str:
    return f"{name}_part{part}"


def _check_sheet(name: str, taken: set[str]) -> None:
    if len(name) > EXCEL_SHEET_NAME or not name or re.search(r"[\[\]:*?/\\]", name):
        raise ExportError(f"{name!r} cannot be an Excel sheet name (31 characters at most, "
                          "none of []:*?/\\).")
    if name.lower() in taken:
        raise ExportError(f"Two Excel sheets would be named {name!r}.")
    taken.add(name.lower())


class _Layout:
    """The columns of a sheet: each variable, then its continuation columns (``parts``: the
    cells its longest text needs), then its label column if it is coded."""

    def __init__(self, dataset: Dataset, parts: list[int]):
        self.parts = list(parts)
        self.header: list[str] = []
        self.first: list[int] = []
        self.label: list[int | None] = []
        for v, width in zip(dataset.variables, parts, strict=True):
            self.first.append(len(self.header))
            self.header.append(v.name)
            self.header += [_continuation_header(v.name, k) for k in range(2, width + 1)]
            self.label.append(len(self.header) if v.is_coded else None)
            if v.is_coded:
                self.header.append(f"{v.name}_label")
        if len(self.header) > EXCEL_MAX_COLUMNS:
            raise ExportError(f"{dataset.name}: {len(self.header)} columns do not fit a sheet.")
        self.letters = [get_column_letter(k + 1) for k in range(len(self.header))]


def _pieces_cells(layout: _Layout, index: int, number: str, pieces: list[str]) -> list[str]:
    """The cells of a text in pieces, as many as the layout has columns for."""
    first = layout.first[index]
    return [_text_cell(layout.letters[first + k] + number, piece)
            for k, piece in enumerate(pieces[:layout.parts[index]])]


class _LabelCells:
    """The label cells of a coded variable: ``start``, the row number, then the tail of the
    code's cell (made once per code, empty for a code without a label)."""

    def __init__(self, v: Variable, letter: str):
        self.decode = v.decode
        self.start = f'<c r="{letter}'
        self.tails: dict = {}

    def tail(self, code) -> str:
        text = self.decode(code)
        tail = self.tails[code] = _text_tail(
            "".join(excel_pieces(text))[:EXCEL_MAX_TEXT]) if text else ""
        return tail


def _sheet_rows(dataset: Dataset, rows: Iterable[tuple], layout: _Layout, out) -> tuple[int, list]:
    """Write the data rows of a sheet (its rows 2, 3 …) to the binary file ``out`` in
    ``layout``. Returns their number and the cells each variable needs: more than the layout
    has (a text longer than its cells) means the rows must be written again, wider."""
    variables = dataset.variables
    parts = list(layout.parts)
    columns = [(index, layout.letters[layout.first[index]], v.type == BOOLEAN,
                _LabelCells(v, layout.letters[layout.label[index]]) if v.is_coded else None)
               for index, v in enumerate(variables)]
    count, block = 0, []
    for row in rows:
        count += 1
        if count >= EXCEL_MAX_ROWS:
            raise ExportError(f"{dataset.name}: more rows than an Excel sheet holds "
                              f"({EXCEL_MAX_ROWS - 1}).")
        number = str(count + 1)
        cells = []
        for (index, letter, boolean, labels), value in zip(columns, row, strict=True):
            if value is None or value == "":
                continue
            if type(value) is str:
                # A text longer than half a cell may need more than one (UTF-16 units).
                if len(value) > EXCEL_MAX_TEXT // 2 or _EXCEL_SPECIAL.search(value):
                    pieces = excel_pieces(value)
                    parts[index] = max(parts[index], len(pieces))
                    cells += _pieces_cells(layout, index, number, pieces)
                else:
                    cells.append(f'<c r="{letter}{number}" t="inlineStr"><is><t>{value}</t>'
                                 '</is></c>')
            elif boolean:
                cells.append(f'<c r="{letter}{number}"><v>{1 if value else 0}</v></c>')
            elif (kind := type(value)) is int:
                cells.append(f'<c r="{letter}{number}"><v>{value}</v></c>')
            elif kind is float and math.isfinite(value):
                cells.append(f'<c r="{letter}{number}"><v>{value!r}</v></c>')
            elif kind is dt.date and (days := value.toordinal() - _EXCEL_ORDINAL) > 60:
                cells.append(f'<c r="{letter}{number}" s="{_DATE_STYLE}"><v>{days}</v></c>')
            elif (kind is dt.datetime and value.tzinfo is not None
                  and (serial := value.timestamp() / 86400 + _EXCEL_UNIX_DAYS) > 61):
                cells.append(f'<c r="{letter}{number}" s="{_DATETIME_STYLE}"><v>{serial!r}</v>'
                             '</c>')
            else:  # the rest, and the edge cases of the types above

                cell = _CELLS.get(type(value))
                if cell is None:
                    raise ExportError(f"{dataset.name}: no Excel cell for a "
                                      f"{type(value).__name__}.")
                cells.append(cell(letter + number, value))
            if labels is not None:
                tail = labels.tails.get(value)
                if tail is None:
                    tail = labels.tail(value)
                if tail:
                    cells.append(f"{labels.start}{number}{tail}")
        block.append(f'<row r="{number}">{"".join(cells)}</row>')
        if len(block) == _SHEET_BLOCK_ROWS:
            out.write("".join(block).encode())
            block = []
    out.write("".join(block).encode())
    return count, parts


def _replayable(rows: Iterable[tuple], spool: "_Spool"):
    """``rows`` and a function giving them again: ``rows`` itself when it can be iterated
    more than once (the export's spools), else what was spooled on the first pass."""
    if iter(rows) is not rows:
        return rows, lambda: rows

    def first_pass():
        for batch in _batches(rows):
            spool.put(batch, len(batch))
            yield from batch

    return first_pass(), lambda: itertools.chain.from_iterable(spool)


def _zip_info(name: str, when: dt.datetime) -> zipfile.ZipInfo:
    """A zip entry dated by the stamp, with fixed attributes (same data, same bytes)."""
    info = zipfile.ZipInfo(name, date_time=(max(when.year, 1980), when.month, when.day,
                                            when.hour, when.minute, when.second))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    # Deflate's fastest level: the sheets' XML repeats itself so much that it still comes to
    # a third of the CSV files, at a quarter of level 6's time (ZipInfo's own level: Python
    # 3.11 names it _compresslevel, later versions also compress_level).
    info._compresslevel = _XLSX_DEFLATE_LEVEL
    return info


def _write_sheet(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: list[str],
                 count: int, body) -> None:
    """One worksheet: its header row (frozen panes below it), then the data rows of ``body``
    (a file of the rows' XML, :func:`_sheet_rows`)."""
    last = f"{get_column_letter(max(len(header), 1))}{count + 1}"
    cells = "".join(_text_cell(f"{get_column_letter(k)}1", "".join(excel_pieces(name)))
                    for k, name in enumerate(header, 1))
    size = body.seek(0, 2)
    with archive.open(info, "w", force_zip64=size > (1 << 31)) as out:
        out.write(_SHEET_START.format(last=last).encode())
        out.write(f'<row r="1">{cells}</row>'.encode())
        body.seek(0)
        while block := body.read(1 << 20):
            out.write(block)
        out.write(_SHEET_END.encode())


def _write_dataset_sheet(archive, info, dataset: Dataset, rows: Iterable[tuple]) -> int:
    """A dataset's sheet. Its rows are written once in a layout of one cell per text; only
    when a text needs more (longer than :data:`EXCEL_MAX_TEXT`) are they written again with
    the continuation columns (from a spool, when ``rows`` can be read only once)."""
    with _Spool() as spool, tempfile.TemporaryFile() as body:
        first, again = _replayable(rows, spool)
        parts = [1] * len(dataset.variables)
        while True:
            layout = _Layout(dataset, parts)
            body.seek(0)
            body.truncate()
            count, parts = _sheet_rows(dataset, first, layout, body)
            if parts == layout.parts:
                break
            first = again()
        _write_sheet(archive, info, layout.header, count, body)
    return count


def _dictionary_rows(codebook_entries) -> Iterable[tuple]:
    label = COLUMNS.index("label")
    for entry in codebook_entries:
        cells = entry.cells()
        if entry.type == DATETIME:
            cells[label] += UTC_SUFFIX
        yield tuple("".join(excel_pieces(c))[:EXCEL_MAX_TEXT] if isinstance(c, str) else c
                    for c in cells)


def _workbook_parts(names: list[str], when: dt.datetime) -> dict[str, str]:
    """The package's parts other than the worksheets, for sheets ``names`` in order."""
    sheets = "".join(f'<sheet name="{_xml_text(name).replace(chr(34), "&quot;")}" '
                     f'sheetId="{k}" r:id="rId{k}"/>' for k, name in enumerate(names, 1))
    sheet_relations = "".join(
        f'<Relationship Id="rId{k}" Type="{_DOCUMENT_RELATIONSHIPS}/worksheet" '
        f'Target="worksheets/sheet{k}.xml"/>' for k in range(1, len(names) + 1))
    sheet_types = "".join(f'<Override PartName="/xl/worksheets/sheet{k}.xml" '
                          f'ContentType="{_SHEET_TYPE}"/>' for k in range(1, len(names) + 1))
    properties = DocumentProperties(creator="openpyxl", created=when, modified=when)
    return {
        "[Content_Types].xml": (
            f'{_XML_DECLARATION}<Types xmlns="{_CONTENT_TYPES}">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f'{sheet_types}<Override PartName="/xl/styles.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '</Types>'),
        "_rels/.rels": (
            f'{_XML_DECLARATION}<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
            f'<Relationship Id="rId1" Type="{_DOCUMENT_RELATIONSHIPS}/officeDocument" '
            'Target="xl/workbook.xml"/><Relationship Id="rId2" Type="http://schemas.'
            'openxmlformats.org/package/2006/relationships/metadata/core-properties" '
            'Target="docProps/core.xml"/></Relationships>'),
        "docProps/core.xml": tostring(properties.to_tree()).decode(),
        "xl/workbook.xml": (
            f'{_XML_DECLARATION}<workbook xmlns="{_MAIN_NS}" '
            f'xmlns:r="{_DOCUMENT_RELATIONSHIPS}"><bookViews><workbookView/></bookViews>'
            f'<sheets>{sheets}</sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            f'{_XML_DECLARATION}<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
            f'{sheet_relations}<Relationship Id="rId{len(names) + 1}" '
            f'Type="{_DOCUMENT_RELATIONSHIPS}/styles" Target="styles.xml"/></Relationships>'),
        "xl/styles.xml": _STYLES,
    }


def write_xlsx(path, tables: Iterable[tuple[Dataset, Iterable[tuple]]], codebook_entries, *,
               stamp: dt.datetime) -> dict[str, int]:
    """One sheet per dataset (its name; a header row of variable names, each coded variable
    followed by ``<name>_label`` with the decoded label), then a ``dictionary`` sheet with the
    codebook. Returns the number of data rows per sheet.

    Datetimes are naive UTC (the dictionary label says so), dates Excel dates, decimals exact
    numbers, booleans 1/0. Text is always a text cell (an inline string), never a formula:
    text starting with =, +, -, @, tab or carriage return also carries Excel's quote prefix
    (formula injection). Control characters, which a worksheet cannot hold, are escaped
    (:data:`TEXT_ESCAPE_RULE`). A text longer than a cell holds (:data:`EXCEL_MAX_TEXT`)
    continues in the columns ``<name>_part2``, ``<name>_part3`` … right after it, present
    only where a value needs them; the text is their concatenation.

    The parts are written directly (:func:`_workbook_parts`), each sheet's rows streamed to a
    temporary file and then into the zip, so memory stays flat. Determinism: the document
    properties carry the stamp, and every zip entry is dated by the stamp, with fixed
    attributes."""
    when = _utc(stamp)
    counts: dict[str, int] = {}
    taken = {DICTIONARY_SHEET}
    names: list[str] = []
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for dataset, rows in tables:
            _check_sheet(dataset.name, taken)
            names.append(dataset.name)
            info = _zip_info(f"xl/worksheets/sheet{len(names)}.xml", when)
            counts[dataset.name] = _write_dataset_sheet(archive, info, dataset, rows)
        names.append(DICTIONARY_SHEET)
        with tempfile.TemporaryFile() as body:
            dictionary = Dataset(DICTIONARY_SHEET, DICTIONARY_SHEET, tuple(
                Variable(name, name, TEXT) for name in COLUMNS), sas_name="")
            count, _parts = _sheet_rows(dictionary, _dictionary_rows(codebook_entries),
                                        _Layout(dictionary, [1] * len(COLUMNS)), body)
            _write_sheet(archive, _zip_info(f"xl/worksheets/sheet{len(names)}.xml", when),
                         list(COLUMNS), count, body)
        counts[DICTIONARY_SHEET] = count
        for name, text in _workbook_parts(names, when).items():
            archive.writestr(_zip_info(name, when), text.encode())
    return counts


# SAS XPORT version 5 ------------------------------------------------------------------------

XPT_TEXT_BYTES = 200
SAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,7}")
SAS_EPOCH = dt.date(1960, 1, 1)
SAS_EPOCH_UTC = dt.datetime(1960, 1, 1, tzinfo=dt.UTC)
_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")


def _first_piece(value: str, limit: int) -> str:
    """The first piece of ``value`` (longer than ``limit`` UTF-8 bytes) as :func:`split_text`
    cuts it: before the last space that keeps it within the limit, else at the last whole
    character that fits, never ending with a blank (empty when the text starts with more
    blanks than fit)."""
    fits = len(value.encode()[:limit].decode("utf-8", "ignore"))
    cut = next((k for k in range(fits, 0, -1) if value[k] == " " and value[k - 1] != " "), 0)
    if not cut:
        cut = fits
        while cut and value[cut - 1] == " ":
            cut -= 1
    return value[:cut]


def split_text(value: str, limit: int = XPT_TEXT_BYTES) -> list[str]:
    """``value`` in pieces of at most ``limit`` UTF-8 bytes whose concatenation is ``value``
    (SDTM practice for text over 200 characters). A piece ends before the last space that
    keeps it within the limit, the space starting the next piece (readers drop trailing
    blanks, never leading ones); a text without such a space is cut at the last whole
    character that fits."""
    if len(value) * 4 <= limit or (len(value) <= limit and value.isascii()):
        return [value]  # a character takes at most 4 bytes, an ASCII one 1
    pieces = []
    rest = value
    while len(rest.encode()) > limit:
        piece = _first_piece(rest, limit)
        if not piece:
            raise ExportError(f"Cannot split a text of {len(value)} characters with a run of "
                              f"{limit} blanks or more: the blanks would end a piece.")
        pieces.append(piece)
        rest = rest[len(piece):]
    pieces.append(rest)
    return pieces


def _part_label(label: str, part: int, length: int = SAS_LABEL_LENGTH) -> str:
    suffix = f" (part {part})"
    return label[: length - len(suffix)].rstrip() + suffix


def xpt_companion_name(sas_name: str) -> str:
    """The member (and file) name of the companion of dataset ``sas_name`` that holds the
    continuation pieces of its long texts: the name cut to 6 characters, then ``_c``. It never
    equals a dataset's name, which has no underscore (:func:`exports.dictionary.sas_names`),
    and the export's datasets differ in their first 6 characters (tested)."""
    return f"{sas_name[: SAS_NAME_LENGTH - 2]}_c"


# The companion's columns: (name, label, format); the text column follows.
XPT_COMPANION_KEYS = (
    ("ROW", "Row of the record in the main file", None),
    ("VARNAME", "Variable the piece continues", None),
    ("PIECE", "Piece number (the variable holds 1)", None),
)
XPT_COMPANION_TEXT = ("TEXT", "Text of the piece")
# A companion row costs its three keys (8 bytes each) besides its piece; the companion file
# its headers (80-byte records, and 140 bytes for each of its four columns).
_COMPANION_KEY_BYTES = 24
_COMPANION_FILE_BYTES = 8 * 80 + 4 * 140
# The widths the companion's pieces may be cut to: 64 bytes at least, so that a run of
# blanks (at most 63 once escaped, :data:`TEXT_ESCAPE_RULE`) never fills a piece.
XPT_PIECE_WIDTHS = (64, 96, 128, 160, XPT_TEXT_BYTES)


def _first_width(sizes: dict[int, int], count: int, piece: int) -> tuple[int, int, int]:
    """(width, bytes, pieces) of a text column in the main file: the width (1 … 200 bytes)
    that makes it and its companion rows smallest, ``count`` rows of ``width`` bytes plus,
    for each value longer (``sizes``: byte length → number of values), its further pieces
    of at most ``piece`` bytes as companion rows; the widest of the cheapest."""
    longest = max(sizes, default=0)
    if longest <= 1:
        return 1, count, 0
    lengths = np.fromiter(sizes.keys(), dtype=np.int64, count=len(sizes))
    numbers = np.fromiter(sizes.values(), dtype=np.int64, count=len(sizes))
    best = (0, 0, 0)
    for width in range(1, min(longest, XPT_TEXT_BYTES) + 1):  # one vector at a time
        tails = np.maximum(lengths - width, 0)
        pieces = int(((tails + piece - 1) // piece * numbers).sum())
        cost = count * width + pieces * (_COMPANION_KEY_BYTES + piece)
        if width == 1 or cost <= best[1]:  # the widest of the cheapest
            best = (width, cost, pieces)
    return best


def _xpt_layout(sizes: list[dict | None], count: int) -> tuple[list[int | None], int]:
    """The main file's text column widths (None for a number) and the companion's piece
    width: the layout that makes both files smallest (rows as wide as their columns, the
    companion's headers if any value continues). Each text stays whole where that is
    cheaper; only the few long values of a column holding short texts continue."""
    texts = [seen for seen in sizes if seen is not None]
    best = None
    if all(max(seen, default=0) <= XPT_TEXT_BYTES for seen in texts):
        whole = [None if seen is None else max(1, max(seen, default=0)) for seen in sizes]
        best = (count * sum(w for w in whole if w is not None), whole, XPT_TEXT_BYTES)
    for piece in XPT_PIECE_WIDTHS:
        widths, total, continued = [], 0, 0
        for seen in sizes:
            if seen is None:
                widths.append(None)
                continue
            width, cost, pieces = _first_width(seen, count, piece)
            widths.append(width)
            total += cost
            continued += pieces
        total += _COMPANION_FILE_BYTES if continued else 0
        if best is None or total < best[0]:
            best = (total, widths, piece)
    return best[1], best[2]


def _sas_numbers(v: Variable, values) -> np.ndarray:
    """A column of SAS numbers (dates in days, datetimes in seconds from 1960, UTC), None as
    missing (NaN)."""
    if v.type == DATE:
        epoch = SAS_EPOCH.toordinal()
        return np.array([np.nan if x is None else float(x.toordinal() - epoch)
                         for x in values], dtype="float64")
    if v.type == DATETIME:
        return np.array(_since(values, SAS_EPOCH_UTC, np.nan), dtype="float64")
    return np.array([np.nan if x is None else float(x) for x in values], dtype="float64")


# What a text must have escaped in XPORT (:func:`escape_text` with :data:`_NOT_XPT` and
# blanks): any other is written as it is (printable ASCII already).
_XPT_SPECIAL = re.compile(
    "[^\t\n\r\x20-\x7e]|\\\\u\\{| \\Z| {" + str(BLANK_RUN) + "}")


def _xpt_texts(values) -> list[str]:
    """A text column as XPORT text: escaped, ASCII (:data:`TEXT_ESCAPE_RULE`); a missing
    text is blank."""
    return ["" if x is None else x if type(x) is str and not _XPT_SPECIAL.search(x)
            else escape_text(str(x), _NOT_XPT, blanks=True) for x in values]


def _xpt_spool(dataset: Dataset, rows: Iterable[tuple], spool: _Spool) -> list[dict | None]:
    """Spool ``rows`` as XPORT columns, a chunk at a time (numbers as SAS numbers, text
    escaped) and return, for each variable, the byte lengths of its texts (length → number
    of values; None for a number)."""
    sizes: list[Counter | None] = [Counter() if v.type == TEXT else None
                                   for v in dataset.variables]
    for batch in _batches(rows):
        columns = []
        for v, values, seen in zip(dataset.variables, zip(*batch, strict=True), sizes,
                                   strict=True):
            if v.type != TEXT:
                columns.append(_sas_numbers(v, values))
                continue
            texts = _xpt_texts(values)
            seen.update(map(len, texts))  # ASCII: a character is a byte
            columns.append(texts)
        spool.put(columns, len(batch))
    return sizes


def _xpt_columns(dataset: Dataset, widths: list[int | None]):
    """The XPORT columns of the main file: (name, label, width in bytes, format, text?)."""
    result = []
    for v, width in zip(dataset.variables, widths, strict=True):
        if width is None:
            fmt = {DATE: "DATE9.", DATETIME: "DATETIME20."}.get(v.type)
            result.append((v.sas_name, v.sas_label, 8, fmt, False))
        else:
            result.append((v.sas_name, v.sas_label, width, None, True))
    return result


def _check_xpt(dataset: Dataset, columns) -> None:
    problems = []
    if not SAS_NAME.fullmatch(dataset.sas_name or ""):
        problems.append(f"dataset name {dataset.sas_name!r} is not a SAS name of at most "
                        f"{SAS_NAME_LENGTH} characters")
    seen = set()
    for name, label, width, _fmt, text in columns:
        if not SAS_NAME.fullmatch(name):
            problems.append(f"{name!r} is not a SAS name of at most {SAS_NAME_LENGTH} "
                            "characters (letters, digits, _; not starting with a digit)")
        if name.upper() in seen:
            problems.append(f"{name!r} is not unique")
        seen.add(name.upper())
        if len(label) > SAS_LABEL_LENGTH or not label.isascii():
            problems.append(f"{name}: the label {label!r} is not ASCII of at most "
                            f"{SAS_LABEL_LENGTH} characters")
        if text and width > XPT_TEXT_BYTES:
            problems.append(f"{name}: a value of {width} bytes (at most {XPT_TEXT_BYTES})")
    if problems:
        raise ExportError(f"{dataset.name}: cannot be written as SAS XPORT v5: "
                          + "; ".join(problems) + ".")


_XPT_OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"
XPT_RECORD = 80


def _xpt_header(columns, label: str, table: str, work: Path) -> bytes:
    """The XPORT header of a member with ``columns``, as pyreadstat writes it (from one row
    holding a text as wide as each column: pyreadstat sizes a column to its longest
    value)."""
    frame = {}
    for name, _label, width, _fmt, text in columns:
        frame[name] = (pd.Series(["x" * max(width, 1)], dtype="object") if text
                       else pd.Series([np.nan], dtype="float64"))
    path = work / "header.xpt"
    pyreadstat.write_xport(
        pd.DataFrame(frame), str(path), file_label=label,
        column_labels=[c[1] for c in columns], table_name=table, file_format_version=5,
        variable_format={c[0]: c[3] for c in columns if c[3]},
    )
    written = path.read_bytes()
    start = written.find(_XPT_OBS_HEADER)
    if start < 0 or start % XPT_RECORD:
        raise ExportError(f"{table}: unexpected XPORT layout.")
    return written[:start + XPT_RECORD]


SAS_MISSING = 0x2E << 56  # ".", SAS's (system) missing value: 0x2E then zeros
_IBM_EXPONENT_BIAS = 64


def ibm_doubles(numbers: np.ndarray) -> np.ndarray:
    """IEEE doubles as the 8-byte IBM hexadecimal floats of XPORT (big-endian ``>u8``), NaN
    as SAS missing. The conversion is exact (IBM keeps 56 bits of fraction, IEEE 53), so
    it gives what any correct writer does: sign, exponent of 16 biased by 64, fraction
    normalized so that its first hexadecimal digit is not zero."""
    bits = np.ascontiguousarray(numbers, dtype="float64").view("uint64")
    sign = bits >> np.uint64(63)
    exponent = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    mantissa = (bits & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52)
    # value = mantissa / 2**53 * 2**p with the fraction in [1/2, 1); 16**q = 2**(4q).
    power = exponent - 1022
    q = -(-power // 4)
    shift = (3 - (4 * q - power)).astype(np.uint64)
    result = ((sign << np.uint64(63))
              | ((q + _IBM_EXPONENT_BIAS).astype(np.uint64) << np.uint64(56))
              | (mantissa << shift))
    zero = (bits & np.uint64((1 << 63) - 1)) == 0
    small = (exponent == 0) | (q + _IBM_EXPONENT_BIAS < 0)  # subnormal or below IBM's range
    result[zero | small] = 0
    result[np.isnan(numbers)] = SAS_MISSING
    if ((q + _IBM_EXPONENT_BIAS > 127) & ~np.isnan(numbers) & ~zero).any():
        raise ExportError("A number beyond the range of SAS XPORT (about 7.2e75).")
    return result.astype(">u8")


def _xpt_records(columns, chunk: list, count: int) -> bytes:
    """The data records of ``count`` rows given by column (SAS numbers, or ASCII texts no
    wider than their column): numbers as IBM doubles, texts padded with blanks."""
    record = np.dtype([(f"v{i}", ">u8" if not c[4] else f"S{max(c[2], 1)}")
                       for i, c in enumerate(columns)])
    data = np.empty(count, dtype=record)
    for i, ((_name, _label, width, _fmt, text), values) in enumerate(zip(columns, chunk,
                                                                        strict=True)):
        if text:
            # Escaped texts hold no NUL: numpy's padding becomes the blanks XPORT pads with.
            texts = np.array(values, dtype=f"S{max(width, 1)}").view(np.uint8)
            texts[texts == 0] = ord(" ")
            data[f"v{i}"] = texts.view(f"S{max(width, 1)}")
        else:
            data[f"v{i}"] = ibm_doubles(np.asarray(values, dtype="float64"))
    return data.tobytes()


def _xpt_stamp(when: dt.datetime) -> bytes:
    return (f"{when.day:02d}{MONTHS[when.month - 1].upper()}{when.year % 100:02d}:"
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}").encode("ascii")


def _stamp_xpt_header(path: Path, when: dt.datetime) -> None:
    """Replace the created and modified times readstat takes from the clock (library header
    record 2, columns 65–80, and record 3, columns 1–16; the member descriptor records after
    the DSCRPTR header, same columns) by the stamp."""
    record = 80
    with open(path, "r+b") as f:
        head = f.read(record * 7)
        markers = {0: b"LIBRARY HEADER RECORD", 3: b"MEMBER  HEADER RECORD",
                   4: b"DSCRPTR HEADER RECORD"}
        for number, marker in markers.items():
            if head[number * record + 20: number * record + 20 + len(marker)] != marker:
                raise ExportError(f"{path.name}: unexpected XPORT header layout.")
        fields = (record * 1 + 64, record * 2, record * 5 + 64, record * 6)
        for offset in fields:
            if not _XPT_STAMP.fullmatch(head[offset: offset + 16]):
                raise ExportError(f"{path.name}: no creation time at byte {offset} of the "
                                  "XPORT header.")
        stamp = _xpt_stamp(when)
        for offset in fields:
            f.seek(offset)
            f.write(stamp)


def _write_xpt_file(path: Path, columns, chunks: Iterable[tuple[int, list]], label: str,
                    table: str, work: Path, stamp: dt.datetime) -> None:
    """One XPORT member from ``chunks`` of rows given by column ((row count, columns)): the
    header pyreadstat writes for the columns, then the data records, padded with blanks to
    a whole 80-byte record as v5 requires."""
    with open(path, "wb") as out:
        out.write(_xpt_header(columns, label, table, work))
        size = 0
        for count, chunk in chunks:
            data = _xpt_records(columns, chunk, count)
            out.write(data)
            size += len(data)
        out.write(b" " * (-size % XPT_RECORD))
    _stamp_xpt_header(path, stamp)


def _xpt_main_rows(spool: _Spool, widths: list[int | None], names: list[str],
                   pieces: _Spool, piece_width: list[int], limit: int):
    """The main file's chunks of columns, each text cut to its column's width (before a
    space where it can, :func:`split_text`); the rest of a longer text goes to ``pieces`` as
    companion rows (row number, variable, piece number, piece of at most ``limit`` bytes),
    the widest piece's width kept in ``piece_width``."""
    first_row = 0
    for chunk in spool:
        count = len(chunk[0]) if chunk else 0
        out, continued = [], []
        for index, (values, width, name) in enumerate(zip(chunk, widths, names, strict=True)):
            if width is None or max(map(len, values), default=0) <= width:
                out.append(values)
                continue
            cut = []
            for number, value in enumerate(values, start=first_row + 1):
                if len(value) <= width:
                    cut.append(value)
                    continue
                first = _first_piece(value, width)
                cut.append(first)
                for k, piece in enumerate(split_text(value[len(first):], limit), start=2):
                    piece_width[0] = max(piece_width[0], len(piece))
                    continued.append((number, index, k, name, piece))
            out.append(cut)
        # The companion's rows in the order of the main file's rows, then of its columns.
        for number, _index, k, name, piece in sorted(continued):
            pieces.append((float(number), name, float(k), piece))
        first_row += count
        yield count, out


def _companion_chunks(pieces: _Spool) -> Iterable[tuple[int, list]]:
    """The companion's rows (spooled as rows) by column."""
    for chunk in pieces:
        row, variable, piece, text = (list(c) for c in zip(*chunk, strict=True))
        yield len(chunk), [np.array(row), variable, np.array(piece), text]


def write_xpt(path, dataset: Dataset, rows: Iterable[tuple], *, stamp: dt.datetime,
              files: list | None = None) -> int:
    """SAS XPORT version 5 (the FDA transport format), one dataset per file, member name
    ``dataset.sas_name``. Columns are the variables' ``sas_name``s with their ``sas_label``s;
    dates are SAS dates (DATE9.), datetimes SAS datetimes in UTC (DATETIME20.), booleans 1/0,
    coded values their codes; text is ASCII, as V5 readers expect, anything else escaped
    reversibly (:data:`TEXT_ESCAPE_RULE`: ``µ`` is ``\\u{b5}``).

    The v5 limits are checked here because pyreadstat does not check them all: names of at
    most 8 characters, ASCII labels of at most 40, character values of at most 200 bytes.

    Long text, SDTM fashion (text over 200 characters: the first piece in the variable, the
    rest in supplemental records): the main file has one row per record, each text variable
    holding a value's first piece, of at most the column's width (200 bytes or less: the
    layout that makes both files smallest, :func:`_xpt_layout`, so that one long value does
    not widen every row). Only a value longer than its column continues, in the companion
    file ``<xpt_companion_name(sas_name)>.xpt`` beside the main one: one row per further
    piece, ROW (the record's row number in the main file, from 1), VARNAME (the variable),
    PIECE (2, 3 …) and TEXT (the piece, at most 64 to 200 bytes, :data:`XPT_PIECE_WIDTHS`,
    the same limit for the whole file, chosen with the widths). Pieces end before a space where
    they can (:func:`split_text`; readers drop trailing blanks, never leading ones). The
    text is the variable's value followed by its pieces in PIECE order, unescaped by the
    rule. No companion is written when no value is longer than its column; ``files``, when
    given, gets ``(path, rows)`` of the companion written. Anything out of limits raises
    :class:`ExportError`.

    The rows are read once, a chunk at a time, into an on-disk spool kept by column
    (learning the texts' lengths), then written in chunks, the companion rows spooled on
    the way and written last: pyreadstat writes the header (from one row as wide as each
    column, pyreadstat sizing a column to its longest value), the data records are
    written here from whole columns (numbers as IBM doubles, :func:`ibm_doubles`; texts
    padded with blanks) and padded with blanks to a whole 80-byte record as v5 requires.
    Returns the number of rows of the main file."""
    path = Path(path)
    when = _utc(stamp)
    companion = path.with_name(f"{xpt_companion_name(dataset.sas_name)}.xpt")
    with _Spool() as spool, _Spool() as pieces, \
            tempfile.TemporaryDirectory(dir=path.parent) as work:
        widths, piece = _xpt_layout(_xpt_spool(dataset, rows, spool), spool.count)
        columns = _xpt_columns(dataset, widths)
        _check_xpt(dataset, columns)
        label = _ascii_label(dataset.label)
        piece_width = [1]
        _write_xpt_file(path, columns, _xpt_main_rows(
            spool, widths, [v.sas_name for v in dataset.variables], pieces, piece_width,
            piece),
            label, dataset.sas_name, Path(work), when)
        companion.unlink(missing_ok=True)
        if pieces.count:
            names = [v.sas_name for v, w in zip(dataset.variables, widths, strict=True)
                     if w is not None]
            keys = [(name, text, 8, fmt, False) for name, text, fmt in XPT_COMPANION_KEYS]
            keys[1] = (*keys[1][:2], max(map(len, names)), None, True)
            columns = [*keys, (*XPT_COMPANION_TEXT, piece_width[0], None, True)]
            _write_xpt_file(companion, columns, _companion_chunks(pieces), _ascii_label(
                f"{dataset.label}: long text pieces"), xpt_companion_name(dataset.sas_name),
                Path(work), when)
            if files is not None:
                files.append((companion, pieces.count))
        return spool.count


def _ascii_label(label: str) -> str:
    return ascii_text(label)[:SAS_LABEL_LENGTH]


# Stata --------------------------------------------------------------------------------------

STATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
STATA_RESERVED = frozenset((
    "aggregate", "array", "boolean", "break", "byte", "case", "catch", "class", "colvector",
    "complex", "const", "continue", "default", "delegate", "delete", "do", "double", "else",
    "eltypedef", "end", "enum", "explicit", "export", "external", "float", "for", "friend",
    "function", "global", "goto", "if", "inline", "int", "local", "long", "mata", "matrix",
    "namespace", "new", "numeric", "NULL", "operator", "orgtype", "pointer", "polymorphic",
    "pragma", "private", "protected", "public", "quad", "real", "return", "rowvector", "scalar",
    "short", "signed", "static", "strL", "string", "struct", "super", "switch", "template",
    "this", "throw", "transmorphic", "try", "typedef", "typename", "union", "unsigned", "using",
    "vector", "version", "virtual", "void", "volatile", "while", "_all", "_b", "_coef", "_cons",
    "_n", "_N", "_pi", "_pred", "_rc", "_skip", "in", "with",
))
STATA_LABEL = 80
STATA_STR_BYTES = 2045


def _check_names(dataset: Dataset, pattern: re.Pattern, reserved: frozenset, fmt: str):
    reserved = {word.lower() for word in reserved}
    bad = [v.name for v in dataset.variables
           if not pattern.fullmatch(v.name) or v.name.lower() in reserved]
    if bad:
        raise ExportError(f"{dataset.name}: not valid {fmt} variable names: {', '.join(bad)}.")


STATA_EPOCH = dt.date(1960, 1, 1)
STATA_EPOCH_UTC = dt.datetime(1960, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)
STATA_STRL = 32768
# Stata 118 storage types: (type code, numpy type, the missing value "." of the type).
STATA_DOUBLE = (65526, "<f8", struct.unpack("<d", struct.pack("<Q", 0x7FE0000000000000))[0])
STATA_LONG = (65528, "<i4", 2_147_483_621)
STATA_BYTE = (65530, "i1", 101)
STATA_LONG_RANGE = (-2_147_483_647, 2_147_483_620)
# A strL costs 8 bytes in its row, and once in the file "GSO", v (4), o (8), type (1),
# length (4), the text and its terminating zero.
STATA_GSO = 3 + 4 + 8 + 1 + 4 + 1
STATA_MAP = ("stata_data", "map", "variable_types", "varnames", "sortlist", "formats",
             "value_label_names", "variable_labels", "characteristics", "data", "strls",
             "value_labels", "stata_data_close", "end-of-file")


class _StataColumn:
    """How one variable is stored in Stata, learned from all its values."""

    def __init__(self, v: Variable):
        self.v = v
        self.width = 0  # text: the longest value, in bytes
        self.strl_bytes = 0  # text: what its non-empty values cost as strLs
        self.smallest = self.largest = 0  # integers
        self.extra: set = set()  # coded text: values outside the code list
        self.known = set(_codes(v)) if v.is_coded else set()

    def values(self, values) -> list:
        """A chunk of the column's values as spooled (numbers as Stata numbers, text and
        codes as they are), learning on the way what its storage type needs."""
        v = self.v
        if v.type == DATE:
            epoch = STATA_EPOCH.toordinal()
            return [None if x is None else float(x.toordinal() - epoch) for x in values]
        if v.type == DATETIME:
            return _since(values, STATA_EPOCH_UTC, None, _MILLISECOND)
        if v.type == BOOLEAN:
            return [None if x is None else int(x) for x in values]
        if v.type == TEXT and v.is_coded:
            self.extra.update(set(values) - self.known - {None})
            return list(values)
        if v.type == TEXT:
            values = [None if x is None else x if type(x) is str else str(x) for x in values]
            sizes = [len(x) if x.isascii() else len(x.encode()) for x in values if x]
            self.width = max(self.width, *sizes) if sizes else self.width
            self.strl_bytes += STATA_GSO * len(sizes) + sum(sizes)
            return values
        if v.type == INTEGER:
            present = [x for x in values if x is not None]
            if present:
                self.smallest = min(self.smallest, *present)
                self.largest = max(self.largest, *present)
            return list(values)
        if v.type == FLOAT:
            return [None if x is None else float(x) for x in values]
        raise ExportError(f"{self.v.name}: unknown type {v.type!r}.")

    def settle(self, count: int) -> None:
        """Choose the storage type, once every value has been seen. A text is a strL where
        that takes fewer bytes than a str# as wide as its longest value on every row (or
        where it is longer than a str# holds)."""
        v = self.v
        self.codes = None
        if v.type == TEXT and v.is_coded:
            self.codes = stata_codes(v, list(self.extra))
            self.type = STATA_LONG
        elif v.type == TEXT:
            self.strl = (self.width > STATA_STR_BYTES
                         or 8 * count + self.strl_bytes < max(self.width, 1) * count)
            self.type = ((STATA_STRL, "<u8", 0) if self.strl else
                         (max(self.width, 1), f"S{max(self.width, 1)}", b""))
        elif v.type == BOOLEAN:
            self.type = STATA_BYTE
        elif v.type == INTEGER and (STATA_LONG_RANGE[0] <= self.smallest
                                    and self.largest <= STATA_LONG_RANGE[1]):
            self.type = STATA_LONG
        else:
            self.type = STATA_DOUBLE

    def schema(self) -> pd.Series:
        """One value of the storage type: pandas writes the file's header from it."""
        code, numpy_type, _missing = self.type
        if self.v.type in (DATE, DATETIME):
            return pd.Series([pd.NaT], dtype="datetime64[s]")
        if self.v.type == TEXT and not self.v.is_coded:
            return pd.Series(["" if code == STATA_STRL else "x" * code], dtype="object")
        return pd.Series([0], dtype={"<f8": "float64", "<i4": "int32", "i1": "int8"}[numpy_type])

    def column(self, values: list, number: int, first_row: int, strls) -> np.ndarray:
        """The column's values in a chunk whose first row is ``first_row`` (counting from
        1), text of a strL column written to ``strls`` as GSOs."""
        code, numpy_type, missing = self.type
        if self.codes is not None:
            values = [None if x is None else self.codes[x][0] for x in values]
        if code == STATA_STRL:
            keys, seen = [], {}
            for row, text in enumerate(values, start=first_row):
                if not text:
                    keys.append(0)
                    continue
                key = seen.get(text)
                if key is None:
                    key = seen[text] = number + (row << 16)
                    data = text.encode() + b"\0"
                    strls.write(b"GSO" + struct.pack("<IQBI", number, row, 130, len(data))
                                + data)
                keys.append(key)
            return np.array(keys, dtype="<u8")
        if self.v.type == TEXT and not self.v.is_coded:
            return np.array([x.encode() if x else b"" for x in values], dtype=numpy_type)
        return np.array([missing if x is None else x for x in values], dtype=numpy_type)


def _stata_layout(written: bytes, columns: list[_StataColumn]) -> tuple[bytes, bytes, int]:
    """(everything before the data, everything after the strLs, the map's offset) of the
    file pandas wrote for one row of the schema; checks the storage types are ours."""
    data = written.find(b"<data>")
    strls_end = written.find(b"</strls>")
    map_at = written.find(b"<map>") + len(b"<map>")
    types_at = written.find(b"<variable_types>") + len(b"<variable_types>")
    types = struct.unpack_from(f"<{len(columns)}H", written, types_at)
    row = sum(np.dtype(c.type[1]).itemsize for c in columns)
    if (min(data, strls_end, map_at, types_at) < len(b"<map>")
            or types != tuple(c.type[0] for c in columns)
            or written[data + len(b"<data>") + row:].find(b"</data><strls>") != 0):
        raise ExportError("Unexpected Stata file layout.")
    return written[:data + len(b"<data>")], written[strls_end + len(b"</strls>"):], map_at


def write_dta(path, dataset: Dataset, rows: Iterable[tuple], *, stamp: dt.datetime) -> int:
    """Stata 118 (Stata 14 and later, UTF-8). Integers are long variables (double beyond
    Stata's long range), decimals doubles, booleans bytes 1/0 labelled Yes/No, coded
    integers keep their values with value labels, coded text becomes a numeric variable
    with value labels (:func:`stata_codes`), dates %td, datetimes %tc in UTC (milliseconds,
    Stata's resolution). A text is a str# as wide as its longest value, or a strL (stored
    once, 8 bytes in its row) where that is smaller or the text is longer than a str#
    holds (2045 bytes). The header's time stamp is ``stamp``.

    pandas writes the header, variable descriptions and value labels from one row of the
    chosen storage types; the rows themselves are read once into an on-disk spool and
    written chunk by chunk in those types, so memory holds one chunk. Returns the number
    of rows."""
    _check_names(dataset, STATA_NAME, STATA_RESERVED, "Stata")
    columns = [_StataColumn(v) for v in dataset.variables]
    path = Path(path)
    with _Spool() as spool, tempfile.TemporaryDirectory(dir=path.parent) as work, \
            tempfile.TemporaryFile(dir=path.parent) as strls:
        for batch in _batches(rows):
            values = zip(*batch, strict=True)
            spool.put((len(batch), [c.values(x) for c, x in zip(columns, values, strict=True)]),
                      len(batch))
        for column in columns:
            column.settle(spool.count)
        value_labels = {}
        for v, column in zip(dataset.variables, columns, strict=True):
            if column.codes is not None:
                value_labels[v.name] = dict(column.codes.values())
            elif v.is_coded:
                value_labels[v.name] = {int(code): label for code, label in v.choices}
        schema = pd.DataFrame({v.name: c.schema() for v, c in zip(dataset.variables, columns,
                                                                  strict=True)})
        scratch = Path(work) / "schema.dta"
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.io.stata.InvalidColumnName)
            try:
                schema.to_stata(
                    scratch, write_index=False, version=118, byteorder="little",
                    time_stamp=_utc(stamp), data_label=dataset.label[:STATA_LABEL],
                    variable_labels={v.name: _label(v, STATA_LABEL) for v in dataset.variables},
                    convert_dates={v.name: "td" if v.type == DATE else "tc"
                                   for v in dataset.variables if v.type in (DATE, DATETIME)},
                    value_labels=value_labels or None,
                    convert_strl=[c.v.name for c in columns
                                  if c.type[0] == STATA_STRL] or None,
                )
            except (ValueError, pd.io.stata.InvalidColumnName) as error:
                raise ExportError(f"{dataset.name}: cannot be written as Stata: {error}"
                                  ) from error
        head, tail, map_at = _stata_layout(scratch.read_bytes(), columns)
        count = spool.count
        nobs = head.find(b"</K><N>") + len(b"</K><N>")
        head = bytearray(head)
        struct.pack_into("<Q", head, nobs, count)
        record = np.dtype([(f"v{i}", c.type[1]) for i, c in enumerate(columns)])
        with open(path, "wb") as out:
            out.write(head)
            first = 1
            for size, chunk in spool:
                data = np.empty(size, dtype=record)
                for i, column in enumerate(columns):
                    data[f"v{i}"] = column.column(chunk[i], i + 1, first, strls)
                out.write(data.tobytes())
                first += size
            out.write(b"</data><strls>")
            strls.seek(0)
            while block := strls.read(1 << 20):
                out.write(block)
            out.write(b"</strls>")
            offsets = dict(zip(STATA_MAP, struct.unpack_from("<14Q", head, map_at),
                               strict=True))
            offsets["strls"] = out.tell() - len(b"<strls>") - strls.tell() - len(b"</strls>")
            offsets["value_labels"] = out.tell()
            offsets["stata_data_close"] = out.tell() + len(tail) - len(b"</stata_dta>")
            offsets["end-of-file"] = out.tell() + len(tail)
            out.write(tail)
            out.seek(map_at)
            out.write(struct.pack("<14Q", *offsets.values()))
    return count


# SPSS ---------------------------------------------------------------------------------------

SPSS_NAME = re.compile(r"[A-Za-z@#$][A-Za-z0-9_.@#$]{0,63}")
SPSS_RESERVED = frozenset(
    ("ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"))
SPSS_STRING_BYTES = 32_767
SPSS_EPOCH = dt.date(1582, 10, 14)
SPSS_EPOCH_UTC = dt.datetime(1582, 10, 14, tzinfo=dt.UTC)
_SAV_DATE = re.compile(rb"[ \d]\d [A-Z][a-z]{2} \d\d")
_SAV_TIME = re.compile(rb"\d\d:\d\d:\d\d")
# File header: "$FL2", product (60), layout code, case size, compression, weight index,
# case count (4 each), bias (8), then the creation date "dd mmm yy" and time "hh:mm:ss".
SAV_DATE_OFFSET = 4 + 60 + 4 * 5 + 8
SAV_TIME_OFFSET = SAV_DATE_OFFSET + 9


def _spss_numbers(v: Variable, values) -> np.ndarray:
    """A column of SPSS numbers (dates and datetimes as SPSS counts them, seconds from
    1582-10-14, datetimes in UTC), None as system missing."""
    if v.type == DATE:
        epoch = SPSS_EPOCH.toordinal()
        return np.array([np.nan if x is None else (x.toordinal() - epoch) * 86400.0
                         for x in values], dtype="float64")
    if v.type == DATETIME:
        return np.array(_since(values, SPSS_EPOCH_UTC, np.nan), dtype="float64")
    return np.array([np.nan if x is None else float(x) for x in values], dtype="float64")


def _since(values, epoch: dt.datetime, missing, unit=dt.timedelta(seconds=1)) -> list:
    """Timezone-aware datetimes in ``unit``s from the aware ``epoch`` (exact, as the naive UTC
    difference is), None as ``missing``."""
    try:
        return [missing if x is None else (x - epoch) / unit for x in values]
    except TypeError:
        raise ExportError("Naive datetime in the export rows.") from None


def _stamp_sav_header(path: Path, when: dt.datetime) -> None:
    with open(path, "r+b") as f:
        head = f.read(SAV_TIME_OFFSET + 8)
        if (head[:4] not in (b"$FL2", b"$FL3")
                or not _SAV_DATE.fullmatch(head[SAV_DATE_OFFSET:SAV_DATE_OFFSET + 9])
                or not _SAV_TIME.fullmatch(head[SAV_TIME_OFFSET:SAV_TIME_OFFSET + 8])):
            raise ExportError(f"{path.name}: unexpected SPSS file header.")
        f.seek(SAV_DATE_OFFSET)
        f.write(f"{when.day:02d} {MONTHS[when.month - 1]} {when.year % 100:02d}"
                f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}".encode("ascii"))


# What a text must have escaped or split in SPSS (:func:`escape_text` with
# :data:`_NOT_SPSS` and blanks, :func:`split_text`): any other is written as it is.
_SPSS_SPECIAL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\\\\u\\{| \\Z| {" + str(BLANK_RUN) + "}")


def _spss_texts(values) -> list[list[str]]:
    """A text column as SPSS columns: escaped (:data:`TEXT_ESCAPE_RULE`), the first piece
    of each value, then the further pieces of those longer than an SPSS string; a missing
    text is blank."""
    first: list[str] = []
    longer: dict[int, list[str]] = {}
    short = SPSS_STRING_BYTES // 4  # a character takes at most 4 bytes
    for row, value in enumerate(values):
        if value is None:
            first.append("")
        elif type(value) is str and len(value) <= short and not _SPSS_SPECIAL.search(value):
            first.append(value)
        else:
            pieces = split_text(escape_text(str(value), _NOT_SPSS, blanks=True),
                                SPSS_STRING_BYTES)
            first.append(pieces[0])
            if len(pieces) > 1:
                longer[row] = pieces
    columns = [first]
    for part in range(1, max(map(len, longer.values()), default=1)):
        columns.append([longer[row][part] if row in longer and part < len(longer[row])
                        else "" for row in range(len(first))])
    return columns


def _widest(texts: list[str]) -> int:
    """The longest of ``texts`` in UTF-8 bytes."""
    if "".join(texts).isascii():
        return max(map(len, texts), default=0)
    return max(map(len, map(str.encode, texts)), default=0)


def _batches(rows: Iterable[tuple]) -> Iterable[list[tuple]]:
    """``rows`` in lists of :data:`CHUNK_ROWS`."""
    rows = iter(rows)
    while batch := list(itertools.islice(rows, CHUNK_ROWS)):
        yield batch


def _sav_spool(dataset: Dataset, rows: Iterable[tuple], spool: _Spool) -> list[list[int]]:
    """Spool ``rows`` as SPSS columns, a chunk at a time (numbers as SPSS numbers, text
    escaped and split, :func:`_spss_texts`) and return, for each variable, the width in
    bytes of each of its columns (numbers: [8])."""
    widths = [[0] if v.type == TEXT else [8] for v in dataset.variables]
    for batch in _batches(rows):
        columns = []
        for v, values, width in zip(dataset.variables, zip(*batch, strict=True), widths,
                                    strict=True):
            if v.type != TEXT:
                columns.append(_spss_numbers(v, values))
                continue
            parts = _spss_texts(values)
            for part, texts in enumerate(parts):
                size = _widest(texts)
                if part == len(width):
                    width.append(size)
                elif size > width[part]:
                    width[part] = size
            columns.append(parts)
        spool.put((len(batch), columns), len(batch))
    return widths


# The 64-bit case count (extension record 7, subtype 16: after the byte-order mark 1).
_SAV_CASES_64 = struct.pack("<iiiiq", 7, 16, 8, 2, 1)
SAV_COMPRESSION_OFFSET = 4 + 60 + 4 * 2
SAV_CASES_OFFSET = 4 + 60 + 4 * 4
ZSAV_BLOCK = 0x3FF000
ZSAV_BIAS = -100


class _ZsavBlocks:
    """The data of a zlib-compressed .sav file (SPSS 21 and later, ReadStat, PSPP; see
    PSPP's "System File Format", "Compressed Data"): the bytecode-compressed rows in zlib
    blocks of :data:`ZSAV_BLOCK` bytes, after a header giving the trailer's place, and the
    trailer listing the blocks. ``out`` is positioned at the end of the dictionary."""

    def __init__(self, out):
        self.out = out
        self.start = out.tell()
        self.out.write(b"\0" * 24)  # the zlib data header, written by close()
        self.pending = bytearray()
        self.blocks: list[tuple[int, int, int, int]] = []
        self.uncompressed = self.start

    def write(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= ZSAV_BLOCK:
            self._block(bytes(self.pending[:ZSAV_BLOCK]))
            del self.pending[:ZSAV_BLOCK]

    def _block(self, data: bytes) -> None:
        packed = zlib.compress(data, 6)
        self.blocks.append((self.uncompressed, self.out.tell(), len(data), len(packed)))
        self.uncompressed += len(data)
        self.out.write(packed)

    def close(self) -> None:
        if self.pending:
            self._block(bytes(self.pending))
        trailer = self.out.tell()
        self.out.write(struct.pack("<qqii", ZSAV_BIAS, 0, ZSAV_BLOCK, len(self.blocks)))
        for block in self.blocks:
            self.out.write(struct.pack("<qqii", *block))
        self.out.seek(self.start)
        self.out.write(struct.pack("<qqq", self.start, trailer, 24 + 24 * len(self.blocks)))
        self.out.seek(0, 2)


def _sav_header(header: bytes, count: int, *, compression: int) -> bytes:
    """``header`` (of a file with one case, compressed as ``compression`` says) with
    ``count`` cases."""
    at = header.find(_SAV_CASES_64)
    if (header[:4] not in (b"$FL2", b"$FL3")
            or struct.unpack_from("<i", header, SAV_COMPRESSION_OFFSET) != (compression,)
            or struct.unpack_from("<i", header, SAV_CASES_OFFSET) != (1,)
            or at < 0 or header.find(_SAV_CASES_64, at + 1) >= 0
            or struct.unpack_from("<q", header, at + len(_SAV_CASES_64)) != (1,)):
        raise ExportError("Unexpected SPSS file header.")
    header = bytearray(header)
    struct.pack_into("<i", header, SAV_CASES_OFFSET, min(count, 2**31 - 1))
    struct.pack_into("<q", header, at + len(_SAV_CASES_64), count)
    return bytes(header)


_SAV_DICTIONARY_END = struct.pack("<ii", 999, 0)


def _sav_data(path: Path, columns, wide: list, options: dict, *, zlib: bool = False) -> bytes:
    """The whole .sav file of one row as wide as the file (``wide``), as pyreadstat writes it
    (bytecode-compressed, or zlib-compressed with ``zlib``): its header and dictionary."""
    frame = {}
    for name, _width, index, part in columns:
        frame[name] = (pd.Series([np.nan]) if part is None
                       else pd.Series([wide[index][part]], dtype="object"))
    pyreadstat.write_sav(pd.DataFrame(frame), str(path), row_compress=not zlib, compress=zlib,
                         **options)
    return path.read_bytes()


# The bytecode compression of .sav data (PSPP's "System File Format", "Compressed Data"), as
# readstat writes it: each row's 8-byte units in blocks of 8 one-byte codes, each block
# followed by the units it leaves raw; every row starts a block and ends one (all padding
# when the row filled the one before), and the file's last row ends with the end-of-data
# code.
SAV_BIAS = 100
SAV_PAD, SAV_END, SAV_RAW, SAV_BLANKS, SAV_SYSMIS = 0, 252, 253, 254, 255
SAV_SEGMENT = 255  # the bytes of a very long string (over 255) each segment holds
SAV_SEGMENT_WIDTH = 252  # what a segment adds to a very long string's declared width
_BLANK_UNIT = int.from_bytes(b" " * 8, "little")
_SAV_UNITS_AT_ONCE = 1 << 17  # units encoded at a time (1 MB a vector), whatever the width


def _sav_text_bytes(texts: list[str], width: int) -> np.ndarray:
    """Texts (each at most ``width`` bytes) as the bytes of an SPSS string of ``width``:
    padded with blanks to whole units; a very long string in segments of 255 bytes, each
    followed by a blank, the last as wide as the width left."""
    if width <= SAV_SEGMENT:
        size = -(-width // 8) * 8
        return np.frombuffer(b"".join([t.encode().ljust(size) for t in texts]),
                             dtype=np.uint8).reshape(len(texts), size)
    segments = -(-width // SAV_SEGMENT_WIDTH)
    last = -(-(width - SAV_SEGMENT_WIDTH * (segments - 1)) // 8) * 8
    data_size = SAV_SEGMENT * (segments - 1) + last
    data = np.frombuffer(b"".join([t.encode().ljust(data_size) for t in texts]),
                         dtype=np.uint8).reshape(len(texts), data_size)
    result = np.full((len(texts), (SAV_SEGMENT + 1) * (segments - 1) + last), ord(" "),
                     dtype=np.uint8)
    for k in range(segments - 1):
        result[:, k * (SAV_SEGMENT + 1): k * (SAV_SEGMENT + 1) + SAV_SEGMENT] = \
            data[:, k * SAV_SEGMENT: (k + 1) * SAV_SEGMENT]
    result[:, (SAV_SEGMENT + 1) * (segments - 1):] = data[:, SAV_SEGMENT * (segments - 1):]
    return result


def _sav_codes(units: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """The code of each unit: a number that is a whole number from -99 to 151 is its code
    (the number plus the bias), system missing 255, blanks 254, anything else raw (253)."""
    codes = np.where(units == _BLANK_UNIT, SAV_BLANKS, SAV_RAW).astype(np.uint8)
    if numeric.any():
        numbers = np.ascontiguousarray(units[:, numeric]).view("<f8")
        whole = (numbers == np.trunc(numbers)) & (numbers >= 1 - SAV_BIAS) & (
            numbers <= SAV_END - 1 - SAV_BIAS)
        codes[:, numeric] = np.where(
            np.isnan(numbers), SAV_SYSMIS,
            np.where(whole, np.where(whole, numbers, 0) + SAV_BIAS, SAV_RAW)).astype(np.uint8)
    return codes


def _sav_rows(units: np.ndarray, codes: np.ndarray, *, end: bool) -> bytes:
    """Rows of units and their codes as bytecode, each row starting a block, the end-of-data
    code after the last one when ``end``."""
    count, width = units.shape
    # readstat writes a block when its eighth code is set and a row's last block when the
    # row ends: a row of a whole number of blocks ends with a block of padding codes.
    blocks = width // 8 + 1
    all_codes = np.zeros((count, blocks * 8), dtype=np.uint8)
    all_codes[:, :width] = codes
    if end:
        all_codes[:, width] = SAV_END
    slots = np.zeros((count, blocks, 9), dtype="<u8")
    slots[:, :, 0] = all_codes.view("<u8")
    raw = np.zeros((count, blocks * 8), dtype="<u8")
    raw[:, :width] = units
    slots[:, :, 1:] = raw.reshape(count, blocks, 8)
    present = np.ones((count, blocks, 9), dtype=bool)
    present[:, :, 1:] = (all_codes == SAV_RAW).reshape(count, blocks, 8)
    return slots[present].tobytes()


def _sav_chunk(columns, count: int, chunk: list, *, last: bool):
    """The bytecode of a spooled chunk of ``count`` rows (by column), in pieces of at most
    :data:`_SAV_UNITS_AT_ONCE` units (so memory does not grow with the texts' widths);
    after the file's ``last`` row the end-of-data code."""
    def texts(index: int, part: int) -> list[str]:
        pieces = chunk[index]
        return pieces[part] if part < len(pieces) else [""] * count

    width = sum(8 if part is None else _sav_text_bytes(["x"], max(size, 1)).shape[1]
                for _name, size, _index, part in columns) // 8
    step = max(1, _SAV_UNITS_AT_ONCE // max(width, 1))
    for start in range(0, count, step):
        stop = min(start + step, count)
        parts, numeric = [], []
        for _name, size, index, part in columns:
            if part is None:
                parts.append(np.ascontiguousarray(chunk[index][start:stop], dtype="<f8")
                             .view(np.uint8).reshape(stop - start, 8))
                numeric.append(True)
            else:
                parts.append(_sav_text_bytes(texts(index, part)[start:stop], max(size, 1)))
                numeric += [False] * (parts[-1].shape[1] // 8)
        units = np.ascontiguousarray(np.hstack(parts)).view("<u8")
        del parts
        codes = _sav_codes(units, np.array(numeric, dtype=bool))
        if last and stop == count:
            if stop - start > 1:
                yield _sav_rows(units[:-1], codes[:-1], end=False)
            yield _sav_rows(units[-1:], codes[-1:], end=True)
        else:
            yield _sav_rows(units, codes, end=False)


def _sav_split(written: bytes) -> tuple[bytes, bytes]:
    """(header and dictionary, compressed data) of a .sav file whose data are one row
    (which cannot hold the end of the dictionary: only command bytes, blanks and x)."""
    end = written.rfind(_SAV_DICTIONARY_END)
    if end < 0:
        raise ExportError("Unexpected SPSS file layout.")
    return written[:end + len(_SAV_DICTIONARY_END)], written[end + len(_SAV_DICTIONARY_END):]


def write_sav(path, dataset: Dataset, rows: Iterable[tuple], *, stamp: dt.datetime) -> int:
    """SPSS .sav via pyreadstat, bytecode-compressed (the standard .sav compression every
    SPSS reader knows: blank and whole-number blocks take one byte, so a short text costs
    little whatever the longest one). Numbers are numeric (integers F10.0, decimals with
    their decimal places), booleans 1/0 labelled Yes/No, coded integers numeric with value
    labels, coded text stays the code as a string with string value labels (SPSS supports
    them), dates DATE11, datetimes DATETIME20 in UTC (SPSS counts seconds from 1582 in a
    double: about 2 µs resolution). A text longer than an SPSS string (32,767 bytes)
    continues in ``<name>_part2`` …, split before a space where it can; spaces ending a
    text, which SPSS drops, and control characters are escaped (:data:`TEXT_ESCAPE_RULE`).
    Measurement levels: coded integers ordinal, other coded and text variables nominal,
    numbers scale. The header's creation date and time are ``stamp``.

    Rows are read once into an on-disk spool kept by column, then written in chunks:
    pyreadstat writes the header and dictionary (from one row as wide as the widest value of
    each column), and the rows are bytecode-compressed here from whole columns with numpy
    (:func:`_sav_rows`, the bytes readstat writes), then zlib-compressed in blocks.
    Returns the number of rows."""
    _check_names(dataset, SPSS_NAME, SPSS_RESERVED, "SPSS")
    path = Path(path)
    with _Spool() as spool, tempfile.TemporaryDirectory(dir=path.parent) as work:
        widths = _sav_spool(dataset, rows, spool)
        columns, value_labels, formats, measures, labels = [], {}, {}, {}, {}
        for index, (v, width) in enumerate(zip(dataset.variables, widths, strict=True)):
            if v.type == TEXT:
                for part in range(len(width)):
                    name = v.name if part == 0 else _continuation_header(v.name, part + 1)
                    if name in labels:
                        raise ExportError(f"{dataset.name}: two SPSS variables named {name}.")
                    columns.append((name, width[part], index, part))
                    measures[name] = "nominal"
                    labels[name] = _label(v, 256) if part == 0 else _part_label(
                        _label(v, 256), part + 1, 256)
                if v.is_coded:
                    value_labels[v.name] = {str(code): label for code, label in v.choices
                                            if code != ""}
                continue
            columns.append((v.name, 8, index, None))
            labels[v.name] = _label(v, 256)
            if v.type == DATE:
                formats[v.name] = "DATE11"
            elif v.type == DATETIME:
                formats[v.name] = "DATETIME20"
            elif v.type == FLOAT:
                digits = 6 if v.digits is None else v.digits
                formats[v.name] = f"F{10 + digits}.{digits}"
            else:
                formats[v.name] = "F10.0"
            measures[v.name] = ("ordinal" if v.type == INTEGER and v.is_coded else
                                "nominal" if v.type == BOOLEAN else "scale")
            if v.is_coded:
                value_labels[v.name] = {float(code): label for code, label in v.choices}
        options = {"file_label": _truncate_bytes(dataset.label, 64),
                   "column_labels": [labels[c[0]] for c in columns],
                   "variable_value_labels": value_labels or None,
                   "variable_format": formats, "variable_measure": measures}
        wide = [None if v.type != TEXT else ["x" * max(w, 1) for w in width]
                for v, width in zip(dataset.variables, widths, strict=True)]
        scratch = Path(work) / "header.sav"
        header, _wide_row = _sav_split(_sav_data(scratch, columns, wide, options))
        zheader = _sav_data(scratch, columns, wide, options, zlib=True)[:len(header)]
        # The widths the header declares: a coded text is as wide as its longest code too.
        declared = pyreadstat.read_sav(str(scratch), metadataonly=True)[1]
        columns = [(name, width if part is None else declared.variable_storage_width[name],
                    index, part) for name, width, index, part in columns]
        with open(path, "wb") as out:
            out.write(_sav_header(zheader, spool.count, compression=2))
            blocks = _ZsavBlocks(out)
            for number, (count, chunk) in enumerate(spool):
                for data in _sav_chunk(columns, count, chunk,
                                       last=number == spool.chunks - 1):
                    blocks.write(data)
            blocks.close()
    _stamp_sav_header(path, _utc(stamp))
    return spool.count


def _truncate_bytes(text: str, limit: int) -> str:
    return text.encode()[:limit].decode("utf-8", "ignore")


# R ------------------------------------------------------------------------------------------

_NILVALUE, _SYMSXP, _LISTSXP, _CHARSXP, _LGLSXP = 254, 1, 2, 9, 10
_INTSXP, _REALSXP, _STRSXP, _VECSXP, _REFSXP = 13, 14, 16, 19, 255
_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
_UTF8, _ASCII = 1 << 3, 1 << 6
R_NA_INTEGER = -(2**31)
R_NA_REAL_BITS = 0x7FF00000000007A2  # NA_real_: a NaN whose low word is 1954
R_VERSION = (4 << 16) | (2 << 8)  # the writing R version recorded in the header: 4.2.0
R_MIN_READER = (2 << 16) | (3 << 8)  # serialization version 2 is read by R ≥ 2.3.0
R_EPOCH = dt.date(1970, 1, 1)
R_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _RSerializer:
    """Just enough of R's serialization format (version 2, XDR) for a data frame of
    logical, integer, double and character vectors with attributes. Writes go through a
    buffer of about a megabyte, so the gzip stream sees few, large writes."""

    def __init__(self, out):
        self.out = out
        self.buffer = bytearray()
        self.symbols: dict[str, int] = {}

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.out.write(self.buffer)
        self.buffer = bytearray()

    def integer(self, value: int) -> None:
        self.write(struct.pack(">i", value))

    def symbol(self, name: str) -> None:
        if name in self.symbols:
            self.integer((self.symbols[name] << 8) | _REFSXP)
            return
        self.symbols[name] = len(self.symbols) + 1
        self.integer(_SYMSXP)
        self.write(_r_strings([name]))

    def start(self, kind: int, length: int, attributes) -> None:
        flags = kind
        if attributes:
            flags |= _HAS_ATTR
            if any(name == "class" for name, _ in attributes):
                flags |= _IS_OBJECT
        self.write(struct.pack(">ii", flags, length))

    def attributes(self, attributes) -> None:
        if attributes:
            for name, item in attributes:
                self.integer(_LISTSXP | _HAS_TAG)
                self.symbol(name)
                self.vector(*item)
            self.integer(_NILVALUE)

    def vector(self, kind: int, values, attributes: list[tuple[str, tuple]] = ()) -> None:
        self.start(kind, len(values), attributes)
        self.write(_r_values(kind, values))
        self.attributes(attributes)


_CHARSXP_HEAD = struct.Struct(">ii").pack
_NA_STRING = _CHARSXP_HEAD(_CHARSXP, -1)


def _r_strings(texts) -> bytes:
    """CHARSXPs of ``texts`` (``None`` is NA_character_), each distinct text encoded once."""
    made: dict[str, bytes] = {}
    parts = []
    for text in texts:
        if text is None:
            parts.append(_NA_STRING)
            continue
        item = made.get(text)
        if item is None:
            data = text.encode()
            encoding = _ASCII if len(data) == len(text) else _UTF8
            item = made[text] = _CHARSXP_HEAD(_CHARSXP | (encoding << 12), len(data)) + data
        parts.append(item)
    return b"".join(parts)


def _r_values(kind: int, values) -> bytes:
    if kind == _STRSXP:
        return _r_strings(values)
    if kind == _REALSXP:
        return np.asarray(values, dtype=">u8").tobytes()
    return np.asarray(values, dtype=">i4").tobytes()


def _reals(values) -> np.ndarray:
    """Doubles as their big-endian bit patterns, ``None`` as NA_real_."""
    numbers = np.array([np.nan if x is None else float(x) for x in values], dtype="float64")
    bits = numbers.view("uint64").copy()
    bits[[x is None for x in values]] = R_NA_REAL_BITS
    return bits


def _strings(*texts: str) -> tuple:
    return (_STRSXP, list(texts))


class _RColumn:
    """One variable as an R vector: its type and attributes, learned from all its values,
    and its values chunk by chunk."""

    def __init__(self, v: Variable):
        self.v = v
        self.extra: set = set()
        self.known = set(_codes(v)) if v.is_coded else set()
        self.integers = True  # an integer variable whose values R integers hold

    def see(self, values) -> None:
        """Learn from a chunk of the column's values (codes outside the list, integers
        beyond R's)."""
        if self.v.is_coded and self.v.type != BOOLEAN:
            self.extra.update(set(values) - self.known - {None})
        elif self.v.type == INTEGER and self.integers:
            present = [x for x in values if x is not None]
            if present and not (R_NA_INTEGER < min(present) and max(present) < 2**31):
                self.integers = False

    def settle(self) -> None:
        v = self.v
        label = [("label", _strings(v.label))]
        self.numbers = None
        if v.type == BOOLEAN:
            self.kind, self.attributes = _LGLSXP, label
        elif v.is_coded:
            levels = _codes(v) + sorted(self.extra, key=str)
            self.numbers = {code: i + 1 for i, code in enumerate(levels)}
            self.kind = _INTSXP
            self.attributes = [("levels", _strings(*(str(c) for c in levels))),
                               ("class", _strings("factor")), *label]
        elif v.type == DATE:
            self.kind, self.attributes = _REALSXP, [("class", _strings("Date")), *label]
        elif v.type == DATETIME:
            self.kind = _REALSXP
            self.attributes = [("class", _strings("POSIXct", "POSIXt")),
                               ("tzone", _strings("UTC")), *label]
        elif v.type == INTEGER and self.integers:
            self.kind, self.attributes = _INTSXP, label
        elif v.type in (INTEGER, FLOAT):
            self.kind, self.attributes = _REALSXP, label
        else:
            self.kind, self.attributes = _STRSXP, label

    def values(self, values: list) -> bytes:
        v = self.v
        if v.type == BOOLEAN:
            values = [R_NA_INTEGER if x is None else int(x) for x in values]
        elif self.numbers is not None:
            values = [R_NA_INTEGER if x is None else self.numbers[x] for x in values]
        elif v.type == DATE:
            epoch = R_EPOCH.toordinal()
            values = _reals([None if x is None else x.toordinal() - epoch for x in values])
        elif v.type == DATETIME:
            values = _reals(_since(values, R_EPOCH_UTC, None))
        elif self.kind == _INTSXP:
            values = [R_NA_INTEGER if x is None else x for x in values]
        elif self.kind == _REALSXP:
            values = _reals(values)
        else:
            values = [None if x is None else str(x) for x in values]
        return _r_values(self.kind, values)


class _ColumnSpool:
    """Rows kept on disk column by column, in chunks of :data:`CHUNK_ROWS`: R writes a
    data frame one column after the other, and reads back one column's chunks at a time."""

    def __init__(self, width: int):
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.offsets: list[list[int]] = [[] for _ in range(width)]
        self.count = 0

    def put(self, columns: list, count: int) -> None:
        """Spool a chunk of ``count`` rows given by column."""
        for index, column in enumerate(columns):
            self.offsets[index].append(self.file.tell())
            pickle.dump(column, self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += count

    def column(self, index: int):
        """The values of column ``index``, chunk by chunk."""
        for offset in self.offsets[index]:
            self.file.seek(offset)
            yield list(pickle.load(self.file))  # noqa: S301 (our own temporary file)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def write_rds(path, dataset: Dataset, rows: Iterable[tuple], *, stamp: dt.datetime) -> int:
    """An R data frame in an .rds file (``readRDS``): integers integer (double beyond R's
    range), decimals double, booleans logical, coded variables factors with the codes as
    levels in code-list order, each followed by a character column ``<name>_label`` with
    the decoded label (as in the CSV and Excel files), dates ``Date``, datetimes ``POSIXct``
    in UTC, text character,
    missing values ``NA``; every column carries its label (``attr(x, "label")``). Written by
    our own serializer (see the module docstring), gzip-compressed with a zero time in the
    gzip header, so the file does not depend on the clock (``stamp`` is accepted for a
    uniform interface). The rows are read once into an on-disk spool kept column by
    column, and each column is written chunk by chunk. Returns the number of rows."""
    _utc(stamp)
    columns = [_RColumn(v) for v in dataset.variables]
    path = Path(path)
    with _ColumnSpool(len(columns)) as spool:
        for batch in _batches(rows):
            values = list(zip(*batch, strict=True)) or [()] * len(columns)
            for column, chunk in zip(columns, values, strict=True):
                column.see(chunk)
            spool.put(values, len(batch))
        count = spool.count
        names = []
        for column in columns:
            column.settle()
            names.append(column.v.name)
            if column.v.is_coded and column.v.type != BOOLEAN:
                names.append(f"{column.v.name}_label")
        frame_attributes = [("names", _strings(*names)), ("class", _strings("data.frame")),
                            ("row.names", (_INTSXP, [R_NA_INTEGER, -count], ())),
                            ("label", _strings(dataset.label))]
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                    mtime=0, compresslevel=6) as out:
            out.write(b"X\n")
            r = _RSerializer(out)
            for number in (2, R_VERSION, R_MIN_READER):
                r.integer(number)
            r.start(_VECSXP, len(names), frame_attributes)
            for index, column in enumerate(columns):
                v = column.v
                r.start(column.kind, count, column.attributes)
                for chunk in spool.column(index):
                    r.write(column.values(chunk))
                r.attributes(column.attributes)
                if v.is_coded and v.type != BOOLEAN:
                    # The decoded label beside the code, as in the CSV and Excel files.
                    attributes = [("label", _strings(f"{v.label} (label)"))]
                    r.start(_STRSXP, count, attributes)
                    labels = {None: None}
                    for chunk in spool.column(index):
                        for x in set(chunk) - labels.keys():
                            labels[x] = v.decode(x) or None
                        r.write(_r_strings([labels[x] for x in chunk]))
                    r.attributes(attributes)
            r.attributes(frame_attributes)
            r.flush()
    return count


__all__ = [
    "TEXT_ESCAPE_RULE",
    "XPT_LONG_TEXT_RULE",
    "ExportError",
    "escape_text",
    "split_text",
    "stata_codes",
    "unescape_text",
    "write_dta",
    "write_rds",
    "write_sav",
    "write_xlsx",
    "write_xpt",
    "xpt_companion_name",
]
