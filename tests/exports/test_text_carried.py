"""Every tabular writer carries any text the EDC accepts (issue 14, items 10, 11 and 15): a
text longer than the format holds in one value continues in further columns, characters a
format cannot carry are escaped by the documented rule, and Excel never turns text into a
formula. Each file is read back by an independent reader (openpyxl, pyreadstat, pandas,
pyreadr) and the text rebuilt by the rule alone, without our code."""

import datetime as dt
import re
import zipfile

import openpyxl
import pandas as pd
import pyreadr
import pyreadstat
import pytest

from exports import tabular
from exports.dictionary import TEXT, Dataset, Variable
from tests.exports.xport import read_xport

STAMP = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
# 100,000 characters: Chinese, symbols, an emoji, a line break, a formula start, spaces at
# both ends, a run of 300 blanks, a Word line break (vertical tab) and our own escape syntax.
CHUNK = "随访延迟 µ·⁹±≥ 😀\r\n=1+1 @SUM(A1) \\u{41} \x0b" + " " * 300 + "end "
LONG = (" " + CHUNK * (100_000 // len(CHUNK) + 1))[:99_999] + " "
FORMULAS = ["=1+1", "+1", "-2", "@SUM(A1:A2)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"]


def rule(text: str) -> str:
    """The documented rule, written out here as a reader would: never our own function."""
    return re.sub(r"\\u\{([0-9a-f]+)\}", lambda m: chr(int(m[1], 16)), text)


def dataset() -> Dataset:
    return Dataset("notes", "Notes", (
        Variable("note_id", "Note id", "integer", sas_name="NOTEID"),
        Variable("text", "Text", TEXT, sas_name="TEXT", free_text=True),
    ), sas_name="notes")


DATA = [(1, LONG), (2, "µ·⁹ 中文"), (3, None), *((i + 4, f) for i, f in enumerate(FORMULAS))]


def joined(frame, names) -> list[str]:
    return ["".join("" if pd.isna(frame[n].iloc[i]) else frame[n].iloc[i] for n in names)
            for i in range(len(frame))]


def expected() -> list[str]:
    return ["" if text is None else text for _id, text in DATA]


def test_excel_splits_long_text_over_continuation_columns(tmp_path):
    path = tmp_path / "x.xlsx"
    tabular.write_xlsx(path, [(dataset(), iter(DATA))], [], stamp=STAMP)
    header, *cells = openpyxl.load_workbook(path)["notes"].iter_rows(values_only=True)
    parts = [i for i, name in enumerate(header) if name == "text" or
             (name or "").startswith("text_part")]
    assert len(parts) >= 4  # 100,000 characters, at most 32,767 a cell
    assert [header[i] for i in parts] == ["text", *(f"text_part{k}"
                                                    for k in range(2, len(parts) + 1))]
    texts = [rule("".join(row[i] or "" for i in parts)) for row in cells]
    assert texts == expected()


def test_excel_writes_formula_like_text_as_text(tmp_path):
    path = tmp_path / "x.xlsx"
    tabular.write_xlsx(path, [(dataset(), iter(DATA))], [], stamp=STAMP)
    sheet = openpyxl.load_workbook(path)["notes"]
    rows = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    for number, formula in enumerate(FORMULAS, start=4):
        cell = rows[number]
        assert cell.value == formula and cell.data_type == "s", formula
        assert cell.quotePrefix, formula
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in xml and b"<f " not in xml
    assert pd.read_excel(path, sheet_name="notes")["text"].tolist()[3:] == FORMULAS


def test_xport_is_ascii_and_gives_the_text_back_by_the_rule(tmp_path):
    """The main file holds each text's first piece, the companion the rest of the long one
    only; both ASCII, pieces of at most 200 bytes; rejoined (tests/exports/xport.py, also
    with pandas' own XPORT reader) and unescaped by the rule, every text comes back."""
    path = tmp_path / "notes.xpt"
    files = []
    tabular.write_xpt(path, dataset(), DATA, stamp=STAMP, files=files)
    companion = tmp_path / "notes_c.xpt"
    assert files == [(companion, len(pyreadstat.read_xport(companion)[0]))]
    frame, meta = pyreadstat.read_xport(path, encoding="ascii")
    rest, rest_meta = pyreadstat.read_xport(companion, encoding="ascii")
    assert meta.column_names == ["NOTEID", "TEXT"]
    assert frame["TEXT"].str.isascii().all() and rest["TEXT"].str.isascii().all()
    for raw in (path.read_bytes(), companion.read_bytes()):
        assert "µ".encode() not in raw and "中".encode() not in raw
    assert meta.variable_storage_width["TEXT"] <= 200
    assert rest_meta.variable_storage_width["TEXT"] <= 200
    assert set(rest["ROW"]) == {1} and set(rest["VARNAME"]) == {"TEXT"}  # only the long one
    whole, _meta, pieces = read_xport(path)
    assert pieces == len(rest) and [rule(t) for t in whole["TEXT"]] == expected()
    assert rule(frame["TEXT"].iloc[1]) == "µ·⁹ 中文" and frame["TEXT"].iloc[1] == (
        "\\u{b5}\\u{b7}\\u{2079} \\u{4e2d}\\u{6587}")
    # pandas reads the companion alike (not the main file: for rows of 80 bytes or less it
    # takes any blank 8-byte word of the last record for padding, and drops a row here).
    sas_rest = pd.read_sas(companion, format="xport", encoding="ascii")
    texts = list(frame["TEXT"])
    for row in sas_rest.sort_values(["ROW", "PIECE"]).itertuples():
        texts[int(row.ROW) - 1] += row.TEXT
    assert [rule(t) for t in texts] == expected()


def test_spss_splits_long_strings_and_keeps_trailing_blanks(tmp_path):
    path = tmp_path / "notes.sav"
    tabular.write_sav(path, dataset(), DATA, stamp=STAMP)
    frame, meta = pyreadstat.read_sav(path)
    names = [n for n in meta.column_names if n.startswith("text")]
    assert names[0] == "text" and len(names) > 1
    assert [rule(t) for t in joined(frame, names)] == expected()
    assert meta.column_names_to_labels["text_part2"] == "Text (part 2)"


def test_stata_and_r_carry_long_text_as_it_is(tmp_path):
    dta, rds = tmp_path / "notes.dta", tmp_path / "notes.rds"
    tabular.write_dta(dta, dataset(), DATA, stamp=STAMP)
    tabular.write_rds(rds, dataset(), DATA, stamp=STAMP)
    assert pd.read_stata(dta)["text"].tolist() == expected()
    texts = pyreadr.read_r(rds)[None]["text"].tolist()
    assert texts[:2] + texts[3:] == [t for _i, t in DATA if t is not None]
    assert pd.isna(texts[2])


@pytest.mark.parametrize("text", [
    "", "plain", " lead", "trail ", "\\u{41}", "\\\\u{5c}", "中", "a" + " " * 200 + "b",
    "\x00\x01\x0b", "😀 ", " " * 64, "\\u{", "\\u{zz}",
])
def test_the_escape_is_reversible(text):
    for forbidden in (tabular._NOT_XPT, tabular._NOT_SPSS, tabular._NOT_EXCEL):
        for blanks in (True, False):
            escaped = tabular.escape_text(text, forbidden, blanks=blanks)
            assert rule(escaped) == text
            if blanks:
                assert not escaped.endswith(" ") and " " * 64 not in escaped


def test_r_files_carry_the_decoded_label_beside_each_code(tmp_path):
    coded = Variable("sex", "Sex", TEXT, choices=(("F", "Female"), ("M", "Male")),
                     sas_name="SEX")
    data = [("M",), (None,), ("F",)]
    path = tmp_path / "coded.rds"
    tabular.write_rds(path, Dataset("c", "Coded", (coded,), sas_name="c"), data, stamp=STAMP)
    frame = pyreadr.read_r(path)[None]
    assert list(frame.columns) == ["sex", "sex_label"]
    assert frame["sex"].tolist()[::2] == ["M", "F"]
    assert frame["sex_label"].tolist()[::2] == ["Male", "Female"]
    assert pd.isna(frame["sex_label"].iloc[1])
