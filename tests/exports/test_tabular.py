"""The tabular writers (Excel, SAS XPORT v5, Stata, SPSS, R): each file read back by an
independent reader and compared value by value with the rows and the database, labels and
factor levels, the XPORT v5 limits, byte-identical files for the same stamp, and no arm in a
blinded export."""

import datetime as dt
import gzip
import math
import re
import time
import zipfile
from decimal import Decimal

import openpyxl
import pandas as pd
import pyreadr
import pyreadstat
import pytest
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from exports import tabular
from exports.codebook import COLUMNS, entries
from exports.datasets import ExportContext, rows
from exports.dictionary import (
    BOOLEAN,
    BOOLEAN_CHOICES,
    DATE,
    DATETIME,
    FLOAT,
    INTEGER,
    TEXT,
    Dataset,
    Profile,
    Variable,
    datasets,
)
from exports.tabular import ExportError
from forms.models import MRS, NIHSS, Demographics, VitalSigns
from forms.models.deviations import ProtocolDeviation
from tests.eligible import NIHSS_12, save
from tests.exports.xport import read_xport
from tests.factories import UserFactory, randomized_subject

STAMP = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
CHECKED = ("subjects", "demographics", "vital_signs", "mrs", "nihss", "protocol_deviation")
# 180 ASCII bytes, then 100 Chinese characters (300 bytes): the cut has to respect both
# words and UTF-8 characters.
LONG_TEXT = ("Visit D8 done on day 10 because the subject's family could not bring him; "
             "the investigator documented the reason in the source notes and informed "
             "the sponsor. " + "随访延迟" * 25)
ARM_WORDS = [str(a.label) for a in protocol.ARMS] + [protocol.PLACEBO, protocol.ACTIVE]


@pytest.fixture
def data_manager(db):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def trial(site, nurse):
    """One randomized subject with several forms: decimals, dates, datetimes, coded text
    (sex, NIHSS items with "UN"), a coded integer (mRS), booleans, a missing value (weight
    of the vital signs) and a free text longer than 200 bytes."""
    subject = randomized_subject(site=site, user=nurse)
    screening, day2 = subject.visits.get(code="SCR"), subject.visits.get(code="D2")
    now = timezone.now()
    forms = {
        "demographics": save(Demographics, subject, nurse, {
            "sex": "F", "ethnicity": "han", "height": 162, "weight": Decimal("58.5"),
            "childbearing_potential": False}, visit=screening),
        "vital_signs": save(VitalSigns, subject, nurse, {
            "measured_at": now - dt.timedelta(minutes=5, microseconds=123457),
            "systolic_bp": 142, "diastolic_bp": 85, "heart_rate": 78,
            "temperature": Decimal("36.8"), "respiratory_rate": 16, "spo2": 97}, visit=day2),
        "mrs": save(MRS, subject, nurse, {
            "assessed_on": timezone.localdate(now, subject.site.zone), "score": 1},
            visit=screening),
        "nihss": save(NIHSS, subject, nurse, {
            "assessed_at": now - dt.timedelta(minutes=20), **NIHSS_12,
            "motor_arm_right": "UN", "un_explanation": "Right arm amputated"}, visit=day2),
        "protocol_deviation": save(ProtocolDeviation, subject, nurse, {
            "occurred_on": dt.date(2026, 1, 5), "category": "visit_out_of_window",
            "description": LONG_TEXT, "is_major": False, "reported_on": dt.date(2026, 1, 6)}),
    }
    for form in forms.values():
        form.refresh_from_db()
    return subject, forms


@pytest.fixture
def exported(trial, data_manager):
    """The checked datasets and their rows, as the export reads them."""
    context = ExportContext(user=data_manager, profile=Profile.BLINDED)
    return {d.name: (d, list(rows(d, context))) for d in datasets(Profile.BLINDED)
            if d.name in CHECKED}


def test_rows_hold_the_database_values(trial, exported):
    """The rows the writers get are the database's values (the read-back tests compare the
    files with these rows)."""
    subject, forms = trial
    for name, form in forms.items():
        dataset, data = exported[name]
        (row,) = data
        values = dict(zip(dataset.names, row, strict=True))
        assert values["record_id"] == form.pk and values["subject_id"] == subject.subject_id
        for item in type(form).item_names():
            stored = getattr(form, item)
            assert values[item] == (None if stored == "" else stored), (name, item)
    demographics = dict(zip(exported["demographics"][0].names, exported["demographics"][1][0],
                            strict=True))
    assert demographics["sex"] == "F" and demographics["weight"] == Decimal("58.5")
    assert demographics["childbearing_potential"] is False
    vitals = dict(zip(exported["vital_signs"][0].names, exported["vital_signs"][1][0],
                      strict=True))
    assert vitals["weight"] is None and vitals["temperature"] == Decimal("36.8")
    assert vitals["measured_at"] == forms["vital_signs"].measured_at
    assert vitals["measured_at"].microsecond  # a datetime with microseconds
    assert exported["subjects"][1][0][1] == subject.subject_id


# Comparing values ---------------------------------------------------------------------------

def missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def assert_close(expected, actual, where, *, tolerance=0.0):
    if missing(expected):
        assert missing(actual) or actual == "", where
    elif isinstance(expected, float):
        assert not missing(actual) and abs(float(actual) - expected) <= tolerance, where
    elif isinstance(expected, dt.datetime):
        actual = pd.Timestamp(actual).round("us").to_pydatetime()
        assert abs(actual - expected) <= dt.timedelta(seconds=tolerance), where
    else:
        assert actual == expected, where


def by_the_rule(text: str) -> str:
    """XPORT text decoded by the documented escape rule (``tabular.TEXT_ESCAPE_RULE``)."""
    return re.sub(r"\\u\{([0-9a-f]+)\}", lambda m: chr(int(m[1], 16)), text)


def naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def write(writer, tmp_path, dataset, data, suffix):
    path = tmp_path / f"{dataset.name}.{suffix}"
    assert writer(path, dataset, iter(data), stamp=STAMP) == len(data)
    return path


# Each format read back ----------------------------------------------------------------------

def test_xport_reads_back_value_by_value(exported, tmp_path):
    """Each value read back, every text rejoined from the companion file by the documented
    layout (tests/exports/xport.py) and unescaped by the rule."""
    for dataset, data in exported.values():
        path = write(tabular.write_xpt, tmp_path, dataset, data, "xpt")
        frame, _meta, _pieces = read_xport(path, disable_datetime_conversion=True)
        assert list(frame.columns) == [v.sas_name for v in dataset.variables]
        for v in dataset.variables:
            for i, row in enumerate(data):
                value = row[dataset.variables.index(v)]
                where = (dataset.name, v.name, i)
                if v.type == TEXT:
                    text = frame[v.sas_name].iloc[i]
                    assert text.isascii() and by_the_rule(text) == (value or ""), where
                    continue
                expected = (None if value is None else
                            float((value - dt.date(1960, 1, 1)).days) if v.type == DATE else
                            (naive_utc(value) - dt.datetime(1960, 1, 1)).total_seconds()  # noqa: DTZ001
                            if v.type == DATETIME else float(value))
                assert_close(expected, frame[v.sas_name].iloc[i], where, tolerance=1e-6)


def test_stata_reads_back_with_value_labels(exported, tmp_path):
    every = {}
    for dataset, data in exported.values():
        path = write(tabular.write_dta, tmp_path, dataset, data, "dta")
        with pd.io.stata.StataReader(path) as reader:
            frame = reader.read(convert_categoricals=False)
            labels = reader.value_labels()
            variable_labels = reader.variable_labels()
            assert reader.time_stamp == "04 Mar 2026 05:06"
        every |= labels
        for index, v in enumerate(dataset.variables):
            assert variable_labels[v.name].startswith(v.label[:70])
            for i, row in enumerate(data):
                value, actual, where = row[index], frame[v.name].iloc[i], (v.name, i)
                if v.type == TEXT and v.is_coded:
                    if value is None:
                        assert missing(actual), where
                        continue
                    label = labels[v.name][int(actual)]
                    assert label in (v.decode(value), f"{value}: {v.decode(value)}"), where
                    if value.isdigit():
                        assert actual == int(value), where
                elif v.type == TEXT:
                    assert actual == (value or ""), where
                elif v.type == DATE:
                    assert_close(None if value is None else dt.datetime.combine(value, dt.time()),
                                 actual, where)
                elif v.type == DATETIME:  # Stata's %tc counts milliseconds
                    assert_close(None if value is None else naive_utc(value), actual, where,
                                 tolerance=0.001)
                else:
                    assert_close(None if value is None else float(value), actual, where)
                    if v.is_coded and value is not None:
                        assert labels[v.name][int(value)] == v.decode(value), where
    assert every["sex"] == {1: "F: Female", 2: "M: Male"}
    assert every["motor_arm_right"][5].startswith("UN — untestable")
    assert every["score"][1].startswith("1 — No significant disability")
    assert every["is_major"] == {1: "Yes", 0: "No"}


def test_spss_reads_back_with_value_labels(exported, tmp_path):
    labels, variable_labels = {}, {}
    for dataset, data in exported.values():
        path = write(tabular.write_sav, tmp_path, dataset, data, "sav")
        frame, meta = pyreadstat.read_sav(path)
        labels |= meta.variable_value_labels
        variable_labels |= meta.column_names_to_labels
        assert meta.creation_time == dt.datetime(2026, 3, 4, 5, 6, 7)  # noqa: DTZ001
        for index, v in enumerate(dataset.variables):
            assert meta.column_names_to_labels[v.name].startswith(v.label)
            for i, row in enumerate(data):
                value, actual, where = row[index], frame[v.name].iloc[i], (v.name, i)
                if v.type == TEXT:
                    assert actual == (value or ""), where
                elif v.type == DATE:
                    assert actual == value if value else missing(actual), where
                elif v.type == DATETIME:  # seconds since 1582 in a double
                    assert_close(None if value is None else naive_utc(value), actual, where,
                                 tolerance=1e-5)
                else:
                    assert_close(None if value is None else float(value), actual, where)
                if v.is_coded and value is not None:
                    key = value if v.type == TEXT else float(value)
                    assert meta.variable_value_labels[v.name][key] == v.decode(value), where
    assert labels["category"]["visit_out_of_window"] == "Visit out of window"
    assert labels["sex"] == {"F": "Female", "M": "Male"}
    assert labels["is_major"] == {1.0: "Yes", 0.0: "No"}
    assert labels["score"][1.0].startswith("1 — No significant disability")
    assert variable_labels["measured_at"] == "date and time measured (UTC)"


def test_r_reads_back_with_factors(exported, tmp_path):
    for dataset, data in exported.values():
        path = write(tabular.write_rds, tmp_path, dataset, data, "rds")
        frame = pyreadr.read_r(path)[None]
        for index, v in enumerate(dataset.variables):
            column = frame[v.name]
            if v.is_coded and v.type != BOOLEAN:
                assert isinstance(column.dtype, pd.CategoricalDtype), v.name
                assert list(column.cat.categories) == [str(c) for c, _ in v.choices if c != ""]
            for i, row in enumerate(data):
                value, actual, where = row[index], column.iloc[i], (v.name, i)
                if value is None:
                    assert missing(actual), where
                elif v.is_coded and v.type != BOOLEAN:
                    assert actual == str(value), where
                elif v.type == BOOLEAN:
                    assert actual is value or actual == value, where
                elif v.type == DATE:
                    assert actual == value, where
                elif v.type == DATETIME:
                    assert_close(naive_utc(value), actual, where, tolerance=1e-6)
                elif v.type in (INTEGER, FLOAT):
                    assert_close(float(value), actual, where)
                else:
                    assert actual == value, where
    assert list(frame["category"].cat.categories)[2] == "visit_out_of_window"
    assert frame["description"].iloc[0] == LONG_TEXT


def test_excel_reads_back_with_label_columns_and_dictionary(exported, tmp_path):
    path = tmp_path / "export.xlsx"
    tables = [(d, iter(data)) for d, data in exported.values()]
    definitions = [d for d, _data in exported.values()]
    counts = tabular.write_xlsx(path, tables, entries(definitions), stamp=STAMP)
    assert counts == {name: len(data) for name, (_d, data) in exported.items()} | {
        "dictionary": sum(len(d.variables) for d in definitions)}
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == [*exported, "dictionary"]
    for dataset, data in exported.values():
        header, *cells = workbook[dataset.name].iter_rows(values_only=True)
        assert len(cells) == len(data)
        for index, v in enumerate(dataset.variables):
            column = header.index(v.name)
            if v.is_coded:
                assert header[column + 1] == f"{v.name}_label"
            for i, row in enumerate(data):
                value, actual, where = row[index], cells[i][column], (v.name, i)
                if v.is_coded:
                    assert cells[i][column + 1] == (v.decode(value) or None), where
                if value is None:
                    assert actual is None, where
                elif v.type == DATE:
                    assert actual == dt.datetime.combine(value, dt.time()), where
                elif v.type == DATETIME:  # openpyxl reads milliseconds
                    assert_close(naive_utc(value), actual, where, tolerance=0.001)
                elif v.type in (FLOAT, INTEGER, BOOLEAN):
                    assert actual == float(value), where
                else:
                    assert actual == value, where
    dictionary = list(workbook["dictionary"].iter_rows(values_only=True))
    assert dictionary[0] == COLUMNS
    measured = next(r for r in dictionary if r[0] == "vital_signs" and r[2] == "measured_at")
    assert measured[4] == "date and time measured (UTC)"


# SAS XPORT v5 limits ------------------------------------------------------------------------

def test_xport_keeps_the_v5_limits_and_splits_long_text(exported, tmp_path):
    dataset, data = exported["protocol_deviation"]
    path = write(tabular.write_xpt, tmp_path, dataset, data, "xpt")
    frame, meta = pyreadstat.read_xport(path, encoding="ascii")
    assert meta.table_name == "protocol"
    for name, label in meta.column_names_to_labels.items():
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]{0,7}", name)
        assert len(label) <= 40 and label.isascii()
    assert max(meta.variable_storage_width.values()) <= 200
    # One column per variable: the long text's first piece in DESCRIPT, the rest (100
    # Chinese characters of 8 ASCII bytes each, \\u{968f} …) in the companion file.
    assert [n for n in frame.columns if n.startswith("DESCRI")] == ["DESCRIPT"]
    assert meta.column_names_to_labels["DESCRIPT"] == "description"
    companion = tmp_path / "protoc_c.xpt"
    rest, rest_meta = pyreadstat.read_xport(companion, encoding="ascii")
    assert rest_meta.table_name == "protoc_c"
    assert list(rest.columns) == ["ROW", "VARNAME", "PIECE", "TEXT"]
    assert max(rest_meta.variable_storage_width.values()) <= 200
    assert set(rest["ROW"]) == {1} and set(rest["VARNAME"]) == {"DESCRIPT"}
    assert list(rest["PIECE"]) == list(range(2, len(rest) + 2))
    pieces = [frame["DESCRIPT"].iloc[0], *rest["TEXT"]]
    assert by_the_rule("".join(pieces)) == LONG_TEXT
    assert all(len(p.encode()) <= 200 for p in pieces)
    assert pieces[0].endswith("sponsor.") and pieces[1].startswith(" ")  # before a space
    assert frame["ISMAJOR"].iloc[0] == 0
    assert read_xport(path)[0]["DESCRIPT"].map(by_the_rule).tolist() == [LONG_TEXT]


@pytest.mark.parametrize(("value", "pieces"), [
    ("", [""]),
    ("a" * 200, ["a" * 200]),
    ("a" * 201, ["a" * 200, "a"]),
    ("word " * 50, ["word " * 39 + "word", " word" * 10 + " "]),
    ("é" * 101, ["é" * 100, "é"]),  # 2 bytes each: never half a character
    ("ab" + " " * 150 + "c" * 100, ["ab", " " * 150 + "c" * 50, "c" * 50]),
])
def test_split_text(value, pieces):
    assert tabular.split_text(value) == pieces
    assert "".join(pieces) == value


def hand_made(*variables, sas_name="bad"):
    return Dataset("bad", "Hand-made", tuple(variables), sas_name=sas_name)


def test_xport_refuses_what_v5_cannot_hold(tmp_path):
    path = tmp_path / "bad.xpt"
    with pytest.raises(ExportError, match="TOOLONGNAME"):
        tabular.write_xpt(path, hand_made(Variable("x", "X", INTEGER, sas_name="TOOLONGNAME")),
                          [(1,)], stamp=STAMP)
    with pytest.raises(ExportError, match="not a SAS name"):
        tabular.write_xpt(path, hand_made(Variable("x", "X", INTEGER, sas_name="1X")),
                          [(1,)], stamp=STAMP)
    with pytest.raises(ExportError, match="dataset name"):
        tabular.write_xpt(path, hand_made(Variable("x", "X", INTEGER, sas_name="X"),
                                          sas_name="waytoolong"), [(1,)], stamp=STAMP)

    class LongLabel(Variable):  # ``Variable.sas_label`` cuts at 40: force a longer one
        @property
        def sas_label(self):
            return "A label much longer than forty characters, in SAS v5"

    with pytest.raises(ExportError, match="label"):
        tabular.write_xpt(path, hand_made(LongLabel("x", "X", INTEGER, sas_name="X")),
                          [(1,)], stamp=STAMP)


def test_no_companion_without_a_long_text(tmp_path):
    """A text as long as the column allows stays in the main file: no companion."""
    dataset = hand_made(Variable("term", "Term", TEXT, sas_name="TERM"))
    path = tmp_path / "bad.xpt"
    (tmp_path / "bad_c.xpt").write_bytes(b"left from an earlier run")
    files = []
    assert tabular.write_xpt(path, dataset, [("x " * 99 + "x",), ("y",)], stamp=STAMP,
                             files=files) == 2
    assert files == [] and not (tmp_path / "bad_c.xpt").exists()
    frame, meta = pyreadstat.read_xport(path)
    assert list(frame["TERM"]) == ["x " * 99 + "x", "y"]
    assert meta.variable_storage_width["TERM"] == 199


@pytest.mark.parametrize("profile", list(Profile))
def test_companion_names_collide_with_no_dataset(profile):
    """The companion of each dataset has a name of its own, within XPORT's 8 characters,
    that no dataset and no other companion of the export has."""
    names = [d.sas_name.upper() for d in datasets(profile)]
    companions = [tabular.xpt_companion_name(d.sas_name).upper() for d in datasets(profile)]
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]{0,7}", n) for n in companions)
    assert len(set(names + companions)) == 2 * len(names)


# Same stamp, same bytes ---------------------------------------------------------------------

def write_all(exported, folder):
    folder.mkdir()
    for dataset, data in exported.values():
        for writer, suffix in ((tabular.write_xpt, "xpt"), (tabular.write_dta, "dta"),
                               (tabular.write_sav, "sav"), (tabular.write_rds, "rds")):
            write(writer, folder, dataset, data, suffix)
    tabular.write_xlsx(folder / "export.xlsx", [(d, iter(r)) for d, r in exported.values()],
                       entries([d for d, _r in exported.values()]), stamp=STAMP)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_rows_and_stamp_give_byte_identical_files(exported, tmp_path):
    first = write_all(exported, tmp_path / "first")
    time.sleep(1.05)  # the libraries read the clock to the second
    second = write_all(exported, tmp_path / "second")
    companions = [name for name in first if name.endswith("_c.xpt")]
    assert "protoc_c.xpt" in companions  # the long description's further pieces
    assert first.keys() == second.keys()
    assert len(first) == 4 * len(CHECKED) + 1 + len(companions)
    for name in first:
        assert first[name] == second[name], name


def test_headers_carry_the_stamp_not_the_clock(exported, tmp_path):
    files = write_all(exported, tmp_path / "files")
    xpt = files["mrs.xpt"]
    assert [xpt[o:o + 16] for o in (144, 160, 464, 480)] == [b"04MAR26:05:06:07"] * 4
    assert files["mrs.sav"][92:109] == b"04 Mar 2605:06:07"
    assert gzip.decompress(files["mrs.rds"])[:2] == b"X\n"
    assert files["mrs.rds"][4:8] == b"\0\0\0\0"  # gzip mtime
    with zipfile.ZipFile(tmp_path / "files" / "export.xlsx") as workbook:
        assert {i.date_time for i in workbook.infolist()} == {(2026, 3, 4, 5, 6, 6)}
        core = workbook.read("docProps/core.xml").decode()
    assert core.count("2026-03-04T05:06:07Z") == 2


# Blinding -----------------------------------------------------------------------------------

def test_blinded_files_have_no_arm(trial, data_manager, tmp_path):
    context = ExportContext(user=data_manager, profile=Profile.BLINDED)
    subjects = next(d for d in datasets(Profile.BLINDED) if d.name == "subjects")
    assert "arm" not in subjects.names
    data = list(rows(subjects, context))
    exported = {"subjects": (subjects, data)}
    files = write_all(exported, tmp_path / "blinded")
    texts = {
        "subjects.xpt": files["subjects.xpt"], "subjects.dta": files["subjects.dta"],
        "subjects.sav": files["subjects.sav"],
        "subjects.rds": gzip.decompress(files["subjects.rds"]),
    }
    with zipfile.ZipFile(tmp_path / "blinded" / "export.xlsx") as workbook:
        texts |= {n: workbook.read(n) for n in workbook.namelist()}
    for name, content in texts.items():
        for word in ARM_WORDS:
            assert word.lower().encode() not in content.lower(), (name, word)
    folder = tmp_path / "blinded"
    columns = [
        pd.read_sas(folder / "subjects.xpt", format="xport", encoding="utf-8").columns,
        pd.read_stata(folder / "subjects.dta").columns,
        pyreadstat.read_sav(folder / "subjects.sav")[0].columns,
        pyreadr.read_r(folder / "subjects.rds")[None].columns,
        next(openpyxl.load_workbook(folder / "export.xlsx", read_only=True)["subjects"]
             .iter_rows(values_only=True)),
    ]
    for names in columns:
        assert {str(n).lower() for n in names}.isdisjoint({"arm", "arm_label"}), names


def test_unblinded_subjects_have_the_arm_as_a_factor(trial, tmp_path):
    statistician = UserFactory(username="stat", role=Role.UNBLINDED_STATISTICIAN)
    context = ExportContext(user=statistician, profile=Profile.UNBLINDED)
    subjects = next(d for d in datasets(Profile.UNBLINDED) if d.name == "subjects")
    data = list(rows(subjects, context))
    path = write(tabular.write_rds, tmp_path, subjects, data, "rds")
    arm = pyreadr.read_r(path)[None]["arm"]
    assert list(arm.cat.categories) == [a.code for a in protocol.ARMS]
    assert arm.iloc[0] == data[0][subjects.names.index("arm")]


# Other types --------------------------------------------------------------------------------

def test_stata_and_spss_names_are_checked(tmp_path):
    with pytest.raises(ExportError, match="Stata"):
        tabular.write_dta(tmp_path / "x.dta", hand_made(Variable("float", "F", FLOAT)),
                          [(Decimal(1),)], stamp=STAMP)
    with pytest.raises(ExportError, match="SPSS"):
        tabular.write_sav(tmp_path / "x.sav", hand_made(Variable("with", "W", INTEGER)),
                          [(1,)], stamp=STAMP)
    with pytest.raises(ExportError, match="timezone-aware"):
        tabular.write_rds(tmp_path / "x.rds", hand_made(Variable("n", "N", INTEGER)), [(1,)],
                          stamp=dt.datetime(2026, 1, 1))  # noqa: DTZ001


def test_values_outside_the_code_list_are_kept(tmp_path):
    """A code no longer in the list (an old export "as of") is kept, after the listed ones."""
    coded = Variable("flag", "Flag", TEXT, choices=(("a", "A"), ("b", "B")), sas_name="FLAG")
    boolean = Variable("ok", "OK", BOOLEAN, choices=BOOLEAN_CHOICES, sas_name="OK")
    dataset = hand_made(coded, boolean)
    data = [("b", True), ("zz", None), (None, False)]
    assert tabular.stata_codes(coded, ["zz"]) == {"a": (1, "a: A"), "b": (2, "b: B"),
                                                  "zz": (3, "zz: zz")}
    path = write(tabular.write_rds, tmp_path, dataset, data, "rds")
    frame = pyreadr.read_r(path)[None]
    assert list(frame["flag"].cat.categories) == ["a", "b", "zz"]
    assert frame["flag"].tolist()[:2] == ["b", "zz"]
    assert frame["ok"].tolist()[0] is True and frame["ok"].tolist()[2] is False
    path = write(tabular.write_dta, tmp_path, dataset, data, "dta")
    assert pd.read_stata(path, convert_categoricals=False)["flag"].tolist()[:2] == [2, 3]
