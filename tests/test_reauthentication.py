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


def sign(client, subject, password, username="investigator"):
    return client.post(reverse("forms:sign", args=[subject.pk]),
                       {"username": username, "password": password})


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
            signatures.casebook_sign(subject=subject, user=investigator,
                                     username="investigator", password=WRONG)
    assert failures("investigator") == settings.AXES_FAILURE_LIMIT
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED,
                                     detail__prompt="signature").count() == 5
    with pytest.raises(signatures.ValidationError, match="password is not correct"):
        signatures.casebook_sign(subject=subject, user=investigator,
                                 username="investigator", password=PASSWORD)


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


# --- Signatures: user ID and password at the first signing of a session (issue 19 item 2) -----


@pytest.fixture
def signable(site, nurse):
    """A subject randomized ten days ago with Day 2 and Day 8 complete: (subject, D2, D8)."""
    import datetime as dt

    from django.utils import timezone

    from tests.forms.test_signoff import complete_visit

    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=10))
    return subject, complete_visit(subject, nurse), complete_visit(subject, nurse, code="D8")


def sign_visit(client, subject, visit, **data):
    return client.post(reverse("forms:sign_visit", args=[subject.pk, visit.pk]), data)


@pytest.mark.django_db(transaction=True)
def test_the_first_signature_of_a_session_needs_the_user_id_and_later_ones_the_password(
    client, investigator, signable
):
    """21 CFR 11.200(a)(1): both components at the first signing of a session, at least the
    password at the next ones; a new session asks for both again."""
    subject, d2, d8 = signable
    client.force_login(investigator)
    page = client.get(reverse("forms:sign_visit", args=[subject.pk, d2.pk])).content.decode()
    assert 'name="username"' in page and "first signature in this session" in page
    assert sign_visit(client, subject, d2, password=PASSWORD).status_code == 400
    assert sign_visit(client, subject, d2, username="Investigator",
                      password=PASSWORD).status_code == 302
    page = client.get(reverse("forms:sign_visit", args=[subject.pk, d8.pk])).content.decode()
    assert 'name="username"' not in page
    assert sign_visit(client, subject, d8, password=PASSWORD).status_code == 302
    assert Signature.objects.filter(signer=investigator).count() == 2

    client.logout()
    client.force_login(investigator)
    assert sign_visit(client, subject, d2, password=PASSWORD).status_code == 400
    assert sign_visit(client, subject, d2, username="investigator",
                      password=PASSWORD).status_code == 302
    assert Signature.objects.filter(signer=investigator).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_wrong_user_id_at_a_signature_counts_towards_the_lockout_and_is_audited(
    client, settings, subject, investigator, nurse
):
    client.force_login(investigator)
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(1, limit):
        response = sign(client, subject, PASSWORD, username="nurse")
        assert response.status_code == 400
        assert "user ID or the password is not correct" in response.content.decode()
        assert failures("investigator") == attempt
    assert failures("nurse") == 0
    failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("pk").first()
    assert (failed.user, failed.username_attempted, failed.detail) == (
        investigator, "investigator", {"prompt": "signature", "user_id_typed": "nurse"})
    # The attempt that reaches the limit locks the account, whatever was wrong.
    assert sign(client, subject, WRONG).status_code == 429
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_LOCKED,
                                     user=investigator).exists()
    assert not Signature.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_signature_waits_for_a_save_in_progress_and_fingerprints_its_result(
    nurse, investigator, signable
):
    """Signing locks the forms it covers (``FOR UPDATE``): a save that read its form before
    the signature finishes first, and the signature covers what it wrote. Without the lock
    the signature would fingerprint the old version, and the save, having found no signature,
    would not break it."""
    import threading

    from django.db import connection

    from forms.entry import services
    from forms.models import VitalSigns

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: no save is in progress while signing")
    subject, d2, _d8 = signable
    started, release, outcome = threading.Event(), threading.Event(), {}

    def save_in_progress():
        try:
            with transaction.atomic():
                crf = services.crf_instance(model=VitalSigns, subject=subject, visit=d2,
                                            for_update=True)
                started.set()
                release.wait(10)
                services.crf_save(crf=crf, values={"heart_rate": 71}, user=nurse,
                                  expected_version=crf.version, reason="Source says 71",
                                  complete=True, not_done_reason="not_done", locked=True)
        finally:
            connection.close()

    def signing():
        try:
            outcome["signature"] = signatures.casebook_sign(
                subject=subject, visit=d2, user=investigator, username="investigator",
                password=PASSWORD)
        finally:
            connection.close()

    saver = threading.Thread(target=save_in_progress)
    saver.start()
    assert started.wait(10)
    signer = threading.Thread(target=signing)
    signer.start()
    signer.join(1.5)
    waited = signer.is_alive()
    release.set()
    saver.join(20)
    signer.join(20)
    assert waited, "the signature did not wait for the save holding the form"
    signature = outcome["signature"]
    signature.refresh_from_db()
    assert not signature.is_broken
    assert signature.fingerprint == signatures.fingerprint(signatures.signed_records(subject, d2))
    assert VitalSigns.objects.get(visit=d2).heart_rate == 71


@pytest.mark.django_db(transaction=True)
def test_a_save_that_waited_for_a_signature_in_progress_breaks_it(nurse, investigator, signable):
    """The other order: a signature in progress holds the subject (``FOR UPDATE``); a save of
    the data it covers waits, then reads its guards afresh, finds the signature and breaks
    it. Read in the statement that waited, the guards would predate the signature: the
    change would leave it valid over data it never saw."""
    import threading

    from django.db import connection

    from forms.entry import services
    from forms.models import VitalSigns

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: no save runs while signing")
    subject, d2, _d8 = signable
    signed, release, outcome = threading.Event(), threading.Event(), {}

    def signing():
        try:
            with transaction.atomic():
                outcome["signature"] = signatures._signature_record(
                    subject=subject, visit=d2, user=investigator)
                signed.set()
                release.wait(10)
        finally:
            connection.close()

    def saving():
        try:
            with transaction.atomic():
                crf = services.crf_instance(model=VitalSigns, subject=subject, visit=d2,
                                            for_update=True)
                outcome["saved"] = services.crf_save(
                    crf=crf, values={"heart_rate": 72}, user=nurse,
                    expected_version=crf.version, reason="Source says 72", complete=True,
                    not_done_reason="not_done", locked=True)
        finally:
            connection.close()

    signer = threading.Thread(target=signing)
    signer.start()
    assert signed.wait(10)
    saver = threading.Thread(target=saving)
    saver.start()
    saver.join(1.5)
    waited = saver.is_alive()
    release.set()
    signer.join(20)
    saver.join(20)
    assert waited, "the save did not wait for the signature in progress"
    assert outcome["saved"].heart_rate == 72
    signature = outcome["signature"]
    signature.refresh_from_db()
    assert signature.is_broken, "the save changed signed data and left the signature valid"
