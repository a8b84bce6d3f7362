"""What the binary writers cost per row, counted, not timed (issue 15): the export's own code
makes no Python call per value. Each writer converts a chunk of rows column by column (list
comprehensions, numpy arrays, templates), so writing twice the rows costs at most a call or
so more per row in ``exports``, whatever the number of variables; before, every value
went through one or more functions (escaping, a number conversion, a cell object). And the
XPORT writer's records are its own, exact: its IBM doubles are the bytes pyreadstat writes,
and pyreadstat is asked for the header only, once per file."""

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from exports import tabular
from exports.dictionary import FLOAT, Dataset, Variable
from tests.exports.test_compact_files import STAMP, dataset, row

EXPORT_CODE = str(Path(tabular.__file__).parent)

WRITERS = {
    "xlsx": lambda folder, rows: tabular.write_xlsx(folder / "notes.xlsx",
                                                    [(dataset(), iter(rows))], [], stamp=STAMP),
    "xpt": lambda folder, rows: tabular.write_xpt(folder / "notes.xpt", dataset(), iter(rows),
                                                  stamp=STAMP),
    "dta": lambda folder, rows: tabular.write_dta(folder / "notes.dta", dataset(), iter(rows),
                                                  stamp=STAMP),
    "sav": lambda folder, rows: tabular.write_sav(folder / "notes.sav", dataset(), iter(rows),
                                                  stamp=STAMP),
    "rds": lambda folder, rows: tabular.write_rds(folder / "notes.rds", dataset(), iter(rows),
                                                  stamp=STAMP),
}
# Calls of the export's code per row: none per value; the Excel writer reads rows given as
# an iterator through a generator that spools them (the export gives it spools), and SPSS
# encodes its rows in batches of about 130,000 units (a few dozen rows here, the long text
# making a row some 4,000 units wide).
CALLS_PER_ROW = {"xlsx": 1, "xpt": 0.1, "dta": 0.1, "sav": 0.5, "rds": 0.1}


def export_calls(write, folder: Path, count: int) -> int:
    """Python calls into ``exports`` while writing ``count`` rows."""
    rows = [row(i) for i in range(count)]
    calls = 0

    def profile(frame, event, _arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename.startswith(EXPORT_CODE):
            calls += 1

    folder.mkdir()
    sys.setprofile(profile)
    try:
        write(folder, rows)
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_writers_make_no_python_call_per_value(fmt, tmp_path):
    few = export_calls(WRITERS[fmt], tmp_path / "few", 2_000)
    many = export_calls(WRITERS[fmt], tmp_path / "many", 4_000)
    assert (many - few) / 2_000 <= CALLS_PER_ROW[fmt], (few, many)


NUMBERS = [0.0, 1.0, -1.0, 0.1, -2.5, 1 / 3, 100.0, 151.0, -99.0, 2.0**52 + 1, 123456789.123456,
           1e-70, -1e70, 1e74, 6e-79, 22_000_000_000.75, np.nan, 16.0, 1 / 16, 255.5]


def test_ibm_doubles_are_the_bytes_pyreadstat_writes(tmp_path):
    """The conversion is exact, so there is one right answer: readstat's, byte for byte
    (signs, zero, missing, powers of 16 and the edges of the IBM range included)."""
    path = tmp_path / "numbers.xpt"
    pyreadstat.write_xport(pd.DataFrame({"X": pd.Series(NUMBERS, dtype="float64")}), str(path),
                           table_name="numbers", file_format_version=5)
    written = path.read_bytes()
    start = written.find(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!") + 80
    expected = written[start:start + 8 * len(NUMBERS)]
    assert tabular.ibm_doubles(np.array(NUMBERS)).tobytes() == expected


def test_xport_numbers_read_back_exactly(tmp_path):
    """Near the top of the IBM range too, where readstat's own writer gives its largest
    number instead (1e75 becomes about 7.2e75)."""
    numbers = Dataset("numbers", "Numbers", (Variable("x", "X", FLOAT, sas_name="X"),),
                      sas_name="numbers")
    path = tmp_path / "numbers.xpt"
    values = [*NUMBERS, 1e75, -7e75]
    tabular.write_xpt(path, numbers, iter([(x,) if x == x else (None,) for x in values]),
                      stamp=STAMP)
    frame, _meta = pyreadstat.read_xport(str(path))
    read = frame["X"].tolist()
    assert [x for x in read if x == x] == [x for x in values if x == x]
    assert [i for i, x in enumerate(read) if x != x] == [i for i, x in enumerate(values)
                                                         if x != x]


def test_xport_asks_pyreadstat_for_the_header_only(tmp_path, monkeypatch):
    """Rows in five chunks: pyreadstat writes one header, never a chunk of rows."""
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 700)
    calls = []
    write_xport = pyreadstat.write_xport

    def counted(frame, *args, **kwargs):
        calls.append(len(frame))
        return write_xport(frame, *args, **kwargs)

    monkeypatch.setattr(pyreadstat, "write_xport", counted)
    tabular.write_xpt(tmp_path / "notes.xpt", dataset(), iter([row(i) for i in range(3_000)]),
                      stamp=STAMP)
    assert calls == [1, 1]  # the main file's header and its companion's (the long text)


def test_excel_datetimes_keep_the_serial_openpyxl_writes():
    """Excel serials from a datetime's timestamp equal openpyxl's (days and day fraction)."""
    from openpyxl.utils.datetime import to_excel

    for moment in (dt.datetime(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=dt.UTC),
                   dt.datetime(1900, 3, 1, tzinfo=dt.UTC), dt.datetime(2000, 1, 1, 23, 59, 59,
                                                                      tzinfo=dt.UTC),
                   dt.datetime(1900, 1, 5, 12, tzinfo=dt.UTC)):
        cell = tabular._datetime_cell("A1", moment)
        serial = float(cell.split("<v>")[1].split("</v>")[0])
        assert serial == pytest.approx(to_excel(moment.replace(tzinfo=None)), abs=1e-9), moment


def test_spss_asks_pyreadstat_for_the_header_only(tmp_path, monkeypatch):
    """Rows in five chunks, a very long text among them: pyreadstat writes the header (once
    bytecode-, once zlib-compressed), never a chunk of rows; the rows read back."""
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 700)
    calls = []
    write_sav = pyreadstat.write_sav

    def counted(frame, *args, **kwargs):
        calls.append(len(frame))
        return write_sav(frame, *args, **kwargs)

    monkeypatch.setattr(pyreadstat, "write_sav", counted)
    rows = [row(i) for i in range(3_000)]
    tabular.write_sav(tmp_path / "notes.sav", dataset(), iter(rows), stamp=STAMP)
    assert calls == [1, 1]
    frame, _meta = pyreadstat.read_sav(str(tmp_path / "notes.sav"))
    assert len(frame) == 3_000
    assert frame["note_id"].tolist() == [float(r[0]) for r in rows]
    # The long text (row 1500) is escaped and split in parts (read back elsewhere).
    texts = frame["text"].tolist()
    assert texts[:1500] + texts[1501:] == [r[6] or "" for r in rows[:1500] + rows[1501:]]
