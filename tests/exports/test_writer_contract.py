"""The writer contract (issue 14): whatever the EDC accepts, every writer carries.

One subject whose every free-text field holds the longest text its field accepts
(``field.max_length``, or 20,000 characters where a field has no limit) in mixed scripts
(Chinese, µ·⁹±≥, an emoji, formula-like starts, spaces at both ends, line breaks, our own
escape syntax), edited once with a reason as long, and every date and time at the extremes of
what an input allows, exports in every format and every profile, and prints its casebook
PDF. Each file is read back by a reader that is not ours (csv, openpyxl, pyreadstat,
pandas, pyreadr, lxml, pypdf) and compared value by value with the database; where a
format needs it, the parts of a long text are joined and the documented escape rule
applied, using only what the export's own data dictionary and documentation say.
"""

import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections import defaultdict

import openpyxl
import pandas as pd
import pyreadr
import pyreadstat
import pytest
from django.db import models
from django.urls import reverse
from django.utils import timezone
from lxml import etree
from pypdf import PdfReader

from edc import protocol
from edc.history import system_writes
from edc.roles import Role
from exports import package
from exports.datasets import subject_key
from exports.dictionary import Profile, datasets
from forms.models import CRF_MODELS
from forms.quality import queries
from forms.quality.queries import Query, QueryMessage
from tests.exports.xport import read_xport
from tests.factories import UserFactory, randomized_subject

FORMATS = tuple(package.FORMATS)
NO_LIMIT = 20_000
EARLIEST = dt.date(1900, 1, 1)
# Formula-like starts, spaces at both ends, a line break, Chinese, symbols, an emoji, a tab,
# Word's line break (a vertical tab, which XML and Excel cannot hold) and our own escape
# syntax, repeated up to the field's limit.
STARTS = ("=1+1 ", "@SUM(A1) ", "-2 ", "+3 ", " lead ")
BODY = "随访延迟，受试者家属无法陪同 µg·L⁻¹ 10⁹/L ±5 ≥60 😀\n\\u{41} tab\there,\x0bWord; "
NS = {"o": "http://www.cdisc.org/ns/odm/v1.3"}


def longest(limit: int | None, number: int) -> str:
    """The longest text a field of ``limit`` takes, distinct for each ``number``."""
    size = limit or NO_LIMIT
    start = STARTS[number % len(STARTS)] + f"#{number} "
    text = (start + BODY * (size // len(BODY) + 1))[: size - 1] + " "
    return text if size > 1 else "="


def rule(text: str) -> str:
    """The documented escape rule (manifest ``text_escape_rule``), as a reader applies it."""
    return re.sub(r"\\u\{([0-9a-f]+)\}", lambda m: chr(int(m[1], 16)), text)


def free_text(field: models.Field) -> bool:
    return (isinstance(field, models.CharField | models.TextField) and not field.choices
            and not field.name.endswith(("_code", "_number")))


@pytest.fixture
def casebook(site, nurse):
    """The subject, and the free texts each dataset must carry: {dataset: {variable: texts}}.
    Written with the ORM, as an import or an old version could have: the writers must carry
    what the database holds, whatever the forms check today."""
    subject = randomized_subject(site=site, user=nurse)
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    today = timezone.localdate()
    extremes = [EARLIEST, today + dt.timedelta(days=365)]
    expected: dict[str, dict[str, list[str]]] = defaultdict(dict)
    old_values, reasons = [], []
    number = 0
    visits = {v.code: v for v in subject.visits.all()}
    for code, model in CRF_MODELS.items():
        visit = None if protocol.crf(code).is_log else next(
            visits[v.code] for v in protocol.VISITS if code in v.crfs)
        crf = model(subject=subject, visit=visit)
        texts = []
        for name in model.item_names():
            field = model._meta.get_field(name)
            if free_text(field):
                number += 1
                setattr(crf, name, longest(field.max_length, number))
                texts.append(name)
            elif isinstance(field, models.DateTimeField):
                setattr(crf, name, dt.datetime.combine(extremes[number % 2], dt.time(),
                                                       tzinfo=dt.UTC))
            elif isinstance(field, models.DateField):
                setattr(crf, name, extremes[number % 2])
        with system_writes():  # test data written directly
            crf.save()
        if texts:  # one edit, with a reason as long as the history takes
            old_values.append(getattr(crf, texts[0]))
            number += 1
            setattr(crf, texts[0], longest(model._meta.get_field(texts[0]).max_length, number))
            reason_field = model.history.model._meta.get_field("history_change_reason")
            crf._change_reason = longest(reason_field.max_length, number)
            reasons.append(crf._change_reason)
            with system_writes():  # test data written directly
                crf.save()
        expected[code] = {name: [getattr(crf, name)] for name in texts}
        if code == "demographics":
            demographics = crf
    missed = visits["D90"]
    missed.is_missed = True
    missed.missed_reason = longest(missed._meta.get_field("missed_reason").max_length, 900)
    with system_writes():  # test data written directly
        missed.save()
    expected["visits"]["missed_reason"] = [missed.missed_reason]
    query = queries.query_raise(
        target=demographics, field_name="height", user=monitor,
        text=longest(Query._meta.get_field("text").max_length, 901))
    answer = longest(QueryMessage._meta.get_field("text").max_length, 902)
    queries.query_answer(query=query, text=answer, user=nurse)
    # As stored (the query services strip the ends of what a person types).
    expected["queries"]["text"] = [Query.objects.get(pk=query.pk).text]
    expected["query_messages"]["text"] = list(
        QueryMessage.objects.filter(query=query).order_by("at", "id").values_list("text",
                                                                                   flat=True))
    return subject, expected, old_values, reasons


def read(files: dict[str, bytes], fmt: str, tmp_path, xpt_files: dict[str, str]
         ) -> dict[str, list[dict]]:
    """Every dataset of ``fmt`` as rows of variable → value, long text joined and unescaped
    by the documented rules, SAS names mapped by the export's own data dictionary."""
    dictionary = list(csv.DictReader(io.StringIO(
        files["dictionary/data_dictionary.csv"].decode("utf-8"))))
    variables = defaultdict(list)
    for entry in dictionary:
        variables[entry["dataset"]].append(entry)

    def local(name: str) -> str:
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(files[name])
        return str(path)

    result = {}
    if fmt == "csv":
        for name in variables:
            text = files[f"csv/{name}.csv"].decode("utf-8")
            result[name] = list(csv.DictReader(io.StringIO(text, newline="")))
    elif fmt == "xlsx":
        workbook = openpyxl.load_workbook(io.BytesIO(files["nct07084012.xlsx"]))
        for name in variables:
            header, *rows = workbook[name].iter_rows(values_only=True)
            result[name] = [_joined(dict(zip(header, row, strict=True)),
                                    lambda base, k: f"{base}_part{k}") for row in rows]
            assert not any(c.data_type == "f" for r in workbook[name].iter_rows() for c in r)
    elif fmt == "xpt":
        folder = tmp_path / "xpt"
        folder.mkdir(exist_ok=True)
        for name in files:
            if name.startswith("xpt/"):
                (tmp_path / name).write_bytes(files[name])
        for name, entries in variables.items():
            # The long texts rejoined from the companion file (tests/exports/xport.py).
            frame, _meta, _pieces = read_xport(tmp_path / xpt_files[name])
            assert list(frame.columns) == [e["sas_name"] for e in entries]
            result[name] = [
                {e["variable"]: rule(row[e["sas_name"]]) if e["type"] == "text"
                 else row[e["sas_name"]] for e in entries}
                for row in frame.to_dict("records")]
    elif fmt == "dta":
        for name in variables:
            frame = pd.read_stata(local(f"dta/{name}.dta"), convert_categoricals=False)
            result[name] = frame.to_dict("records")
    elif fmt == "sav":
        for name in variables:
            frame, _meta = pyreadstat.read_sav(local(f"sav/{name}.sav"))
            result[name] = [_joined(row, lambda base, k: f"{base}_part{k}")
                            for row in frame.to_dict("records")]
    elif fmt == "rds":
        for name in variables:
            result[name] = pyreadr.read_r(local(f"rds/{name}.rds"))[None].to_dict("records")
    return result


def _joined(row: dict, part_name) -> dict:
    """A row with each text's continuation columns joined to it and the rule applied."""
    result = {}
    for name, value in row.items():
        if name is None or re.search(r"_part\d+$", name):
            continue
        if isinstance(value, str):
            pieces, k = [value], 2
            while part_name(name, k) in row:
                pieces.append(row[part_name(name, k)] or "")
                k += 1
            value = rule("".join(pieces))
        result[name] = value
    return result


def odm_items(data: bytes) -> dict[tuple[str, str], str]:
    """(form OID, item OID) → the value its last FormData leaves (ItemData in order), by the
    escape rule (ODM escapes what XML cannot hold)."""
    state = {}
    for form in etree.parse(io.BytesIO(data)).iterfind(".//o:FormData", NS):
        for item in form.iterfind(".//o:ItemData", NS):
            value = item.get("Value")
            state[(form.get("FormOID"), item.get("ItemOID"))] = (
                None if value is None else rule(value))
    return state


@pytest.mark.parametrize("profile", list(Profile))
def test_every_writer_carries_the_longest_texts_and_extreme_dates(
        casebook, profile, site, tmp_path):
    subject, expected, old_values, reasons = casebook
    role = Role.UNBLINDED_STATISTICIAN if profile == Profile.UNBLINDED else Role.DATA_MANAGER
    user = UserFactory(role=role)
    xpt_files = {d.name: f"xpt/{d.sas_name}.xpt" for d in datasets(profile)}
    result = package.build(package.ExportRequest(user, FORMATS, profile), tmp_path / "x.zip")
    with zipfile.ZipFile(result.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    deidentified = profile == Profile.DEIDENTIFIED
    # The longest texts continue in XPORT companion files, which the manifest lists (with
    # their rows) and explains.
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"]: f["rows"] for f in manifest["files"]}
    companions = [name for name in files if name.endswith("_c.xpt")]
    assert companions or deidentified
    for name in companions:
        (tmp_path / "companion.xpt").write_bytes(files[name])
        assert listed[name] == len(pyreadstat.read_xport(tmp_path / "companion.xpt")[0])
    assert "_c.xpt" in manifest["xpt_long_text"]
    checked = 0
    for fmt in ("csv", "xlsx", "xpt", "dta", "sav", "rds"):
        tables = read(files, fmt, tmp_path, xpt_files)
        for dataset, texts in expected.items():
            rows = tables[dataset]
            assert rows, (fmt, dataset)
            for variable, values in texts.items():
                if deidentified:
                    assert all(variable not in row for row in rows), (fmt, dataset, variable)
                    continue
                actual = [row[variable] for row in rows
                          if isinstance(row[variable], str) and row[variable] != ""]
                assert actual == values, (fmt, dataset, variable)
                checked += 1
        keys = {row.get("subject_key") for rows in tables.values() for row in rows}
        if deidentified:
            assert keys == {subject_key(subject.pk)}, fmt
        elif "audit_trail" in tables and role == Role.DATA_MANAGER:
            audit = tables["audit_trail"]
            olds = {row["old_value"] for row in audit}
            assert all(value in olds for value in old_values), fmt
            assert all(reason in {row["reason"] for row in audit} for reason in reasons), fmt
    assert checked or deidentified
    # ODM: the last state of each form holds the same texts.
    items = odm_items(files["nct07084012_odm.xml"])
    for dataset, texts in expected.items():
        if dataset in CRF_MODELS:
            for variable, (value,) in texts.items():
                key = (f"F.{dataset.upper()}", f"I.{dataset.upper()}.{variable.upper()}")
                assert items.get(key) == (None if deidentified else value), key


def test_the_casebook_pdf_prints_every_longest_text(client, casebook, site):
    subject, expected, _old_values, reasons = casebook
    data_manager = UserFactory(role=Role.DATA_MANAGER)
    client.force_login(data_manager)
    response = client.get(reverse("forms:casebook_pdf", args=[subject.pk]))
    assert response.status_code == 200
    pages = PdfReader(io.BytesIO(response.content)).pages
    text = "".join("".join(page.extract_text().split()) for page in pages)
    for header in ("ItemCheckStatusThread", "TimeUserRecordItemOldNewReason", "ItemValue"):
        text = text.replace(header, "")

    def printed(value: str) -> str:  # line breaks in the PDF are its own
        return "".join(value.replace("\x0b", "\\u{b}").split())

    for dataset, texts in expected.items():
        if dataset in CRF_MODELS:
            for values in texts.values():
                assert printed(values[0]) in text, dataset
    # In the audit trail the old value, the new one and the reason continue side by side,
    # row after row: each is there whole and in order, between the others' pieces.
    for reason in reasons:
        rest = iter(text)
        assert all(char in rest for char in printed(reason))
