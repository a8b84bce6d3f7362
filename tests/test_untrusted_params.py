"""Malformed ids, numbers, dates and text in requests get a 4xx or a message, never a 500
(issue 14, item 17). Ids, numbers and dates in requests go through ``edc.bounds``."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from edc import bounds
from edc.models import Notification
from edc.roles import Role
from forms.models import AdverseEvent, ConcomitantMedication, VitalSigns
from forms.models.signoff import Lock
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject


@pytest.mark.parametrize(("raw", "expected"), [
    ("12", 12), (" 7 ", 7), ("0", None), ("", None), (None, None), ("²", None), ("١٢", None),
    ("-3", None), ("+3", None), ("1e3", None), ("abc", None), ("12\x00", None),
    (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("9" * 40, None), (["1"], None),
])
def test_an_id_from_a_request_is_ascii_digits_in_range(raw, expected):
    assert bounds.id_param(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-03-10", dt.date(2026, 3, 10)), ("", None), ("abc", None), ("2026-02-30", None),
    ("2026-03-10\x00", None),
])
def test_a_date_from_a_request(raw, expected):
    assert bounds.date_param(raw) == expected


@pytest.mark.parametrize("raw", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_a_date_outside_the_span_says_so(raw):
    with pytest.raises(ValueError, match="Enter a date between"):
        bounds.date_param(raw)


@pytest.fixture
def data_manager(db):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse,
                              randomized_at=timezone.now() - dt.timedelta(days=3))


def adverse_event(subject, nurse):
    return save(AdverseEvent, subject, nurse, {"term": "Headache", "start_date":
                                                timezone.localdate(), "ctcae_grade": 1,
                                                "is_serious": False}, complete=False)


# --- log entries ------------------------------------------------------------------------------


def test_a_log_entry_of_another_subject_or_none_is_404(client, site, subject, nurse):
    other = randomized_subject(site=site, user=nurse)
    entry = adverse_event(other, nurse)
    client.force_login(nurse)
    for pk in (entry.pk, entry.pk + 1000):
        url = reverse("forms:log_edit", args=[subject.pk, "adverse_event", pk])
        assert client.get(url).status_code == 404
        assert client.post(url, {"version": 0, "term": "x"}).status_code in (403, 404)
    assert AdverseEvent.objects.get().term == "Headache"
    own = reverse("forms:log_edit", args=[other.pk, "adverse_event", entry.pk])
    assert client.get(own).status_code == 200


# --- locks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pk", ["abc", "²", "-1", "9" * 30, "", "1\x00"])
def test_lock_ids_are_checked_after_the_permission(client, subject, nurse, data_manager, pk):
    client.force_login(nurse)
    for scope in ("subject", "visit", "site", "form"):
        response = client.post(reverse("forms:lock"), {"scope": scope, "subject": pk,
                                                       "pk": pk, "crf_code": "vital_signs",
                                                       "reason": "x"})
        assert response.status_code == 403
        response = client.post(reverse("forms:locks"), {"lock": pk, "reason": "x"})
        assert response.status_code == 403
    client.force_login(data_manager)
    for scope in ("subject", "visit", "site", "form"):
        response = client.post(reverse("forms:lock"), {"scope": scope, "subject": pk,
                                                       "pk": pk, "crf_code": "vital_signs",
                                                       "reason": "x"})
        assert response.status_code == 404
    assert client.post(reverse("forms:locks"), {"lock": pk, "reason": "x"}).status_code == 404
    assert not Lock.objects.exists()


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"form": "vital_signs", "record": "²"}, {"form": "vital_signs", "record": "9" * 30},
    {"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}, {"subject": "S\x00"},
    {"user": "dm\x00"}, {"field": "x\x00"}, {"date_to": "2026-01-01\x00"},
    {"subject": "x" * 100_000},
])
def test_the_audit_trail_survives_odd_filters(client, subject, data_manager, params):
    client.force_login(data_manager)
    response = client.get(reverse("forms:audit_trail"), params)
    assert response.status_code == 200
    if "9999" in params.get("date_to", "") or "0001" in params.get("date_from", ""):
        assert "Enter a date between" in response.content.decode()


@pytest.mark.parametrize("params", [
    {"min_age": "²"}, {"min_age": "1000000"}, {"min_age": "9" * 40}, {"min_age": "-1"},
    {"site": "SZ01\x00"}, {"form": "\x00"}, {"check": "\x00"}, {"status": "\x00"},
])
def test_the_query_list_survives_odd_filters(client, subject, data_manager, params):
    client.force_login(data_manager)
    assert client.get(reverse("forms:query_list"), params).status_code == 200


def test_the_matrix_survives_a_nul_in_its_filter(client, subject, data_manager):
    client.force_login(data_manager)
    assert client.get(reverse("forms:matrix"), {"site": "SZ\x00",
                                                "status": "\x00"}).status_code == 200


@pytest.mark.parametrize("pk", ["²", "9" * 40, "abc", "\x00"])
def test_marking_a_notification_read_with_an_odd_id(client, nurse, pk):
    note = Notification.objects.create(user=nurse, title="t", body="b")
    client.force_login(nurse)
    response = client.post(reverse("notifications"), {"pk": pk})
    assert response.status_code == 302
    note.refresh_from_db()
    # Not a single notification's id: the request marks everything read, as an empty pk does.
    assert note.read_at is not None


# --- eligibility ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["abc", "²", "9" * 40, "-1"])
def test_eligibility_with_a_malformed_version_is_a_message(client, site, nurse, version):
    from tests.factories import screened_subject

    subject = screened_subject(site=site, user=nurse)
    client.force_login(nurse)
    response = client.post(reverse("forms:eligibility", args=[subject.pk]),
                           {"version": version})
    assert response.status_code == 400
    assert "reload the page" in response.content.decode()


# --- dates on CRF items -----------------------------------------------------------------------


def vitals_post(measured_at: str) -> dict:
    return {"version": 0, "action": "draft", "measured_at": measured_at, "systolic_bp": 142,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": "36.8",
            "respiratory_rate": 16, "spo2": 97, "weight": "70.0"}


@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "1899-12-31T23:59",
                                    "2024-12-31T23:59"])
def test_a_crf_date_time_before_the_trial_is_a_field_error(client, subject, nurse, moment):
    d2 = subject.visits.get(code="D2")
    client.force_login(nurse)
    page = client.get(reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]))
    assert f'min="{bounds.TRIAL_START.isoformat()}T00:00"' in page.content.decode()
    response = client.post(reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]),
                           vitals_post(moment))
    assert response.status_code == 400
    assert "is not plausible here" in response.content.decode()
    assert not VitalSigns.objects.exists()


def test_the_service_refuses_a_crf_date_before_the_trial(subject, nurse):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        save(VitalSigns, subject, nurse, {
            "measured_at": dt.datetime(1, 1, 1, tzinfo=dt.UTC), "systolic_bp": 142,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8")},
            visit=subject.visits.get(code="D2"), complete=False)
    assert "measured_at" in caught.value.message_dict


def test_a_medication_may_have_started_before_the_trial_but_not_before_1900(subject, nurse):
    from django.core.exceptions import ValidationError

    values = {"medication": "Aspirin", "indication": "Secondary prevention",
              "start_date": dt.date(1990, 5, 1), "ongoing": True}
    assert save(ConcomitantMedication, subject, nurse, values).start_date.year == 1990
    with pytest.raises(ValidationError) as caught:
        save(ConcomitantMedication, subject, nurse, values | {"start_date": dt.date(1899, 1, 1)})
    assert "start_date" in caught.value.message_dict


def test_an_adverse_event_cannot_start_before_the_trial(subject, nurse):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        save(AdverseEvent, subject, nurse, {"term": "Headache",
                                            "start_date": dt.date(2001, 1, 1)}, complete=False)
    assert "start_date" in caught.value.message_dict


@pytest.mark.parametrize(("field", "value", "message"), [
    ("screened_at", "0001-01-01T00:00", "before the trial began"),
    ("screened_at", "2024-12-31T10:00", "before the trial began"),
    ("birth_date", "1850-01-01", "greater than or equal to 1900-01-01"),
])
def test_the_screening_page_refuses_implausible_dates(client, site, nurse, field, value,
                                                      message):
    from visits.models import Subject

    good = {"site": site.pk, "screened_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "full_name": "Li Lei", "birth_date": "1960-01-01"}
    client.force_login(nurse)
    response = client.post(reverse("visits:screening_log"), good | {field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Subject.objects.exists()
