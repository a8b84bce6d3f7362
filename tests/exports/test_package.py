"""One export end to end: the zip, its manifest, CSV values against the database, the
profiles (blinded, unblinded, de-identified), point-in-time exports, reproducibility, the
audit event, and the exports page (issue 8)."""

import csv
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from edc import protocol
from edc.models import AuditAction, AuditEvent, ExportRun, ExportStatus
from edc.roles import Role
from exports import package
from exports.dictionary import Profile
from forms.entry import services
from forms.models import AdverseEvent, MedicalHistory, VitalSigns
from forms.quality import queries
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject
from visits import schedule
from visits.models import RandomizationSlot

ARM_WORDS = [str(a.label) for a in protocol.ARMS] + [protocol.PLACEBO, protocol.ACTIVE]


@pytest.fixture
def data_manager(site):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def statistician(site):
    return UserFactory(username="stat", role=Role.UNBLINDED_STATISTICIAN)


@pytest.fixture
def trial(site, nurse, data_manager):
    """Two randomized subjects with vital signs (one out of range, so a query), an adverse
    event, free text, and one edited form."""
    subjects = [randomized_subject(site=site, user=nurse) for _ in range(2)]
    first = subjects[0]
    d1 = services.visit_record(visit=first.visits.get(code="D1"), actual_date=first.day1,
                               user=nurse)
    vitals = save(VitalSigns, first, nurse, {
        "measured_at": timezone.now() - dt.timedelta(minutes=30), "systolic_bp": 190,
        "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
        "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.5")}, visit=d1)
    save(MedicalHistory, first, nurse, {
        "hypertension": True, "other_conditions": "Gout since 2019; knee replacement"},
        visit=first.visits.get(code="SCR"), complete=False)
    save(AdverseEvent, first, nurse, {
        "term": "Headache", "start_date": timezone.localdate() - dt.timedelta(days=1),
        "ctcae_grade": 1, "is_serious": False, "site_aware_at": timezone.now(),
        "relationship_to_product": "unlikely", "relationship_to_procedure": "not_related",
        "action_taken": "dose_not_changed", "outcome": "recovering",
        "special_interest": "none"}, complete=False)
    return {"subjects": subjects, "vitals": vitals}


def build(user, tmp_path, name="export.zip", **kwargs) -> package.ExportResult:
    request = package.ExportRequest(user, **kwargs)
    return package.build(request, tmp_path / name)


def read_zip(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def csv_rows(files, dataset) -> list[dict]:
    return list(csv.DictReader(io.StringIO(files[f"csv/{dataset}.csv"].decode("utf-8"))))


def test_csv_values_match_the_database(trial, data_manager, tmp_path):
    files = read_zip(build(data_manager, tmp_path).path)
    vitals = trial["vitals"]
    [row] = csv_rows(files, "vital_signs")
    subject = trial["subjects"][0]
    assert row["subject_id"] == subject.subject_id
    assert row["site"] == subject.site.code
    assert row["visit"] == "D1" and row["visit_label"] == "Randomization + infusion 1"
    assert row["visit_date"] == subject.day1.isoformat() and row["study_day"] == "1"
    assert int(row["systolic_bp"]) == vitals.systolic_bp
    assert Decimal(row["temperature"]) == vitals.temperature
    assert row["form_status"] == "complete" and row["form_status_label"] == "Complete"
    assert dt.datetime.fromisoformat(row["measured_at"]) == vitals.measured_at
    [ae] = csv_rows(files, "adverse_event")
    assert ae["term"] == "Headache" and ae["is_serious"] == "0" and ae["is_serious_label"] == "No"
    assert ae["relationship_to_product_label"] == "Unlikely"
    subjects = csv_rows(files, "subjects")
    assert [r["subject_id"] for r in subjects] == [s.subject_id for s in trial["subjects"]]
    assert "arm" not in subjects[0]


def test_manifest_lists_every_file_with_its_checksum_and_rows(trial, data_manager, tmp_path):
    result = build(data_manager, tmp_path, formats=("csv",))
    files = read_zip(result.path)
    manifest = json.loads(files["manifest.json"])
    assert manifest["parameters"] == {"formats": ["csv"], "profile": "blinded", "as_of": None,
                                      "language": "en", "sites": ["SZ01"]}
    assert manifest["requested_by"] == "dm" and manifest["software"]["version"]
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for path, entry in listed.items():
        assert hashlib.sha256(files[path]).hexdigest() == entry["sha256"]
        if path.startswith("csv/"):
            assert entry["rows"] == files[path].decode().count("\r\n") - 1
    assert listed["csv/subjects.csv"]["rows"] == 2
    assert "dictionary/data_dictionary.csv" in listed
    assert "dictionary/data_dictionary.html" in listed


def test_the_export_is_audited_with_the_zip_checksum(trial, data_manager, tmp_path):
    result = build(data_manager, tmp_path)
    event = AuditEvent.objects.get(action=AuditAction.EXPORTED)
    assert event.user == data_manager
    assert event.detail["sha256"] == result.sha256 == hashlib.sha256(
        result.path.read_bytes()).hexdigest()
    assert event.detail["profile"] == "blinded"


def test_the_blinded_export_holds_no_arm_in_any_file(trial, data_manager, tmp_path):
    assert RandomizationSlot.objects.filter(subject__isnull=False).count() == 2
    files = read_zip(build(data_manager, tmp_path, formats=("csv",)).path)
    for name, content in files.items():
        text = content.decode("utf-8")
        for word in ARM_WORDS:
            assert word.lower() not in text.lower(), (name, word)
        assert not re.search(r"(^|,)arm(,|$)", text, re.M), name


def test_the_unblinded_export_is_for_the_unblinded_statistician_only(
    trial, data_manager, statistician, tmp_path
):
    with pytest.raises(PermissionDenied):
        build(data_manager, tmp_path, profile=Profile.UNBLINDED)
    files = read_zip(build(statistician, tmp_path, profile=Profile.UNBLINDED).path)
    arms = {r["subject_id"]: r["arm"] for r in csv_rows(files, "subjects")}
    for subject in trial["subjects"]:
        slot = RandomizationSlot.objects.get(subject=subject)
        assert arms[subject.subject_id] == slot.arm
    event = AuditEvent.objects.get(action=AuditAction.EXPORTED)
    assert event.user == statistician and event.detail["profile"] == "unblinded"


def test_the_deidentified_export_has_study_days_and_no_free_text(trial, data_manager, tmp_path):
    files = read_zip(build(data_manager, tmp_path, profile=Profile.DEIDENTIFIED).path)
    data = {n: c.decode() for n, c in files.items() if n.startswith("csv/")}
    for name, text in data.items():
        for row in csv.DictReader(io.StringIO(text)):
            # The consent form's version names the document's date, not the patient's.
            row.pop("consent_form_version", None)
            for column, value in row.items():
                assert not re.search(r"\d{4}-\d{2}-\d{2}", value), (name, column, value)
        assert "SZ01-S" not in text, f"a screening number in {name}"
    assert "Gout" not in data["csv/medical_history.csv"]
    assert "Headache" not in data["csv/adverse_event.csv"]
    [row] = csv_rows(files, "vital_signs")
    assert row["visit_date"] == row["study_day"] == "1"
    subject, vitals = trial["subjects"][0], trial["vitals"]
    measured_on = schedule.local_date(vitals.measured_at, subject.site.zone)
    assert row["measured_at"] == str(schedule.study_day(subject.day1, measured_on))
    assert "screening_number" not in row


def test_two_exports_of_the_same_data_are_byte_identical(trial, data_manager, tmp_path):
    first = build(data_manager, tmp_path, "one.zip", formats=("csv",))
    second = build(data_manager, tmp_path, "two.zip", formats=("csv",))
    one, two = read_zip(first.path), read_zip(second.path)
    del one["manifest.json"], two["manifest.json"]
    assert one == two
    # The audit trail grew with the first export's event; the data files did not change.
    assert AuditEvent.objects.filter(action=AuditAction.EXPORTED).count() == 2


def test_files_compressed_by_their_format_are_stored_and_the_rest_deflated(
        trial, data_manager, tmp_path):
    result = build(data_manager, tmp_path, formats=("csv", "xlsx", "sav", "rds"))
    with zipfile.ZipFile(result.path) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
        assert archive.testzip() is None
    assert {kinds[n] for n in kinds if n.endswith((".xlsx", ".sav", ".rds"))} == {
        zipfile.ZIP_STORED}
    assert {kinds[n] for n in kinds if n.endswith((".csv", ".json", ".html"))} == {
        zipfile.ZIP_DEFLATED}


def test_an_export_as_of_a_past_time_shows_the_data_as_they_stood(
    trial, nurse, data_manager, tmp_path
):
    vitals = trial["vitals"]
    before = timezone.now()
    with time_machine.travel(before + dt.timedelta(minutes=5)):
        vitals = services.crf_save(crf=vitals, values={"systolic_bp": 150}, user=nurse,
                                   expected_version=vitals.version, complete=True,
                                   reason="Transcription error")
        save(VitalSigns, trial["subjects"][1], nurse, {
            "measured_at": timezone.now(), "systolic_bp": 120, "diastolic_bp": 80,
            "heart_rate": 70, "temperature": Decimal("36.5"), "respiratory_rate": 14,
            "spo2": 98}, visit=trial["subjects"][1].visits.get(code="D2"))
    with time_machine.travel(before + dt.timedelta(minutes=10)):
        past = read_zip(build(data_manager, tmp_path, "past.zip", as_of=before).path)
        now = read_zip(build(data_manager, tmp_path, "now.zip").path)
    [old] = csv_rows(past, "vital_signs")
    assert old["systolic_bp"] == "190"
    assert sorted(r["systolic_bp"] for r in csv_rows(now, "vital_signs")) == ["120", "150"]
    # The query the high value raised was closed by the correction, after the cut.
    def bp_query(files):
        return [r["status"] for r in csv_rows(files, "queries") if r["item"] == "systolic_bp"]

    assert bp_query(past) == ["open"]
    assert bp_query(now) == ["closed"]
    manifest = json.loads(past["manifest.json"])
    assert manifest["parameters"]["as_of"] == before.isoformat()


def test_queries_and_their_threads_are_exported(trial, data_manager, tmp_path):
    query = queries.Query.objects.get(field_name="systolic_bp")
    files = read_zip(build(data_manager, tmp_path).path)
    [row] = [r for r in csv_rows(files, "queries") if r["item"] == "systolic_bp"]
    assert row["query_id"] == str(query.pk) and row["item"] == "systolic_bp"
    assert row["status"] == "open" and row["text"] == query.text
    messages = [m for m in csv_rows(files, "query_messages") if m["query_id"] == str(query.pk)]
    assert [m["kind"] for m in messages] == ["raised"]


def test_the_audit_trail_is_exported(trial, data_manager, tmp_path):
    files = read_zip(build(data_manager, tmp_path).path)
    rows = csv_rows(files, "audit_trail")
    changed = [r for r in rows
               if r["record_type"].lower() == "vital signs" and r["field"] == "systolic_bp"]
    assert changed and changed[0]["new_value"].startswith("190")


def test_export_reads_a_constant_number_of_queries(
    site, nurse, data_manager, tmp_path, django_assert_max_num_queries
):
    def queries_for(n: int) -> int:
        for _ in range(n):
            randomized_subject(site=site, user=nurse)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            build(data_manager, tmp_path, f"n{n}.zip")
        return len(captured)

    assert queries_for(2) == queries_for(6)


# --- the exports page -------------------------------------------------------------------------

@pytest.fixture
def eager(settings):
    from edc.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def test_a_data_manager_runs_an_export_and_downloads_it(
    client, trial, data_manager, eager, export_root, django_capture_on_commit_callbacks
):
    client.force_login(data_manager)
    page = client.get(reverse("exports:exports"))
    assert page.status_code == 200
    assert "Unblinded" not in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("exports:exports"),
                               {"formats": ["csv"], "profile": "blinded"})
    run = ExportRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("exports:detail",
                                                                    args=[run.pk])
    assert run.status == ExportStatus.DONE, run.error
    detail = client.get(response.url).content.decode()
    assert "Download the zip" in detail and run.sha256 in detail
    download = client.get(reverse("exports:download", args=[run.pk]))
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == run.sha256
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT_DOWNLOADED,
                                     user=data_manager).count() == 1


def test_the_page_refuses_bad_input_with_a_message_and_keeps_it(client, trial, data_manager):
    client.force_login(data_manager)
    response = client.post(reverse("exports:exports"), {"profile": "blinded"})
    assert response.status_code == 400
    assert "Choose at least one format." in response.content.decode()
    future = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("exports:exports"),
                           {"formats": ["csv", "xpt"], "profile": "blinded", "as_of": future})
    assert response.status_code == 400
    body = response.content.decode()
    assert "The time lies in the future." in body
    assert 'value="xpt" checked' in body.replace('checked value="xpt"', 'value="xpt" checked') \
        or re.search(r'value="xpt"[^>]*checked', body)
    # Asking for the unblinded profile without the role is refused like any bad choice.
    response = client.post(reverse("exports:exports"),
                           {"formats": ["csv"], "profile": "unblinded"})
    assert response.status_code == 400
    assert not ExportRun.objects.exists()


def test_site_staff_and_monitors_cannot_export(client, trial, nurse, site):
    monitor = UserFactory(username="mon", role=Role.MONITOR, sites=[site])
    for user in (nurse, monitor):
        client.force_login(user)
        assert client.get(reverse("exports:exports")).status_code == 403
        assert client.get(reverse("exports:dictionary")).status_code == 403


def test_another_users_export_cannot_be_downloaded(
    client, trial, data_manager, eager, export_root, django_capture_on_commit_callbacks
):
    client.force_login(data_manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("exports:exports"), {"formats": ["csv"], "profile": "blinded"})
    run = ExportRun.objects.get()
    other = UserFactory(username="dm2", role=Role.DATA_MANAGER)
    client.force_login(other)
    assert client.get(reverse("exports:download", args=[run.pk])).status_code == 404


def test_the_data_dictionary_page_lists_every_variable(client, data_manager):
    client.force_login(data_manager)
    body = client.get(reverse("exports:dictionary")).content.decode()
    assert "systolic_bp" in body and "SYSTOLIC" in body and "mmHg" in body
    assert "1=Yes" in body
