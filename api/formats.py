"""Writing API responses as REDCap does: JSON, CSV or XML; errors in the same format."""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape

from django.http import HttpResponse, StreamingHttpResponse

FORMATS = ("json", "csv", "xml")
CONTENT_TYPES = {"json": "application/json; charset=utf-8",
                 "csv": "text/csv; charset=utf-8",
                 "xml": "text/xml; charset=utf-8"}


def error_response(message: str, status: int, fmt: str = "json") -> HttpResponse:
    """``{"error": "..."}`` (JSON), ``ERROR: ...`` (CSV), ``<hash><error>`` (XML): the shapes
    REDCap clients recognise and raise on."""
    if fmt == "csv":
        body = f"ERROR: {message}"
    elif fmt == "xml":
        body = ('<?xml version="1.0" encoding="UTF-8" ?>\n'
                f"<hash><error>{escape(message)}</error></hash>")
    else:
        fmt = "json"
        body = json.dumps({"error": message}, ensure_ascii=False)
    return HttpResponse(body, status=status, content_type=CONTENT_TYPES[fmt])


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _xml_item(row: dict) -> str:
    cells = "".join(f"<{key}>{escape(str(value))}</{key}>" for key, value in row.items())
    return f"<item>{cells}</item>\n"


def chunks(rows: Iterable[dict], columns: list[str], fmt: str) -> Iterator[str]:
    """The rows as text pieces; every row carries every column (empty where no value)."""
    if fmt == "csv":
        yield _csv_line(columns)
        for row in rows:
            yield _csv_line([row.get(c, "") for c in columns])
    elif fmt == "xml":
        yield '<?xml version="1.0" encoding="UTF-8" ?>\n<records>\n'
        for row in rows:
            yield _xml_item({c: row.get(c, "") for c in columns})
        yield "</records>\n"
    else:
        yield "["
        first = True
        for row in rows:
            yield ("" if first else ",") + json.dumps({c: row.get(c, "") for c in columns},
                                                      ensure_ascii=False)
            first = False
        yield "]"


def rows_response(rows: Iterable[dict], columns: list[str], fmt: str, *,
                  stream: bool = False) -> HttpResponse:
    pieces = chunks(rows, columns, fmt)
    if stream:
        return StreamingHttpResponse((p.encode() for p in pieces),
                                     content_type=CONTENT_TYPES[fmt])
    return HttpResponse("".join(pieces), content_type=CONTENT_TYPES[fmt])


def value_response(value: dict, fmt: str) -> HttpResponse:
    """One object (project information, an import's count)."""
    if fmt == "json":
        return HttpResponse(json.dumps(value, ensure_ascii=False),
                            content_type=CONTENT_TYPES[fmt])
    return rows_response([value], list(value), fmt)


def parse_rows(data: str, fmt: str) -> list[dict]:
    """Imported rows (JSON array of objects or CSV with a header; XML is not accepted for
    imports). Raises ValueError with a message for the caller."""
    if fmt == "json":
        try:
            parsed = json.loads(data)
        except json.JSONDecodeError as error:
            raise ValueError(f"The data are not valid JSON ({error.msg}, line {error.lineno})."
                             ) from None
        if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
            raise ValueError("The data must be a JSON array of objects, one per row.")
        return [{str(k): "" if v is None else str(v) for k, v in r.items()} for r in parsed]
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff")), strict=True)
        rows = []
        try:
            for row in reader:
                if None in row:
                    raise ValueError(f"Row {reader.line_num}: more cells than column names.")
                rows.append({k.strip(): (v or "") for k, v in row.items() if k is not None})
        except csv.Error as error:
            raise ValueError(f"Line {reader.line_num}: not readable as CSV ({error}).") from None
        return rows
    raise ValueError("Records are imported as json or csv.")
