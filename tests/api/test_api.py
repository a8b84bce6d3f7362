"""The API's rules beyond what PyCap exercises: tokens (hashed, shown once, revoked, counted
when bad), errors in REDCap's shape and never a 500, imports all or nothing through
``crf_save`` (reasons, locks, repeating forms), the audit source (ER-07)."""

import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken
from api.tokens import token_create
from edc.models import AuditAction, AuditEvent
from edc.roles import Role
from edc.sources import Source
from forms.entry import services
from forms.models import PKPDSample, VitalSigns
from forms.models.signoff import Lock, LockScope
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject

URL = "/api/"


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def token(nurse):
    return token_create(user=nurse, name="script")[1]


def call(client, token, **params):
    return client.post(URL, {"token": token, "format": "json", **params})


def vitals_row(subject, event="d2_arm_1", **values):
    measured = (timezone.now() - dt.timedelta(hours=1)).astimezone(subject.site.zone)
    return {"screening_number": subject.screening_number, "redcap_event_name": event,
            "measured_at": measured.strftime("%Y-%m-%d %H:%M"), "systolic_bp": "120",
            "diastolic_bp": "80", "heart_rate": "70", "temperature": "36.6",
            "respiratory_rate": "16", "spo2": "98", "vital_signs_weight": "70.0"} | values


def import_rows(client, token, rows, **params):
    return call(client, token, content="record", data=json.dumps(rows), **params)


# --- Tokens -------------------------------------------------------------------------------


def test_a_token_is_32_hex_characters_stored_only_as_its_sha256(nurse):
    token, plain = token_create(user=nurse, name="nightly pull")
    assert len(plain) == 32 and int(plain, 16) >= 0
    assert token.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in json.dumps(list(ApiToken.objects.values()), default=str)
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATED)
    assert event.detail["token"] == "nightly pull" and plain not in json.dumps(event.detail)


def test_the_command_creates_and_revokes(nurse, capsys):
    call_command("api_token", "create", "--user", "nurse", "--name", "tests", "--days", "5")
    plain = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="tests")
    assert token.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert token.expires_at - token.created_at == dt.timedelta(days=5)
    call_command("api_token", "revoke", "--user", "nurse", "--name", "tests")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.get(action=AuditAction.API_TOKEN_REVOKED).source == Source.SYSTEM


def test_profile_page_creates_a_token_once_with_the_password(client, nurse):
    client.force_login(nurse)
    page = reverse("api:tokens")
    wrong = client.post(page, {"name": "R", "days": 30, "password": "not it"})
    assert wrong.status_code == 400 and not ApiToken.objects.exists()
    failed = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert failed.detail.get("prompt") == "api_token"
    nurse.set_password("Right-Password-2026!")
    nurse.save()
    client.force_login(nurse)
    made = client.post(page, {"name": "R", "days": 30, "password": "Right-Password-2026!"})
    assert made.status_code == 200
    token = ApiToken.objects.get()
    shown = made.content.decode()
    plain = shown.split('id="token-value">')[1][:32]
    assert token.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in client.get(page).content.decode()
    client.post(reverse("api:token_revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == nurse


def test_nobody_revokes_someone_elses_token_on_the_page(client, nurse, site):
    other = UserFactory(role=Role.SITE_STAFF, sites=[site])
    token, _plain = token_create(user=other, name="theirs")
    client.force_login(nurse)
    assert client.post(reverse("api:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_bad_tokens_lock_out_the_address(client, settings, token):
    settings.API_BAD_TOKEN_LIMIT = 3
    for guess in ("0" * 32, "short", "F" * 32):
        response = call(client, guess, content="version")
        assert response.status_code == 403
        assert "error" in response.json()
    # Now even a good token is refused from this address, until the cool-off.
    locked = call(client, token, content="version")
    assert locked.status_code == 429 and "error" in locked.json()
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REFUSED).count() == 3



def test_behind_the_proxy_bad_tokens_lock_out_the_sender_not_everyone(client, settings, token):
    """Behind the TLS proxy every request comes from the proxy's address: the bad tokens count
    for the client's address the proxy names (as the rate limits do), so one script guessing
    tokens does not lock out every other client."""
    settings.RATE_LIMIT_CLIENT_FROM_FORWARDED_FOR = True
    settings.API_BAD_TOKEN_LIMIT = 2
    for guess in ("0" * 32, "F" * 32):
        assert client.post(URL, {"token": guess, "content": "version"},
                           HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403
    guesser = client.post(URL, {"token": token, "content": "version"},
                          HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert guesser.status_code == 429
    other = client.post(URL, {"token": token, "content": "version", "format": "json"},
                        HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert other.status_code == 200

def test_bad_tokens_count_under_the_deployments_prefix(client, settings, token):
    """Two deployments sharing one Redis (or two test runs sharing one between them) count bad
    tokens apart, as they count rate limits: the count lives under ``RATE_LIMIT_KEY_PREFIX``."""
    settings.API_BAD_TOKEN_LIMIT = 2
    # Prefixes of this run only: the cache (Redis in CI) outlives the test.
    first, second = (f"edc-rate-{uuid.uuid4().hex}" for _ in range(2))
    settings.RATE_LIMIT_KEY_PREFIX = first
    for guess in ("0" * 32, "F" * 32):
        assert client.post(URL, {"token": guess, "content": "version"}).status_code == 403
    assert client.post(URL, {"token": token, "content": "version"}).status_code == 429
    settings.RATE_LIMIT_KEY_PREFIX = second
    assert client.post(URL, {"token": token, "content": "version"}).status_code == 200

def test_requests_are_limited_per_token_sent_in_the_form_as_redcap_clients_send_it(
        client, settings, token, nurse):
    """Two scripts behind one address (a hospital's NAT) each have their own allowance: the
    limit counts the token in the form body, not only an Authorization header."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": "2/60"}
    other = token_create(user=nurse, name="second script")[1]

    def form(sent: str):  # urlencoded, as PyCap and REDCapR send a call
        return client.post(URL, urlencode({"token": sent, "content": "version"}),
                           content_type="application/x-www-form-urlencoded")

    for _ in range(2):
        assert form(token).status_code == 200
    refused = form(token)
    assert refused.status_code == 429 and "Retry-After" in refused
    assert form(other).status_code == 200
    # The same token in other letter case is the same token.
    assert form(token.lower()).status_code == 429


# --- Errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"content": "nonsense"}, {"content": "record", "format": "pdf"},
    {"content": "record", "type": "eav"}, {"content": "record", "fields[0]": "no_such"},
    {"content": "record", "events": "d99_arm_1"}, {"content": "record", "records": "x" * 200},
    {"content": "record", "dateRangeBegin": "yesterday"}, {"content": "record",
                                                          "rawOrLabel": "both"},
    {"content": "metadata", "forms": "lab"}, {"content": "exportFieldNames", "field": "nope"},
    {"content": "arm", "arms": "2"},
    {"content": "record", "data": "not json"}, {"content": "record", "data": "[1, 2]"},
    {"content": "record", "data": "[]", "overwriteBehavior": "delete"},
    {"content": "record", "action": "delete", "records[0]": "SZ01-001"},
    {"content": "record", "data": "[{}]", "dateFormat": "MDY"},
])
def test_bad_parameters_are_a_4xx_in_redcaps_shape(client, token, params):
    response = call(client, token, **params)
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"error"}


def test_errors_follow_the_return_format(client, token):
    csv_error = client.post(URL, {"token": token, "content": "nonsense", "format": "csv"})
    assert csv_error.content.decode().startswith("ERROR: ")
    xml_error = client.post(URL, {"token": token, "content": "nonsense", "format": "xml"})
    assert "<error>" in xml_error.content.decode()
    assert client.get(URL).status_code == 405
    assert client.post(URL, {"content": "version"}).status_code == 401


# --- Export -------------------------------------------------------------------------------


def test_export_reads_a_fixed_number_of_statements_per_chunk(client, site, nurse, token):
    def statements() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = call(client, token, content="record")
            b"".join(response.streaming_content)
        return len(queries)

    for _ in range(2):
        randomized_subject(site=site, user=nurse)
    statements()  # the token's first use of the minute is stamped on it
    few = statements()
    for _ in range(4):
        randomized_subject(site=site, user=nurse)
    assert statements() == few


def test_log_forms_and_pkpd_repeat(client, subject, nurse, token):
    day1 = subject.visits.get(code="D1")
    crf = services.crf_instance(model=PKPDSample, subject=subject, visit=day1,
                                slot="post_dose_1h")
    services.crf_save(crf=crf, values={"collected": False, "not_collected_reason": "refused"},
                      user=nurse, expected_version=0)
    response = call(client, token, content="record")
    rows = json.loads(b"".join(response.streaming_content))
    pkpd = [r for r in rows if r["redcap_repeat_instrument"] == "pkpd"]
    assert [(r["redcap_event_name"], r["redcap_repeat_instance"]) for r in pkpd] == [
        ("d1_arm_1", "2")]
    assert pkpd[0]["timepoint"] == "post_dose_1h"


# --- Import -------------------------------------------------------------------------------


def test_a_change_to_a_complete_form_needs_a_reason(client, subject, nurse, token):
    row = vitals_row(subject, vital_signs_complete="2")
    assert import_rows(client, token, [row]).json() == {"count": 1}
    changed = import_rows(client, token, [row | {"heart_rate": "72"}])
    assert changed.status_code == 400
    assert "reason" in changed.json()["error"]
    with_reason = import_rows(client, token, [row | {"heart_rate": "72"}],
                              reason="Transcription error")
    assert with_reason.json() == {"count": 1}
    latest = VitalSigns.objects.get(subject=subject).history.latest("history_id")
    assert latest.history_change_reason == "Transcription error"


def test_locked_forms_are_refused(client, subject, nurse, token):
    dm = UserFactory(role=Role.DATA_MANAGER)
    from forms.review.locks import lock_create

    lock_create(scope=LockScope.SUBJECT, target=subject, user=dm, reason="Clean")
    response = import_rows(client, token, [vitals_row(subject)])
    assert response.status_code == 400 and "locked" in response.json()["error"]
    assert not VitalSigns.objects.exists()
    assert Lock.objects.count() == 1


def test_log_entries_are_created_by_instance_and_a_second_load_changes_nothing(
        client, subject, token):
    start = timezone.localdate() - dt.timedelta(days=1)
    row = {"screening_number": subject.screening_number, "redcap_event_name": "logs_arm_1",
           "redcap_repeat_instrument": "concomitant_medication", "redcap_repeat_instance": "1",
           "medication": "Aspirin", "indication": "Secondary prevention", "dose": "100",
           "doses_per_day": "1", "route": "oral",
           "concomitant_medication_start_date": start.isoformat(),
           "concomitant_medication_ongoing": "1"}
    created = import_rows(client, token, [row], returnContent="ids")
    assert created.json() == [subject.screening_number], created.content
    assert import_rows(client, token, [row]).json() == {"count": 0}
    gap = import_rows(client, token, [row | {"redcap_repeat_instance": "3"}])
    assert gap.status_code == 400 and "next new one is 2" in gap.json()["error"]


def test_a_data_manager_imports_at_any_site_and_a_monitor_does_not(client, subject, site):
    dm_token = token_create(user=UserFactory(role=Role.DATA_MANAGER), name="lab")[1]
    assert import_rows(client, dm_token, [vitals_row(subject)]).json() == {"count": 1}
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    refused = import_rows(client, token_create(user=monitor, name="m")[1], [vitals_row(subject)])
    assert refused.status_code == 403


def test_computed_fields_are_not_imported(client, subject, token):
    row = {"screening_number": subject.screening_number, "redcap_event_name": "d1_arm_1",
           "nihss_total": "12"}
    response = import_rows(client, token, [row])
    assert response.status_code == 400 and "nihss_total" in response.json()["error"]


def test_unknown_records_and_fields_are_named(client, subject, token):
    response = import_rows(client, token, [{"screening_number": "XX99-999",
                                            "redcap_event_name": "d2_arm_1", "hr": "1"}])
    message = response.json()["error"]
    assert "XX99-999" in message and "hr" in message


# --- Audit source (ER-07) -------------------------------------------------------------------


def test_history_rows_record_their_source(client, subject, nurse):
    save(VitalSigns, subject, nurse, vitals_values(), visit=subject.visits.get(code="D2"))
    assert VitalSigns.history.get().history_source == Source.SYSTEM
    client.force_login(nurse)
    crf = VitalSigns.objects.get()
    url = reverse("forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])
    data = {name: value for name, value in vitals_values().items()} | {
        "heart_rate": 71, "version": crf.version, "action": "complete", "reason": "Typo",
        "measured_at": crf.measured_at.astimezone(subject.site.zone).strftime(
            "%Y-%m-%dT%H:%M")}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert VitalSigns.history.latest("history_id").history_source == Source.WEB


def vitals_values():
    return {"measured_at": timezone.now() - dt.timedelta(hours=1), "systolic_bp": 120,
            "diastolic_bp": 80, "heart_rate": 70, "temperature": Decimal("36.6"),
            "respiratory_rate": 16, "spo2": 98, "weight": Decimal("70.0")}



@pytest.mark.parametrize("data", ["a,b\n\x00,1\n", 'a,"b\n', "screening_number\n" + "x" * 10])
def test_unreadable_csv_is_a_400(client, token, data):
    response = call(client, token, content="record", data=data, format="csv",
                    returnFormat="json")
    assert 400 <= response.status_code < 500 and "error" in response.json()


def test_an_administrator_revokes_any_token_in_django_admin(client, nurse):
    token, _plain = token_create(user=nurse, name="lost laptop")
    admin_user = UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    changelist = reverse("admin:api_apitoken_changelist")
    assert "lost laptop" in client.get(changelist).content.decode()
    client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_by == admin_user
