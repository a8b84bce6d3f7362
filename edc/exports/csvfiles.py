"""CSV files: one per dataset, a header of variable names, each coded variable followed by a
``<name>_label`` column with its decoded label. UTF-8, RFC 4180 quoting, ISO 8601 dates and UTC
times ("Z"), booleans as 1/0, empty cells for missing values."""

import csv
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from edc.exports.codebook import COLUMNS, Entry
from edc.exports.dictionary import Dataset


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


def write_csv(path: Path, dataset: Dataset, rows: Iterable[tuple]) -> int:
    coded = [v.is_coded for v in dataset.variables]
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header(dataset))
        for row in rows:
            cells = []
            for variable, is_coded, value in zip(dataset.variables, coded, row, strict=True):
                cells.append(cell(value))
                if is_coded:
                    cells.append(variable.decode(value))
            writer.writerow(cells)
            count += 1
    return count


def write_codebook_csv(path: Path, entries: list[Entry]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for entry in entries:
            writer.writerow(["" if c is None else c for c in entry.cells()])
    return len(entries)
