"""CSV files: one per dataset, a header of variable names, each coded variable followed by a
``<name>_label`` column with its decoded label. UTF-8, RFC 4180 quoting, ISO 8601 dates and UTC
times ("Z"), booleans as 1/0, empty cells for missing values."""

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

from exports.codebook import COLUMNS, Entry
from exports.dictionary import BOOLEAN, Dataset


def header(dataset: Dataset) -> list[str]:
    names = []
    for v in dataset.variables:
        names.append(v.name)
        if v.is_coded:
            names.append(f"{v.name}_label")
    return names


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


# What ``cell`` does, by the value's type, for the types the csv module would write otherwise
# (it writes None as an empty cell and other values as ``str()``, as ``cell`` does).
_CELL = {bool: lambda value: "1" if value else "0", dt.datetime: _utc_text,
         Decimal: lambda value: format(value, "f")}


def _label(variable) -> Callable[[object], str]:
    """``variable.decode``, with the code list read once."""
    labels = dict(variable.choices)
    if variable.type == BOOLEAN:
        return lambda value: "" if value is None else labels.get(int(value), "")
    return lambda value: "" if value is None else labels.get(value, "")


def write_csv(path: Path, dataset: Dataset, rows: Iterable[tuple]) -> int:
    width = len(dataset.variables)
    # (position of the code, its label function), last first, so inserting keeps positions.
    coded = [(index + 1, _label(v)) for index, v in enumerate(dataset.variables)
             if v.is_coded][::-1]
    convert = _CELL.get
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header(dataset))
        write = writer.writerow
        for row in rows:
            if len(row) != width:
                raise ValueError(f"{dataset.name}: a row of {len(row)} values for {width} "
                                 "variables")
            cells = [value if (f := convert(type(value))) is None else f(value)
                     for value in row]
            for position, label in coded:
                cells.insert(position, label(row[position - 1]))
            write(cells)
            count += 1
    return count


def write_codebook_csv(path: Path, entries: list[Entry]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for entry in entries:
            writer.writerow(["" if c is None else c for c in entry.cells()])
    return len(entries)


def write_csv_lines(path: Path, dataset: Dataset, pieces: Iterable[tuple[str, int]]) -> int:
    """A CSV file whose data lines come written already, quoted as :func:`write_csv` quotes
    and with its CRLF ends (by PostgreSQL: ``exports.sql``), as pieces of text with the
    number of lines each holds: the header as :func:`write_csv` writes it, then the pieces.
    Returns the number of data lines."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as stream:
        stream.write(_header_line(dataset) + "\r\n")
        for text, lines in pieces:
            stream.write(text)
            count += lines
    return count


def _header_line(dataset: Dataset) -> str:
    """The header line as :func:`write_csv` writes it, without its line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(header(dataset))
    return buffer.getvalue()
