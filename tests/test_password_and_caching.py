"""Users change their own password; the policy refuses passwords close to the person's name
wherever a password is set; no page shown to a signed-in user is kept in a cache (issue 14
item 9)."""

import pytest
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from edc.models import AuditAction, AuditEvent, ExportRun, ExportStatus, User
from edc.roles import Role
from exports import package
from tests.factories import PASSWORD, UserFactory, randomized_subject

NEW_PASSWORD = "amber-harbour-quietly-58"


@pytest.fixture
def zhang_wei(site):
    return UserFactory(username="zhang.wei", first_name="Wei", last_name="Zhang",
                       email="zw@hospital.example", role=Role.SITE_STAFF, sites=[site])


@pytest.fixture
def administrator(db):
    return UserFactory(username="admin", role=Role.ADMINISTRATOR, is_staff=True,
                       is_superuser=True)


# --- The password policy sees the person's name -------------------------------------------


@pytest.mark.parametrize("password", [
    "zhangwei2026!!", "ZhangWei-2026", "weizhang#2026!", "Zhang.Wei.Stroke.Trial",
])
def test_a_password_close_to_the_persons_name_is_refused(db, password):
    user = User(username="lw01", first_name="Wei", last_name="Zhang", email="zw@hospital.example")
    with pytest.raises(ValidationError) as caught:
        password_validation.validate_password(password, user)
    assert "password_too_similar" in {error.code for error in caught.value.error_list}


@pytest.mark.parametrize("password", ["river-lantern-quietly-47", "zhang-river-47-lantern"])
def test_a_password_far_from_the_name_is_accepted(db, password):
    user = User(username="zhang.wei", first_name="Wei", last_name="Zhang",
                email="zw@hospital.example")
    password_validation.validate_password(password, user)


def test_the_admin_add_form_refuses_a_password_close_to_the_new_users_name(
    client, administrator
):
    client.force_login(administrator)
    response = client.post(reverse("admin:edc_user_add"), {
        "username": "lw01", "first_name": "Wei", "last_name": "Zhang",
        "email": "lw01@hospital.example", "password1": "zhangwei2026!!",
        "password2": "zhangwei2026!!", "usable_password": "true", "role": Role.SITE_STAFF,
    })
    assert response.status_code == 200
    assert "too similar to your name" in response.content.decode()
    assert not User.objects.filter(username="lw01").exists()


def test_the_admin_password_form_refuses_a_password_close_to_the_users_name(
    client, administrator, zhang_wei
):
    client.force_login(administrator)
    url = reverse("admin:auth_user_password_change", args=[zhang_wei.pk])
    response = client.post(url, {"password1": "zhangwei2026!!", "password2": "zhangwei2026!!",
                                 "usable_password": "true"})
    assert response.status_code == 200
    assert "too similar to your name" in response.content.decode()
    zhang_wei.refresh_from_db()
    assert zhang_wei.check_password(PASSWORD)


def test_a_password_set_by_an_administrator_is_audited(client, administrator, zhang_wei):
    client.force_login(administrator)
    url = reverse("admin:auth_user_password_change", args=[zhang_wei.pk])
    response = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
                                 "usable_password": "true"})
    assert response.status_code == 302
    zhang_wei.refresh_from_db()
    assert zhang_wei.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action=AuditAction.PASSWORD_CHANGED)
    assert (event.user, event.object_id, event.detail) == (
        administrator, str(zhang_wei.pk), {"username": "zhang.wei", "own": False})


# --- Changing one's own password ------------------------------------------------------------


def change(client, old, new, confirm=None):
    return client.post(reverse("password_change"), {
        "old_password": old, "new_password1": new, "new_password2": confirm or new})


def test_every_user_reaches_the_password_page_from_the_header(client, zhang_wei):
    client.force_login(zhang_wei)
    home = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("password_change")}"' in home
    assert client.get(reverse("password_change")).status_code == 200


def test_a_user_changes_their_own_password_and_it_is_audited(client, zhang_wei):
    other_session = Client()
    other_session.force_login(zhang_wei)
    client.force_login(zhang_wei)
    response = change(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    zhang_wei.refresh_from_db()
    assert zhang_wei.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action=AuditAction.PASSWORD_CHANGED)
    assert (event.user, event.object_id) == (zhang_wei, str(zhang_wei.pk))
    assert NEW_PASSWORD not in str(event.detail) and PASSWORD not in str(event.detail)
    # This session goes on, the other one has ended; the old password no longer logs in.
    assert client.get(reverse("home")).status_code == 200
    assert other_session.get(reverse("home")).status_code == 302
    client.logout()
    assert client.post(reverse("login"), {"username": "zhang.wei",
                                          "password": PASSWORD}).status_code == 200
    assert client.post(reverse("login"), {"username": "zhang.wei",
                                          "password": NEW_PASSWORD}).status_code == 302


def test_the_new_password_meets_the_policy_including_the_name(client, zhang_wei):
    client.force_login(zhang_wei)
    response = change(client, PASSWORD, "zhangwei2026!!")
    assert response.status_code == 400
    assert "too similar to your name" in response.content.decode()
    assert change(client, PASSWORD, NEW_PASSWORD, "something-else-2026").status_code == 400
    zhang_wei.refresh_from_db()
    assert zhang_wei.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_wrong_current_password_counts_towards_the_lockout(client, settings, site):
    user = UserFactory(username="li.na", role=Role.SITE_STAFF, sites=[site])
    client.force_login(user)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = change(client, "wrong-password-123", NEW_PASSWORD)
        assert response.status_code == 400
        assert "old password was entered incorrectly" in response.content.decode()
    assert change(client, "wrong-password-123", NEW_PASSWORD).status_code == 429
    failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED,
                                       detail__prompt="password_change")
    assert failed.count() == settings.AXES_FAILURE_LIMIT
    assert client.post(reverse("login"), {"username": "li.na",
                                          "password": PASSWORD}).status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# --- Cache-Control: no-store ------------------------------------------------------------------


def test_every_response_to_a_signed_in_user_is_no_store(
    client, settings, tmp_path, site, nurse, administrator
):
    settings.EXPORT_ROOT = tmp_path
    investigator = UserFactory(role=Role.INVESTIGATOR, sites=[site])
    data_manager = UserFactory(role=Role.DATA_MANAGER)
    subject = randomized_subject(site=site, user=nurse)
    run = ExportRun.objects.create(requested_by=data_manager, formats=["csv"],
                                   profile="blinded", status=ExportStatus.DONE)
    package.export_path(run.pk).parent.mkdir(parents=True, exist_ok=True)
    package.export_path(run.pk).write_bytes(b"PK\x05\x06" + b"\0" * 18)
    pages = {
        nurse: [reverse("home"), reverse("visits:screening_log"), reverse("forms:matrix"),
                reverse("forms:casebook", args=[subject.pk]), reverse("password_change"),
                reverse("notifications")],
        investigator: [reverse("forms:casebook_pdf", args=[subject.pk]),
                       reverse("forms:audit_trail")],
        data_manager: [reverse("dashboard"), reverse("exports:exports"),
                       reverse("exports:download", args=[run.pk]), reverse("forms:query_list"),
                       "/no-such-page/"],
        administrator: [reverse("admin:index"), reverse("admin:edc_user_changelist")],
    }
    for user, urls in pages.items():
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code in {200, 404}, url
            assert "no-store" in response.get("Cache-Control", ""), url
