"""The data import page: a laboratory's CSV → a dry-run report row by row → confirm →
written through the API's import path; the same file again changes nothing."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from edc.models import AuditAction, AuditEvent
from edc.roles import Role
from edc.sources import Source
from forms.models import LabPanel
from tests.eligible import lab_ranges
from tests.factories import UserFactory, randomized_subject


@pytest.fixture
def subject(site, nurse):
    lab_ranges(site)
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def data_manager(client):
    dm = UserFactory(username="dm", role=Role.DATA_MANAGER)
    client.force_login(dm)
    return dm


def lab_csv(subject, *, ast="150", extra_row: str = "") -> bytes:
    sampled = (timezone.now() - dt.timedelta(hours=2)).astimezone(subject.site.zone)
    return (
        "screening_number,redcap_event_name,sampled_at,ast,alt,creatinine\n"
        f"{subject.screening_number},d2_arm_1,{sampled:%Y-%m-%d %H:%M},{ast},30,70\n"
        + extra_row
    ).encode()


def upload(client, content: bytes):
    return client.post(reverse("api:data_import"),
                       {"file": SimpleUploadedFile("lab.csv", content, "text/csv")})


def test_dry_run_then_confirm_then_the_same_file_changes_nothing(client, subject,
                                                                 data_manager):
    checked = upload(client, lab_csv(subject))
    assert checked.status_code == 200
    page = checked.content.decode()
    assert "Dry run" in page and ">create<" in page
    assert not LabPanel.objects.exists()
    context = checked.context
    confirmed = client.post(reverse("api:data_import"), {
        "action": "confirm", "data": context["data"], "digest": context["digest"]})
    assert confirmed.status_code == 200
    labs = LabPanel.objects.get(subject=subject, visit__code="D2")
    assert labs.ast == 150
    assert labs.history.get().history_source == Source.FILE_IMPORT
    assert labs.history.get().history_user == data_manager
    event = AuditEvent.objects.get(action=AuditAction.DATA_IMPORTED)
    assert event.detail["written"] and event.source == Source.FILE_IMPORT
    again = upload(client, lab_csv(subject))
    assert ">unchanged<" in again.content.decode()
    assert again.context["counts"]["unchanged"] == 1
    client.post(reverse("api:data_import"), {
        "action": "confirm", "data": again.context["data"],
        "digest": again.context["digest"]})
    assert labs.history.count() == 1


def test_a_refused_row_shows_why_and_nothing_can_be_confirmed(client, subject, data_manager):
    bad = f"{subject.screening_number},d2_arm_1,2020-01-01 10:00,abc,30,70\n"
    checked = upload(client, lab_csv(subject, extra_row=bad))
    page = checked.content.decode()
    assert ">refuse<" in page and "ast" in page
    assert "Confirm" not in page
    assert not LabPanel.objects.exists()


def test_a_confirmation_of_another_text_is_refused(client, subject, data_manager):
    checked = upload(client, lab_csv(subject))
    response = client.post(reverse("api:data_import"), {
        "action": "confirm", "data": checked.context["data"].replace("150", "15"),
        "digest": checked.context["digest"]})
    assert response.status_code == 302
    assert not LabPanel.objects.exists()


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00bad", b"a,b\n1,2,3\n"])
def test_unreadable_files_get_a_message(client, subject, data_manager, content):
    response = upload(client, content)
    assert response.status_code == 400


def test_a_monitor_cannot_import(client, site, subject):
    client.force_login(UserFactory(role=Role.MONITOR, sites=[site]))
    assert client.get(reverse("api:data_import")).status_code == 403
