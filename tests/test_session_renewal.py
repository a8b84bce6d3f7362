"""The idle log-off renews a session at most once a minute (issue 15, item 1: a save's request
no longer writes its session every time), and an idle session is still logged off on time."""

import datetime as dt

import pytest
import time_machine
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from edc.sessions import SessionStore
from tests.factories import PASSWORD

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def sign_in(client) -> None:
    response = client.post(reverse("login"), {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 302


def session_writes(captured) -> int:
    return sum(1 for q in captured.captured_queries
               if q["sql"].startswith(('UPDATE "django_session"', 'INSERT INTO "django_session"')))


def expiry(client) -> dt.datetime:
    return Session.objects.get(session_key=client.session.session_key).expire_date


def test_a_session_is_written_at_most_once_a_minute(client, nurse, settings):
    assert settings.SESSION_RENEW_SECONDS == 60
    age = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(START, tick=False) as traveller:
        sign_in(client)
        assert expiry(client) == START + age
        traveller.shift(dt.timedelta(seconds=59))
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("home")).status_code == 200
        assert session_writes(captured) == 0
        assert expiry(client) == START + age
        traveller.shift(dt.timedelta(seconds=1))  # the renewal is a minute old: due
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("home")).status_code == 200
        assert session_writes(captured) == 1
        assert expiry(client) == START + dt.timedelta(seconds=60) + age


def test_an_idle_session_is_logged_off_no_later_than_the_idle_timeout(client, nurse, settings):
    """Clicks within a minute of the last renewal do not extend the session: it ends at most
    a minute early, never late, counted from the last click."""
    idle = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(START, tick=False) as traveller:
        sign_in(client)
        traveller.shift(dt.timedelta(seconds=30))
        assert client.get(reverse("home")).status_code == 200  # last click, not renewed
        traveller.shift(idle - dt.timedelta(seconds=30))  # idle since the sign-in's renewal
        response = client.get(reverse("home"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_a_visitor_not_signed_in_gets_no_session_row(client, db):
    assert client.get(reverse("login")).status_code == 200
    assert not Session.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_renewal_outside_a_transaction_is_one_statement():
    """The session is written after the request's transaction: a single UPDATE, atomic by
    itself, instead of BEGIN, UPDATE, COMMIT. A session deleted meanwhile (logged out in
    another tab) is not written back."""
    store = SessionStore()
    store["user"] = "someone"
    store.create()
    store["seen"] = 1
    with CaptureQueriesContext(connection) as captured:
        store.save()
    assert [q["sql"].split(" ")[0] for q in captured.captured_queries] == ["UPDATE"]
    assert SessionStore(store.session_key)["seen"] == 1
    Session.objects.filter(session_key=store.session_key).delete()
    with pytest.raises(UpdateError):
        store.save()
