"""Rate limits on the login page, the password prompts and the API (issue 19 item 7): a
request over the limit is answered 429 with a message and Retry-After, before any password is
checked, and writes nothing."""

import datetime as dt

import pytest
import time_machine
from axes.models import AccessAttempt
from django.urls import reverse

from edc.models import AuditEvent
from edc.ratelimit import RateLimited, rate_limit_hit
from edc.roles import Role
from tests.factories import PASSWORD, UserFactory, randomized_subject

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def tight(settings):
    settings.RATE_LIMITS = {"login": "3/300", "reauthentication": "3/300", "api": "2/60"}


def login(client, username, password=PASSWORD, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_the_window_counts_then_refuses_with_the_seconds_left(tight):
    for _ in range(3):
        rate_limit_hit(scope="login", key="10.0.0.1", now=1_000_000_010.0)
    with pytest.raises(RateLimited) as refused:
        rate_limit_hit(scope="login", key="10.0.0.1", now=1_000_000_010.5)
    # Windows of 300 s start at multiples of 300: 1_000_000_200 is the next one.
    assert refused.value.retry_after == 190
    rate_limit_hit(scope="login", key="10.0.0.2", now=1_000_000_010.5)  # another address
    rate_limit_hit(scope="login", key="10.0.0.1", now=1_000_000_200.0)  # the next window


def test_no_limit_when_the_setting_is_empty(settings):
    settings.RATE_LIMITS = {"login": ""}
    for _ in range(1000):
        rate_limit_hit(scope="login", key="10.0.0.1")


def test_logins_from_one_address_are_limited_and_answered_429(client, tight, nurse):
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            assert login(client, "nurse", "wrong-password-123").status_code == 200
        refused = login(client, "nurse", REMOTE_ADDR="127.0.0.1")
        assert refused.status_code == 429
        assert refused["Retry-After"] == "300"
        assert "Too many login attempts from this address. Try again in 300 seconds." in (
            refused.content.decode())
        # Refused before the password was checked: not a failed login, not counted.
        assert AccessAttempt.objects.get(username="nurse").failures_since_start == 3
        assert AuditEvent.objects.filter(action="login_failed").count() == 3
        assert not AuditEvent.objects.filter(action="login").exists()
        # A colleague at another address is not held up.
        assert login(client, "nurse", REMOTE_ADDR="10.9.9.9").status_code == 302
    with time_machine.travel(START + dt.timedelta(seconds=300), tick=False):
        client.logout()
        assert login(client, "nurse").status_code == 302


def test_behind_the_proxy_the_address_the_proxy_saw_counts(client, tight, settings, nurse):
    settings.RATE_LIMIT_CLIENT_FROM_FORWARDED_FOR = True
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        login(client, "nurse", "wrong-password-123",
              HTTP_X_FORWARDED_FOR=f"{forged}, 10.0.0.7")
    assert login(client, "nurse", HTTP_X_FORWARDED_FOR="4.4.4.4, 10.0.0.7").status_code == 429
    assert login(client, "nurse", HTTP_X_FORWARDED_FOR="10.0.0.8").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_password_prompts_are_limited_per_account_before_the_password_is_checked(
    client, tight, site, nurse
):
    from visits.models import Unblinding

    investigator = UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])
    subject = randomized_subject(site=site, user=nurse)
    url = reverse("visits:unblind", args=[subject.pk])
    client.force_login(investigator)
    for _ in range(3):
        response = client.post(url, {"reason": "Anaphylaxis", "password": "wrong-password-1"})
        assert response.status_code == 400
    refused = client.post(url, {"reason": "Anaphylaxis", "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many password prompts" in refused.content.decode()
    assert not Unblinding.objects.exists()
    assert AccessAttempt.objects.get(username="investigator").failures_since_start == 3


def test_api_requests_are_limited_per_token_with_a_json_answer(client, tight):
    for _ in range(2):
        assert client.get("/api/v1/subjects/", HTTP_AUTHORIZATION="Token aaa").status_code != 429
    refused = client.get("/api/v1/subjects/", HTTP_AUTHORIZATION="Token aaa")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    body = refused.json()
    assert body["error"] == "rate_limited" and body["retry_after"] == int(refused["Retry-After"])
    assert "Too many API requests." in body["detail"]
    assert client.get("/api/v1/subjects/", HTTP_AUTHORIZATION="Token bbb").status_code != 429
