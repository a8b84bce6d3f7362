"""Every password prompt feeds the same lockout and leaves an audit event, outside any
transaction that may roll back (issue 14 item 7; DESIGN.md "Re-authentication counts").

These tests run without the test-case transaction (``transaction=True``) so that each request
commits or rolls back exactly as in production (``ATOMIC_REQUESTS``); run them on SQLite and on
PostgreSQL (``DATABASE_URL=postgres://...``).
"""

import pytest
from axes.models import AccessAttempt
from django.db import transaction
from django.db.models import Sum
from django.db.transaction import TransactionManagementError
from django.test import Client
from django.urls import reverse

from edc.models import AuditAction, AuditEvent
from edc.roles import Role
from edc.services import password_confirms
from forms.models.signoff import Signature
from forms.review import signatures
from tests.factories import PASSWORD, UserFactory, randomized_subject
from visits.models import Unblinding

WRONG = "wrong-password-123"


@pytest.fixture
def investigator(site):
    return UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def sign(client, subject, password):
    return client.post(reverse("forms:sign", args=[subject.pk]), {"password": password})


def unblind(client, subject, password):
    return client.post(reverse("visits:unblind", args=[subject.pk]),
                       {"reason": "Anaphylaxis, choosing treatment", "password": password})


PROMPTS = {"signature": (sign, Signature), "unblinding": (unblind, Unblinding)}


def failures(username: str) -> int:
    return (AccessAttempt.objects.filter(username=username)
            .aggregate(n=Sum("failures_since_start"))["n"] or 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_wrong_passwords_at_a_prompt_lock_the_account_and_are_audited(
    client, settings, subject, investigator, prompt
):
    post, record_model = PROMPTS[prompt]
    limit = settings.AXES_FAILURE_LIMIT
    other_session = Client()
    other_session.force_login(investigator)
    client.force_login(investigator)
    for attempt in range(1, limit):
        response = post(client, subject, WRONG)
        assert response.status_code == 400
        assert "password is not correct" in response.content.decode()
        assert failures("investigator") == attempt
    locked = post(client, subject, WRONG)
    assert locked.status_code == 429
    assert "Account locked" in locked.content.decode()

    failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED)
    assert failed.count() == limit
    assert {(e.user, e.username_attempted, e.detail["prompt"]) for e in failed} == {
        (investigator, "investigator", prompt)}
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_LOCKED,
                                     user=investigator).exists()

    # Locked: the session has ended, the login page refuses the right password ...
    assert client.get(reverse("home")).status_code == 302
    login = client.post(reverse("login"), {"username": "investigator", "password": PASSWORD})
    assert login.status_code == 429
    assert client.get(reverse("home")).status_code == 302
    # ... and so does the prompt, in the user's other session.
    assert post(other_session, subject, PASSWORD).status_code == 429
    assert not record_model.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wrong_password_at_the_signature_service_counts_without_a_request(
    settings, subject, investigator
):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        with pytest.raises(signatures.ValidationError, match="password is not correct"):
            signatures.casebook_sign(subject=subject, user=investigator, password=WRONG)
    assert failures("investigator") == settings.AXES_FAILURE_LIMIT
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED,
                                     detail__prompt="signature").count() == 5
    with pytest.raises(signatures.ValidationError, match="password is not correct"):
        signatures.casebook_sign(subject=subject, user=investigator, password=PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_the_right_password_at_a_prompt_resets_the_count_like_a_login(
    client, settings, subject, investigator
):
    client.force_login(investigator)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert unblind(client, subject, WRONG).status_code == 400
    assert unblind(client, subject, PASSWORD).status_code == 200
    assert failures("investigator") == 0
    assert Unblinding.objects.count() == 1


def test_a_password_is_never_checked_inside_a_transaction(investigator):
    with pytest.raises(TransactionManagementError), transaction.atomic():
        password_confirms(investigator, WRONG)
