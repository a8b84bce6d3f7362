"""The CDISC ODM 1.3.2 export: valid against the official schema, the database's values item by
item, the audit trail with each change (AT-10), blind-safe, as of a past time, reproducible."""

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from lxml import etree

from edc import protocol
from edc.roles import Role
from edc.sources import Source, audit_source
from exports.datasets import ExportContext, subject_key
from exports.dictionary import Profile, datasets
from exports.odm import KEY_COLUMNS, NS, write_odm
from forms.entry import services
from forms.models import MRS, ConcomitantMedication, Demographics, VitalSigns
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject
from visits import schedule
from visits.models import RandomizationSlot

N = {"o": NS}


@pytest.fixture(scope="session")
def odm_schema():
    """The official ODM 1.3.2 schema, as shipped in odmlib, compiled once."""
    xsd = resources.files("odmlib") / "schemas/odm/1.3.2/ODM1-3-2.xsd"
    with resources.as_file(xsd) as path:
        return etree.XMLSchema(etree.parse(str(path)))


@dataclass
class Trial:
    subject: object
    nurse: object
    editor: object
    data_manager: object
    forms: dict
    before_edit: dt.datetime


@pytest.fixture
def trial(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    screening = subject.visits.get(code="SCR")
    d2 = subject.visits.get(code="D2")
    now = timezone.now()
    forms = {
        "demographics": save(Demographics, subject, nurse, {
            "sex": "M", "ethnicity": "han", "height": 172, "weight": Decimal("70.5")},
            visit=screening),
        "mrs": save(MRS, subject, nurse, {
            "assessed_on": timezone.localdate(now, site.zone) - dt.timedelta(days=1),
            "score": 1}, visit=screening),
        "concomitant_medication": save(ConcomitantMedication, subject, nurse, {
            "medication": "Aspirin", "indication": "Secondary prevention",
            "dose": Decimal("100.00"), "start_date": dt.date(2024, 3, 1), "ongoing": True},
            visit=None),
    }
    vitals = services.crf_instance(model=VitalSigns, subject=subject, visit=d2)
    forms["vital_signs"] = services.crf_save(
        crf=vitals, user=nurse, expected_version=0, complete=True,
        values={"measured_at": now - dt.timedelta(minutes=5), "systolic_bp": 142,
                "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
                "respiratory_rate": 16},
        missing_items={"spo2": "not_done"})
    before_edit = timezone.now()
    editor = UserFactory(username="editor", role=Role.SITE_STAFF, sites=[site])
    with audit_source(Source.API):  # the correction came by the API
        forms["vital_signs"] = services.crf_save(
            crf=forms["vital_signs"], user=editor, expected_version=1, complete=True,
            values={"heart_rate": 88}, missing_items={"spo2": "not_done"},
            reason="Transcription error")
    data_manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    return Trial(subject, nurse, editor, data_manager, forms, before_edit)


def export(tmp_path, user, *, profile=Profile.BLINDED, as_of=None, name="odm.xml"):
    path = tmp_path / name
    stamp = timezone.now()
    context = ExportContext(user, profile, as_of)
    count = write_odm(path, context, datasets(profile), stamp=stamp,
                      file_oid=f"{protocol.TRIAL_REGISTRY_ID}.test")
    return path, count


def final_state(doc) -> dict:
    """(subject, event, repeat, form, repeat) → {item OID: value or ('null', reason)}, by
    applying the transactions in document order, as a receiving system would."""
    forms: dict = {}
    for subject in doc.iterfind("o:ClinicalData/o:SubjectData", N):
        for event in subject.iterfind("o:StudyEventData", N):
            for form in event.iterfind("o:FormData", N):
                key = (subject.get("SubjectKey"), event.get("StudyEventOID"),
                       event.get("StudyEventRepeatKey"), form.get("FormOID"),
                       form.get("FormRepeatKey"))
                kind = form.get("TransactionType")
                if kind == "Remove":
                    forms.pop(key)
                    continue
                items = forms.setdefault(key, {})
                for item in form.iterfind("o:ItemGroupData/o:ItemData", N):
                    if (item.get("TransactionType") or kind) == "Remove":
                        items.pop(item.get("ItemOID"))
                    elif item.get("IsNull") == "Yes":
                        reason = item.findtext("o:Annotation/o:Flag/o:FlagValue", None, N)
                        items[item.get("ItemOID")] = ("null", reason)
                    else:
                        items[item.get("ItemOID")] = item.get("Value")
    return forms


def typed(text: str, data_type: str):
    return {"integer": int, "float": Decimal, "date": dt.date.fromisoformat,
            "datetime": dt.datetime.fromisoformat}.get(data_type, str)(text)


@pytest.mark.parametrize(("old", "new"), [
    (b'EditPoint="Monitoring"', b'EditPoint="DataEntry"'),
    (b'<LocationRef LocationOID="LOC.SZ01"></LocationRef>', b""),
])
def test_export_validates_against_the_official_schema_and_a_tampered_copy_does_not(
        tmp_path, trial, odm_schema, old, new):
    path, count = export(tmp_path, trial.data_manager)
    data = path.read_bytes()
    doc = etree.fromstring(data)
    odm_schema.assertValid(doc)
    assert (doc.get("FileType"), doc.get("ODMVersion")) == ("Transactional", "1.3.2")
    assert count == len(doc.findall(".//o:ItemData", N)) > 0
    assert [e.get("StudyEventOID") for e in doc.iterfind(".//o:Protocol/o:StudyEventRef", N)] \
        == [f"SE.{v.code}" for v in protocol.VISITS] + ["SE.UNS", "SE.LOG"]
    # Negative control: the schema really checks (ODM has no "DataEntry" edit point, and an
    # AuditRecord needs a LocationRef).
    assert old in data
    assert not odm_schema.validate(etree.fromstring(data.replace(old, new, 1)))


def test_values_read_back_equal_the_database_item_by_item(tmp_path, trial):
    path, _count = export(tmp_path, trial.data_manager)
    doc = etree.parse(str(path))
    types = {d.get("OID"): d.get("DataType") for d in doc.iterfind(".//o:ItemDef", N)}
    state = final_state(doc)
    key = trial.subject.subject_id
    where = {"demographics": ("SE.SCR", None), "mrs": ("SE.SCR", None),
             "vital_signs": ("SE.D2", None), "concomitant_medication": ("SE.LOG", None)}
    by_code = {d.crf_code: d for d in datasets(Profile.BLINDED) if d.crf_code}
    compared = 0
    for code, crf in trial.forms.items():
        crf.refresh_from_db()
        event, repeat = where[code]
        form_repeat = str(crf.pk) if code == "concomitant_medication" else None
        items = state[(key, event, repeat, f"F.{code.upper()}", form_repeat)]
        for v in by_code[code].variables:
            if v.name in KEY_COLUMNS:
                continue
            oid = f"I.{code.upper()}.{v.name.upper()}"
            expected = getattr(crf, v.source)
            if isinstance(expected, bool):
                expected = int(expected)
            if expected in (None, ""):
                reason = crf.missing_items.get(v.name)
                assert items.get(oid) == (("null", reason) if reason else None), oid
            else:
                assert typed(items[oid], types[oid]) == expected, oid
            compared += 1
    assert compared >= 25
    vitals = state[(key, "SE.D2", None, "F.VITAL_SIGNS", None)]
    assert vitals["I.VITAL_SIGNS.TEMPERATURE"] == "36.8"
    assert vitals["I.VITAL_SIGNS.SPO2"] == ("null", "not_done")
    assert types["I.DEMOGRAPHICS.SEX"] == "text"
    sex = doc.find(".//o:CodeList[@OID='CL.DEMOGRAPHICS.SEX']/o:CodeListItem[@CodedValue='M']"
                   "/o:Decode/o:TranslatedText", N)
    assert sex is not None and sex.text


def test_an_edited_item_carries_who_when_and_why_and_its_earlier_value(tmp_path, trial):
    path, _count = export(tmp_path, trial.data_manager)
    doc = etree.parse(str(path))
    saves = doc.findall(".//o:FormData[@FormOID='F.VITAL_SIGNS']", N)
    assert [f.get("TransactionType") for f in saves] == ["Insert", "Update"]
    first, edit = saves
    assert first.find(".//o:ItemData[@ItemOID='I.VITAL_SIGNS.HEART_RATE']", N).get("Value") \
        == "78"
    changed = edit.findall(".//o:ItemData", N)
    assert [(i.get("ItemOID"), i.get("Value")) for i in changed] == [
        ("I.VITAL_SIGNS.HEART_RATE", "88")]
    latest = trial.forms["vital_signs"].history.latest()
    record = edit.find("o:AuditRecord", N)
    assert record.get("EditPoint") == "Monitoring"
    assert record.find("o:UserRef", N).get("UserOID") == f"USR.{trial.editor.pk}"
    assert record.find("o:LocationRef", N).get("LocationOID") == "LOC.SZ01"
    assert dt.datetime.fromisoformat(record.findtext("o:DateTimeStamp", None, N)) \
        == latest.history_date
    assert record.findtext("o:ReasonForChange", None, N) == "Transcription error"
    # How each save came in (checklist ER-07): the first by code here, the edit by the API.
    assert [f.findtext("o:AuditRecord/o:SourceID", None, N) for f in saves] == [
        "system", "api"]
    user = doc.find(f".//o:AdminData/o:User[@OID='USR.{trial.editor.pk}']", N)
    assert user.findtext("o:LoginName", None, N) == "editor"
    assert doc.find(".//o:AdminData/o:Location[@OID='LOC.SZ01']", N) is not None


def test_a_blinded_export_holds_no_arm_and_never_reads_the_allocation(tmp_path, trial):
    with CaptureQueriesContext(connection) as queries:
        path, _count = export(tmp_path, trial.data_manager)
    allocation = RandomizationSlot._meta.db_table
    assert not [q["sql"] for q in queries if allocation in q["sql"]]
    doc = etree.parse(str(path))
    # The trial's public title says "placebo-controlled", the profile "no treatment arm";
    # nothing else may speak of either.
    doc.find(".//o:StudyDescription", N).text = ""
    text = etree.tostring(doc, encoding="unicode").lower().replace("(no treatment arm)", "")
    assert "placebo" not in text
    assert "treatment arm" not in text and ".arm" not in text
    for arm in protocol.ARMS:
        assert str(arm.label).lower() not in text
    assert protocol.ACTIVE.lower() not in text


def test_an_export_as_of_a_past_time_shows_the_old_value(tmp_path, trial, odm_schema):
    path, _count = export(tmp_path, trial.data_manager, as_of=trial.before_edit)
    doc = etree.parse(str(path))
    odm_schema.assertValid(doc)
    assert doc.getroot().get("AsOfDateTime") == trial.before_edit.astimezone(dt.UTC).isoformat()
    vitals = final_state(doc)[(trial.subject.subject_id, "SE.D2", None, "F.VITAL_SIGNS", None)]
    assert vitals["I.VITAL_SIGNS.HEART_RATE"] == "78"
    stamps = [dt.datetime.fromisoformat(s.text) for s in doc.iterfind(".//o:DateTimeStamp", N)]
    assert stamps and max(stamps) <= trial.before_edit
    assert "Transcription error" not in path.read_text()


def test_the_same_data_and_stamp_give_the_same_bytes(tmp_path, trial):
    stamp = timezone.now()
    outputs = []
    for name in ("one.xml", "two.xml"):
        context = ExportContext(trial.data_manager, Profile.BLINDED)
        write_odm(tmp_path / name, context, datasets(Profile.BLINDED), stamp=stamp,
                  file_oid="NCT07084012.test")
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


def test_a_deidentified_export_is_a_snapshot_without_dates_names_or_free_text(
        tmp_path, trial, odm_schema):
    path, _count = export(tmp_path, trial.data_manager, profile=Profile.DEIDENTIFIED)
    doc = etree.parse(str(path))
    odm_schema.assertValid(doc)
    text = path.read_text()
    assert doc.getroot().get("FileType") == "Snapshot"
    for absent in ("AuditRecord", "<User ", "TransactionType", "Transcription error",
                   "Aspirin", "editor", trial.subject.screening_number,
                   trial.subject.subject_id):
        assert absent not in text
    measured = doc.find(".//o:ItemDef[@OID='I.VITAL_SIGNS.MEASURED_AT']", N)
    assert measured.get("DataType") == "integer"
    key = subject_key(trial.subject.pk)  # the pseudonym of the tables
    vitals = final_state(doc)[(key, "SE.D2", None, "F.VITAL_SIGNS", None)]
    zone = trial.subject.site.zone
    day = schedule.study_day(schedule.local_date(trial.subject.randomized_at, zone),
                             schedule.local_date(trial.forms["vital_signs"].measured_at, zone))
    assert vitals["I.VITAL_SIGNS.MEASURED_AT"] == str(day)
    assert vitals["I.VITAL_SIGNS.HEART_RATE"] == "88"


def test_a_deleted_form_is_removed_with_its_audit_record(tmp_path, trial, odm_schema):
    medication = trial.forms["concomitant_medication"]
    pk = medication.pk
    medication._history_user = trial.data_manager
    medication.delete()  # no service deletes a form; the exporter still carries a deletion
    path, _count = export(tmp_path, trial.data_manager)
    doc = etree.parse(str(path))
    odm_schema.assertValid(doc)
    saves = doc.findall(f".//o:FormData[@FormRepeatKey='{pk}']", N)
    assert [f.get("TransactionType") for f in saves] == ["Insert", "Remove"]
    assert saves[1].find("o:AuditRecord/o:UserRef", N).get("UserOID") \
        == f"USR.{trial.data_manager.pk}"
    assert not [k for k in final_state(doc) if k[3] == "F.CONCOMITANT_MEDICATION"]


def test_queries_do_not_grow_with_the_subjects(tmp_path, trial, site, nurse):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            export(tmp_path, trial.data_manager)
        return len(queries)

    before = count()
    other = randomized_subject(site=site, user=nurse)
    save(VitalSigns, other, nurse, {"heart_rate": 70}, visit=other.visits.get(code="D2"),
         complete=False)
    assert count() == before


def test_two_pk_pd_samples_of_one_visit_are_two_forms(tmp_path, site, nurse, odm_schema):
    """Issue 14: PK/PD is recorded once per visit and time point; in ODM each sample is its
    own repeat of the form, the file stays valid and both read back."""
    from forms.models import PKPDSample

    subject = randomized_subject(site=site, user=nurse)
    d1 = subject.visits.get(code="D1")
    for slot in ("pre_dose", "post_dose_1h"):
        services.crf_save(crf=services.crf_instance(model=PKPDSample, subject=subject,
                                                    visit=d1, slot=slot),
                          values={"freezer_id": f"F-{slot}"}, user=nurse, expected_version=0)
    data_manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    path, _count = export(tmp_path, data_manager)
    doc = etree.parse(str(path))
    odm_schema.assertValid(doc)
    assert doc.find(".//o:FormDef[@OID='F.PKPD']", N).get("Repeating") == "Yes"
    samples = {key: items for key, items in final_state(doc).items()
               if key[1] == "SE.D1" and key[3] == "F.PKPD"}
    assert len(samples) == 2
    assert sorted(items["I.PKPD.TIMEPOINT"] for items in samples.values()) == [
        "post_dose_1h", "pre_dose"]


TRICKY = ["a & b < c > d", 'say "hi"', "line\nbreak", "carriage\rreturn", "tab\there",
          "µ 中文 😀", "\\u{41} stays", "bell \x07 escaped", "", "  blanks  "]


def test_the_markup_is_the_bytes_lxml_writes(tmp_path):
    """The file's markup is written by the module itself (an element per value costs too much
    through lxml); for text and attribute values that need references it gives lxml's bytes."""
    from exports import odm

    ours = io.StringIO()
    out = odm._Out(ours)
    with out.element("ODM", {"Description": "x"}, nsmap={None: odm.NS}):
        for text in TRICKY:
            with out.element("Item", {"Value": odm._clean(text), "Name": "n"}):
                out.leaf("Text", {"A": "1"}, text)
            out.leaf("Empty", {"B": odm._clean(text)})
    path = tmp_path / "lxml.xml"
    with etree.xmlfile(str(path), encoding="UTF-8") as xf:
        _lxml_out(xf, odm)
    assert path.read_bytes() == ours.getvalue().encode()


def _lxml_out(xf, odm) -> None:
    """The same elements written through lxml's incremental writer, as the module did."""
    depth = [0]

    def indent():
        xf.write("\n" + "  " * depth[0])

    with xf.element(f"{{{odm.NS}}}ODM", {"Description": "x"}, nsmap={None: odm.NS}):
        depth[0] = 1
        for text in TRICKY:
            indent()
            with xf.element(f"{{{odm.NS}}}Item", {"Value": odm._clean(text), "Name": "n"}):
                depth[0] = 2
                indent()
                with xf.element(f"{{{odm.NS}}}Text", {"A": "1"}):
                    if text:
                        xf.write(odm._clean(text))
                depth[0] = 1
                indent()
            indent()
            with xf.element(f"{{{odm.NS}}}Empty", {"B": odm._clean(text)}):
                pass
        depth[0] = 0
        indent()
