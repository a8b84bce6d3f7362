"""The API against a client no one here wrote: PyCap (PyPI), over HTTP to a live server."""

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from django.utils import timezone
from redcap import Project, RedcapError

from api.models import ApiToken
from api.tokens import token_create, token_revoke
from edc.models import AuditAction, AuditEvent
from edc.roles import Role
from edc.sources import Source
from forms.models import Query, VitalSigns
from tests.eligible import save
from tests.factories import SiteFactory, UserFactory, randomized_subject
from tests.test_blinding import arm_leaks
from visits.models import RandomizationSlot


@pytest.fixture
def trial(transactional_db):
    sz = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    gz = SiteFactory(code="GZ02", name="Guangzhou", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[sz])
    nurse_gz = UserFactory(username="nurse.gz", role=Role.SITE_STAFF, sites=[gz])
    dm = UserFactory(username="dm", role=Role.DATA_MANAGER)
    subject = randomized_subject(site=sz, user=nurse)
    other = randomized_subject(site=gz, user=nurse_gz)
    save(VitalSigns, subject, nurse, {
        "measured_at": timezone.now() - dt.timedelta(hours=2), "systolic_bp": 142,
        "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
        "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")},
        visit=subject.visits.get(code="D1"))
    return {"nurse": nurse, "nurse_gz": nurse_gz, "dm": dm, "subject": subject,
            "other": other}


def project(live_server, user, name="test"):
    _token, plain = token_create(user=user, name=name)
    return Project(f"{live_server.url}/api/", plain)


def test_metadata_field_names_and_mappings(live_server, trial):
    proj = project(live_server, trial["dm"])
    metadata = proj.export_metadata()
    assert metadata[0]["field_name"] == "screening_number"
    assert proj.def_field == "screening_number"
    names = [row["field_name"] for row in metadata]
    assert {"heart_rate", "nihss_total", "barthel_total", "vital_signs_weight", "ast"} <= set(
        names)
    assert len(names) == len(set(names))
    heart_rate = next(r for r in metadata if r["field_name"] == "heart_rate")
    assert heart_rate["form_name"] == "vital_signs"
    assert heart_rate["text_validation_type_or_show_slider_number"] == "integer"
    exported = proj.export_field_names()
    assert {"original_field_name": "vital_signs_complete", "choice_value": "",
            "export_field_name": "vital_signs_complete"} in exported
    mapping = proj.export_instrument_event_mappings()
    assert {"arm_num": 1, "unique_event_name": "d2_arm_1", "form": "labs"} in mapping
    assert proj.is_longitudinal
    assert [a["name"] for a in proj.export_arms()] == ["Arm 1"]
    metadata_df = proj.export_metadata(format_type="df")
    assert metadata_df.index[0] == "screening_number"


def test_export_records_json_csv_and_dataframe(live_server, trial):
    proj = project(live_server, trial["dm"])
    subject = trial["subject"]
    records = proj.export_records()
    d1 = [r for r in records if r["screening_number"] == subject.screening_number
          and r["redcap_event_name"] == "d1_arm_1"]
    assert len(d1) == 1
    assert d1[0]["heart_rate"] == "78"
    assert d1[0]["vital_signs_complete"] == "2"
    assert {r["screening_number"] for r in records} == {
        subject.screening_number, trial["other"].screening_number}
    csv_text = proj.export_records(format_type="csv", fields=["heart_rate"])
    assert csv_text.splitlines()[0].split(",")[:5] == [
        "screening_number", "redcap_event_name", "redcap_repeat_instrument",
        "redcap_repeat_instance", "heart_rate"]
    frame = proj.export_records(format_type="df", forms=["vital_signs"])
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc[(subject.screening_number, "d1_arm_1"), "heart_rate"] == 78
    only = proj.export_records(records=[subject.screening_number], events=["d1_arm_1"])
    assert [r["redcap_event_name"] for r in only] == ["d1_arm_1"]
    event = AuditEvent.objects.filter(action=AuditAction.API_CALL,
                                      detail__content="record").first()
    assert event.user == trial["dm"] and event.detail["token"] == "test"
    assert event.source == Source.API


def test_blinded_and_no_identifiers(live_server, trial):
    """Every content, as an unblinded statistician's token: no arm, no kit-to-arm mapping, no
    identifier (the same scan as the pages' blinding test)."""
    statistician = UserFactory(username="stat", role=Role.UNBLINDED_STATISTICIAN)
    proj = project(live_server, statistician)
    texts = [proj.export_records(format_type="csv"), proj.export_records(raw_or_label="label"),
             proj.export_metadata(format_type="csv"), proj.export_field_names(format_type="csv"),
             proj.export_events(format_type="csv"), proj.export_arms(format_type="csv"),
             proj.export_project_info(format_type="csv"),
             proj.export_repeating_instruments_events(format_type="csv")]
    slots = RandomizationSlot.objects.all()
    for text in texts:
        text = str(text)
        assert arm_leaks(text, slots) == []
        assert "Wang Fang" not in text and "H123456" not in text


def test_a_nurse_sees_only_her_site(live_server, trial):
    proj = project(live_server, trial["nurse"])
    records = proj.export_records()
    assert {r["screening_number"] for r in records} == {trial["subject"].screening_number}
    with pytest.raises(RedcapError):
        proj.import_records([{"screening_number": trial["other"].screening_number,
                              "redcap_event_name": "d2_arm_1", "heart_rate": "80"}])


def test_import_valid_rows_opens_a_query_and_records_the_api(live_server, trial):
    proj = project(live_server, trial["nurse"])
    subject = trial["subject"]
    measured = (timezone.now() - dt.timedelta(hours=1)).astimezone(subject.site.zone)
    result = proj.import_records([{
        "screening_number": subject.screening_number, "redcap_event_name": "d2_arm_1",
        "measured_at": measured.strftime("%Y-%m-%d %H:%M"), "systolic_bp": "120",
        "diastolic_bp": "80", "heart_rate": "135", "temperature": "36.9",
    }])
    assert result == {"count": 1}
    vitals = VitalSigns.objects.get(subject=subject, visit__code="D2")
    assert vitals.heart_rate == 135
    history = vitals.history.latest("history_id")
    assert history.history_source == Source.API
    assert history.history_user == trial["nurse"]
    assert Query.objects.filter(object_id=vitals.pk, field_name="heart_rate").exists()
    # The same rows again change nothing.
    again = proj.import_records([{
        "screening_number": subject.screening_number, "redcap_event_name": "d2_arm_1",
        "heart_rate": "135"}])
    assert again == {"count": 0}
    assert vitals.history.count() == 1


def test_import_invalid_rows_raise_with_our_message_and_write_nothing(live_server, trial):
    proj = project(live_server, trial["nurse"])
    subject = trial["subject"]
    with pytest.raises(RedcapError) as caught:
        proj.import_records([
            {"screening_number": subject.screening_number, "redcap_event_name": "d2_arm_1",
             "heart_rate": "80"},
            {"screening_number": subject.screening_number, "redcap_event_name": "d8_arm_1",
             "systolic_bp": "300"},
        ])
    message = str(caught.value)
    assert subject.screening_number in message and "systolic_bp" in message
    assert "d8_arm_1" in message
    assert not VitalSigns.objects.filter(subject=subject, visit__code__in=["D2", "D8"]).exists()


def test_revoked_or_expired_token_is_refused(live_server, trial):
    token, plain = token_create(user=trial["dm"], name="old")
    proj = Project(f"{live_server.url}/api/", plain)
    assert proj.export_version()
    token_revoke(token=token, actor=trial["dm"])
    with pytest.raises(RedcapError) as caught:
        Project(f"{live_server.url}/api/", plain).export_metadata()
    assert "permissions" in str(caught.value)
    expired, plain2 = token_create(user=trial["dm"], name="short", days=1)
    ApiToken.objects.filter(pk=expired.pk).update(
        created_at=timezone.now() - dt.timedelta(days=3),
        expires_at=timezone.now() - dt.timedelta(days=2))
    with pytest.raises(RedcapError):
        Project(f"{live_server.url}/api/", plain2).export_records()
    refused = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REFUSED)
    assert {e.detail["reason"] for e in refused} == {"revoked", "expired"}
