"""Who a row is about, in every profile and format (issue 14, items 13, 14 and 15): one
pseudonymous subject key in every de-identified dataset and format, randomized or not, and
never the screening number or subject ID; an audit trail whose label says what it holds; a
FileOID of its own for each ODM file; NA, not "", for a subject ID not assigned yet."""

import csv
import io
import json
import re
import zipfile

import openpyxl
import pandas as pd
import pyreadr
import pyreadstat
import pytest
from lxml import etree

from edc.roles import Role
from exports import package
from exports.datasets import subject_key
from exports.dictionary import Profile
from forms.models import Demographics
from forms.quality import queries
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject, screened_subject

NS = {"o": "http://www.cdisc.org/ns/odm/v1.3"}


@pytest.fixture
def data_manager(site):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def subjects(site, nurse):
    """A randomized subject and one still in screening, each with a form and a query."""
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    result = [randomized_subject(site=site, user=nurse), screened_subject(site=site, user=nurse)]
    for subject in result:
        demographics = save(Demographics, subject, nurse, {"sex": "F", "height": 160},
                            visit=subject.visits.get(code="SCR"), complete=False)
        query = queries.query_raise(target=demographics, field_name="height",
                                    text="Please confirm the height.", user=monitor)
        queries.query_answer(query=query, text="Confirmed.", user=nurse)
    return result


def build(user, tmp_path, name="export.zip", **kwargs):
    result = package.build(package.ExportRequest(user, **kwargs), tmp_path / name)
    with zipfile.ZipFile(result.path) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def csv_tables(files) -> dict[str, list[dict]]:
    return {name[4:-4]: list(csv.DictReader(io.StringIO(data.decode())))
            for name, data in files.items() if name.startswith("csv/")}


def test_every_subject_has_one_pseudonym_in_every_deidentified_dataset_and_format(
        subjects, data_manager, tmp_path):
    files = build(data_manager, tmp_path, formats=("csv", "xlsx", "rds", "odm"),
                  profile=Profile.DEIDENTIFIED)
    keys = {subject_key(s.pk) for s in subjects}
    assert len(keys) == 2
    identifiers = [s.screening_number for s in subjects] + [subjects[0].subject_id]
    for name, rows in csv_tables(files).items():
        for row in rows:
            assert row["subject_key"] in keys, name
            assert "subject_id" not in row and "screening_number" not in row, name
    tables = csv_tables(files)
    for name in ("subjects", "demographics", "queries", "query_messages", "audit_trail"):
        assert {row["subject_key"] for row in tables[name]} == keys, name
    # The audit trail keeps which record changed, without free text or dates.
    audit = tables["audit_trail"]
    assert all(row["record_id"] for row in audit)
    assert {"old_value", "new_value", "reason", "record", "user"}.isdisjoint(audit[0])
    # Excel, R and ODM name the same subjects by the same keys, and nothing else.
    workbook = openpyxl.load_workbook(io.BytesIO(files["nct07084012.xlsx"]))
    header, *rows = workbook["query_messages"].iter_rows(values_only=True)
    assert {row[header.index("subject_key")] for row in rows} == keys
    with open(tmp_path / "s.rds", "wb") as out:
        out.write(files["rds/subjects.rds"])
    assert set(pyreadr.read_r(tmp_path / "s.rds")[None]["subject_key"]) == keys
    odm = etree.parse(io.BytesIO(files["nct07084012_odm.xml"]))
    assert {e.get("SubjectKey") for e in odm.iterfind(".//o:SubjectData", NS)} == keys
    for name, data in files.items():
        if name.endswith((".csv", ".xml", ".html")):
            text = data.decode()
            for identifier in identifiers:
                assert identifier not in text, (name, identifier)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows(values_only=True):
            assert not set(identifiers) & {str(c) for c in row}, sheet.title
    # The same keys in a later export.
    again = csv_tables(build(data_manager, tmp_path, "again.zip", formats=("csv",),
                             profile=Profile.DEIDENTIFIED))
    assert [r["subject_key"] for r in again["subjects"]] == [
        r["subject_key"] for r in tables["subjects"]]


def test_the_key_is_not_derived_from_the_screening_number_or_subject_id(subjects, settings):
    subject = subjects[0]
    key = subject_key(subject.pk)
    assert re.fullmatch(r"P[A-Z2-7]{12}", key)
    for identifier in (subject.screening_number, subject.subject_id, str(subject.pk)):
        assert identifier not in key
    settings.EXPORT_PSEUDONYM_SECRET = "another secret"
    assert subject_key(subject.pk) != key  # keyed: without the secret, no key


def test_the_audit_trail_label_and_manifest_say_what_it_holds(
        subjects, data_manager, site, tmp_path):
    statistician = UserFactory(username="stat", role=Role.UNBLINDED_STATISTICIAN)
    labels = {}
    for user, profile in ((data_manager, Profile.BLINDED), (statistician, Profile.UNBLINDED)):
        files = build(user, tmp_path, f"{user.username}.zip", formats=("csv", "dta", "xpt"),
                      profile=profile)
        manifest = json.loads(files["manifest.json"])
        (entry,) = [d for d in manifest["datasets"] if d["name"] == "audit_trail"]
        labels[user.username] = entry
        dictionary = list(csv.DictReader(io.StringIO(
            files["dictionary/data_dictionary.csv"].decode())))
        assert {r["dataset_label"] for r in dictionary
                if r["dataset"] == "audit_trail"} == {entry["label"]}
        with open(tmp_path / "a.dta", "wb") as out:
            out.write(files["dta/audit_trail.dta"])
        with pd.io.stata.StataReader(tmp_path / "a.dta") as reader:
            assert reader.data_label == entry["label"][:80]
        assert "\\u{" in manifest["text_escape_rule"]
        with open(tmp_path / "a.xpt", "wb") as out:
            out.write(files["xpt/audit.xpt"])
        assert pyreadstat.read_xport(tmp_path / "a.xpt")[1].file_label == entry["label"]
    assert labels["dm"]["audit_scope"] == "clinical"
    assert labels["stat"]["audit_scope"] == "allocation"
    assert labels["dm"]["label"] != labels["stat"]["label"]
    assert "randomization changes only" in labels["stat"]["label"]


def test_each_odm_file_has_its_own_file_oid(subjects, data_manager, tmp_path):
    oids = []
    for name in ("one.zip", "two.zip"):
        files = build(data_manager, tmp_path, name, formats=("odm",))
        oid = etree.parse(io.BytesIO(files["nct07084012_odm.xml"])).getroot().get("FileOID")
        assert json.loads(files["manifest.json"])["odm_file_oid"] == oid
        oids.append(oid)
    assert oids[0] != oids[1]


def test_a_subject_id_not_assigned_yet_is_na_in_r(subjects, data_manager, tmp_path):
    files = build(data_manager, tmp_path, formats=("rds",))
    with open(tmp_path / "s.rds", "wb") as out:
        out.write(files["rds/subjects.rds"])
    frame = pyreadr.read_r(tmp_path / "s.rds")[None]
    ids = dict(zip(frame["screening_number"], frame["subject_id"], strict=True))
    assert ids[subjects[0].screening_number] == subjects[0].subject_id
    assert pd.isna(ids[subjects[1].screening_number])  # NA, never ""
