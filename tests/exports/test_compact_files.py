"""Binary files stay near the size of the CSV, and writers hold one chunk of rows in memory
(issue 15). A dataset with one very long text among many short rows must not cost the long
text's width on every row (Stata strL, SPSS compression, R gzip); XPORT, whose rows are
fixed-width by the v5 format, sizes each column to its own longest piece. Rows are written
in chunks from an on-disk spool: a file written in many chunks reads back, value by value,
equal to the rows, with independent readers (pyreadstat, pandas, pyreadr)."""

import csv
import datetime as dt
import re
import shutil
import struct
import subprocess

import pandas as pd
import pyreadr
import pyreadstat
import pytest

from exports import tabular
from exports.dictionary import (
    BOOLEAN,
    DATE,
    DATETIME,
    FLOAT,
    INTEGER,
    TEXT,
    Dataset,
    Variable,
)
from tests.exports.xport import read_xport

STAMP = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
ROWS = 3_000
LONG = ("随访延迟 µ·⁹ 😀 =1+1 \x0b\\u{41} " * 400)[:9_999] + " "
SEX = (("F", "Female"), ("M", "Male"))


def dataset() -> Dataset:
    return Dataset("notes", "Notes", (
        Variable("note_id", "Note id", INTEGER, sas_name="NOTEID"),
        Variable("sex", "Sex", TEXT, choices=SEX, sas_name="SEX"),
        Variable("visit_date", "Visit date", DATE, sas_name="VISDT"),
        Variable("saved_at", "Saved at", DATETIME, sas_name="SAVEDAT"),
        Variable("weight", "Weight", FLOAT, digits=1, sas_name="WEIGHT"),
        Variable("done", "Done", BOOLEAN, choices=((1, "Yes"), (0, "No")), sas_name="DONE"),
        Variable("text", "Text", TEXT, sas_name="TEXT", free_text=True),
    ), sas_name="notes")


def row(i: int) -> tuple:
    """Short rows, except one long text, and a few missing values."""
    text = LONG if i == ROWS // 2 else None if i % 7 == 0 else f"note {i} ok"
    return (i, None if i % 11 == 0 else "FM"[i % 2], dt.date(2025, 1, 1) + dt.timedelta(i),
            dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=97 * i),
            None if i % 13 == 0 else i / 10, i % 3 == 0, text)


DATA = [row(i) for i in range(ROWS)]


def rule(text: str) -> str:
    return re.sub(r"\\u\{([0-9a-f]+)\}", lambda m: chr(int(m[1], 16)), text)


def csv_size(tmp_path) -> int:
    path = tmp_path / "notes.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([v.name for v in dataset().variables])
        out.writerows(["" if x is None else x for x in r] for r in DATA)
    return path.stat().st_size


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 700 rows: 3,000 rows take five, the last one shorter."""
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 700)


def written(writer, tmp_path, suffix: str):
    path = tmp_path / f"notes.{suffix}"
    assert writer(path, dataset(), iter(DATA), stamp=STAMP) == ROWS
    return path


@pytest.mark.parametrize(("writer", "suffix"), [
    (tabular.write_xpt, "xpt"), (tabular.write_dta, "dta"), (tabular.write_sav, "sav"),
    (tabular.write_rds, "rds")])
def test_one_long_text_does_not_widen_every_row(writer, suffix, tmp_path):
    """A 10,000-character text in one row of 3,000: the files stay within 1.5 times the CSV.
    XPORT rows are fixed-width in v5: the text column stays as narrow as the short texts,
    and the long text continues in the companion file, one row per further piece."""
    size = written(writer, tmp_path, suffix).stat().st_size
    if suffix == "xpt":
        _frame, meta = pyreadstat.read_xport(tmp_path / "notes.xpt", metadataonly=True)
        widths = meta.variable_storage_width
        assert widths["SEX"] == 1 and widths["NOTEID"] == 8
        assert widths["TEXT"] <= len(f"note {ROWS} ok")  # the short texts' width
        # Headers (80-byte records, 140 bytes a column), then rows of exactly those widths.
        assert size <= 80 * 12 + 140 * len(widths) + ROWS * sum(widths.values()) + 80
        companion = tmp_path / "notes_c.xpt"
        rest, _meta = pyreadstat.read_xport(companion)
        assert set(rest["ROW"]) == {ROWS // 2 + 1}  # the long text's row only
        size += companion.stat().st_size
    assert size <= 1.5 * csv_size(tmp_path), (suffix, size, csv_size(tmp_path))


def test_stata_long_text_is_a_strl_only_where_it_pays(tmp_path):
    path = written(tabular.write_dta, tmp_path, "dta")
    raw = path.read_bytes()
    at = raw.index(b"<variable_types>") + len(b"<variable_types>")
    types = struct.unpack_from(f"<{len(dataset().variables)}H", raw, at)
    # Stata 118 storage types: strL 32768, str# its width, long 65528, double 65526.
    assert types == (65528, 65528, 65526, 65526, 65526, 65530, 32768)
    frame = pd.read_stata(path, convert_categoricals=False)
    assert frame["text"].iloc[ROWS // 2] == LONG


@pytest.mark.parametrize(("writer", "suffix"), [
    (tabular.write_xpt, "xpt"), (tabular.write_dta, "dta"), (tabular.write_sav, "sav"),
    (tabular.write_rds, "rds")])
def test_rows_written_in_chunks_read_back_equal(writer, suffix, tmp_path, small_chunks):
    path = written(writer, tmp_path, suffix)
    if suffix == "xpt":
        frame, _meta, pieces = read_xport(path, disable_datetime_conversion=True)
        assert pieces > 1  # the long text, rejoined from the companion file
        texts = frame["TEXT"].map(rule)
        ids, weights = frame["NOTEID"], frame["WEIGHT"]
        dates = [dt.date(1960, 1, 1) + dt.timedelta(int(d)) for d in frame["VISDT"]]
        sexes = frame["SEX"]
    elif suffix == "sav":
        frame, _meta = pyreadstat.read_sav(path)
        texts = frame.filter(regex=r"^text(_part\d+)?$").sum(axis=1).map(rule)
        ids, weights = frame["note_id"], frame["weight"]
        dates = list(frame["visit_date"])
        sexes = frame["sex"]
    elif suffix == "dta":
        frame = pd.read_stata(path, convert_categoricals=False)
        texts, ids, weights = frame["text"], frame["note_id"], frame["weight"]
        dates = [d.date() for d in frame["visit_date"]]
        sexes = frame["sex"].map({1: "F", 2: "M"}).fillna("")
        assert list(frame["done"]) == [int(r[5]) for r in DATA]
        assert [t.to_pydatetime() for t in frame["saved_at"]] == [
            r[3].replace(tzinfo=None) for r in DATA]
    else:
        frame = pyreadr.read_r(path)[None]
        texts, ids, weights = frame["text"].fillna(""), frame["note_id"], frame["weight"]
        dates = list(frame["visit_date"])
        sexes = frame["sex"].astype(object).fillna("")
    assert len(frame) == ROWS
    assert list(texts) == ["" if r[6] is None else r[6] for r in DATA]
    assert [round(i, 6) for i in ids] == [r[0] for r in DATA]
    assert [None if pd.isna(w) else round(w, 6) for w in weights] == [
        None if r[4] is None else round(r[4], 6) for r in DATA]
    assert dates == [r[2] for r in DATA]
    assert [s if isinstance(s, str) else "" for s in sexes] == [r[1] or "" for r in DATA]


@pytest.mark.parametrize(("writer", "suffix"), [
    (tabular.write_xpt, "xpt"), (tabular.write_dta, "dta"), (tabular.write_sav, "sav"),
    (tabular.write_rds, "rds")])
def test_chunks_do_not_change_the_bytes(writer, suffix, tmp_path, monkeypatch):
    def files():
        written(writer, tmp_path, suffix)
        return {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}

    one = files()
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 700)
    assert files() == one
    assert ("notes_c.xpt" in one) == (suffix == "xpt")


# Every text the EDC accepts, long or short, at both ends of a chunk: spaces at the ends, a
# run of blanks, control characters, non-ASCII, our own escape syntax.
TEXTS = [
    "", " lead", "trail ", "µ·⁹ 中文 😀", "\x0b\x01tab\tcr\rlf\n", "\\u{41} literal",
    " " * 300 + "blanks" + " " * 70, "x" * 200, "x" * 201, "word " * 50, "é" * 101,
    ("随访 " * 700)[:2_000], " " + "y" * 8_000 + " ",
]


def test_xpt_companion_round_trip(tmp_path, small_chunks):
    """Many long values spread over chunks of both files: read back by the documented layout
    (main file and companion rejoined, tests/exports/xport.py), every text equals the input,
    the companion holding pieces of only the values longer than their column."""
    data = [(i, None if i % 29 == 0 else TEXTS[i % len(TEXTS)] if i % 3 else f"n{i}",
             TEXTS[(i * 7) % len(TEXTS)]) for i in range(2_000)]
    two = Dataset("notes", "Notes", (
        Variable("note_id", "Note id", INTEGER, sas_name="NOTEID"),
        Variable("text", "Text", TEXT, sas_name="TEXT", free_text=True),
        Variable("comment", "Comment", TEXT, sas_name="COMMENT", free_text=True),
    ), sas_name="notes")
    path = tmp_path / "notes.xpt"
    files = []
    assert tabular.write_xpt(path, two, iter(data), stamp=STAMP, files=files) == len(data)
    frame, meta, pieces = read_xport(path)
    assert files == [(tmp_path / "notes_c.xpt", pieces)] and pieces > tabular.CHUNK_ROWS
    assert list(frame["TEXT"].map(rule)) == [r[1] or "" for r in data]
    assert list(frame["COMMENT"].map(rule)) == [r[2] for r in data]
    rest, rest_meta = pyreadstat.read_xport(tmp_path / "notes_c.xpt")
    assert rest_meta.variable_storage_width["TEXT"] <= 200
    assert all(len(t.encode()) <= 200 for t in rest["TEXT"])
    for name, column in (("TEXT", 1), ("COMMENT", 2)):
        width = meta.variable_storage_width[name]
        continued = {int(r) for r in rest.loc[rest["VARNAME"] == name, "ROW"]}
        assert continued == {i + 1 for i, r in enumerate(data) if len(tabular.escape_text(
            r[column] or "", tabular._NOT_XPT, blanks=True).encode()) > width}


@pytest.mark.parametrize(("writer", "suffix"), [
    (tabular.write_xpt, "xpt"), (tabular.write_dta, "dta"), (tabular.write_sav, "sav"),
    (tabular.write_rds, "rds")])
def test_an_empty_dataset_is_a_file_with_no_rows(writer, suffix, tmp_path):
    path = tmp_path / f"empty.{suffix}"
    assert writer(path, dataset(), iter([]), stamp=STAMP) == 0
    frame = (pyreadstat.read_xport(path)[0] if suffix == "xpt" else
             pyreadstat.read_sav(path)[0] if suffix == "sav" else
             pd.read_stata(path) if suffix == "dta" else pyreadr.read_r(path)[None])
    assert len(frame) == 0


@pytest.mark.skipif(shutil.which("pspp") is None, reason="PSPP is not installed")
def test_pspp_reads_the_compressed_chunked_spss_file(tmp_path, small_chunks):
    """GNU PSPP, a reader independent of ReadStat, reads every row of a zlib-compressed
    file written in chunks; the text comes back by the documented rule (pieces padded
    with blanks, which a piece never ends with)."""
    path = written(tabular.write_sav, tmp_path, "sav")
    out = tmp_path / "notes.csv"
    script = tmp_path / "read.sps"
    script.write_text(f"GET FILE='{path}'.\nSAVE TRANSLATE /OUTFILE='{out}' /TYPE=CSV "
                      "/REPLACE /FIELDNAMES /CELLS=VALUES.\n")
    subprocess.run(["pspp", "-o", str(tmp_path / "log.txt"), str(script)], check=True,
                   timeout=120)
    with open(out, encoding="utf-8", newline="") as f:
        header, *body = list(csv.reader(f))
    parts = [i for i, name in enumerate(header) if re.fullmatch(r"text(_part\d+)?", name)]
    assert [int(r[0]) for r in body] == [r[0] for r in DATA]
    assert [rule("".join(r[i].rstrip(" ") for i in parts)) for r in body] == [
        "" if r[6] is None else r[6] for r in DATA]
