"""Accounts (21 CFR 11.100, 11.300; issue 6 item 9): lockout after failed logins, Argon2, the
password policy, logout after inactivity, usernames never reused, administrators kept out of
clinical data."""

import datetime as dt

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from edc import services as edc_services
from edc import settings as edc_settings
from edc.history import system_writes
from edc.models import User
from edc.roles import Role
from forms.models import VitalSigns
from tests.factories import PASSWORD, UserFactory, randomized_subject

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def post_login(client, username, password=PASSWORD, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def fail_logins(client, username, times):
    return [post_login(client, username, "wrong-password-123") for _ in range(times)]


def is_logged_in(client) -> bool:
    return client.get(reverse("home")).status_code == 200


# --- Lockout -----------------------------------------------------------------------------------


def test_settings_lock_after_five_failures_for_thirty_minutes_by_username(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == dt.timedelta(minutes=30)
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username"]
    assert settings.AUTHENTICATION_BACKENDS[0] == "edc.accounts.LockoutBackend"


def test_four_failures_still_let_the_right_password_in(client, nurse):
    for response in fail_logins(client, "nurse", 4):
        assert response.status_code == 200
    assert post_login(client, "nurse").status_code == 302
    assert is_logged_in(client)


def test_five_failures_lock_the_account_even_for_the_right_password(client, nurse):
    *before, fifth = fail_logins(client, "nurse", 5)
    assert {r.status_code for r in before} == {200}
    assert fifth.status_code == 429
    sixth = post_login(client, "nurse")
    html = sixth.content.decode()
    assert sixth.status_code == 429
    assert ("Account locked after 5 failed attempts; ask an administrator or wait 30 minutes."
            in html)
    assert not is_logged_in(client)


def test_a_colleague_at_the_same_workstation_can_still_log_in(client, site, nurse):
    UserFactory(username="colleague", sites=[site])
    fail_logins(client, "nurse", 5)
    response = post_login(client, "colleague", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    assert is_logged_in(client)


def test_the_lock_holds_from_any_address(client, nurse):
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"):
        post_login(client, "nurse", "wrong-password-123", REMOTE_ADDR=address)
    assert post_login(client, "nurse", REMOTE_ADDR="10.0.0.6").status_code == 429


def test_the_lock_expires_after_the_cool_off(client, nurse):
    with time_machine.travel(START, tick=False) as traveller:
        fail_logins(client, "nurse", 5)
        traveller.shift(dt.timedelta(minutes=29))
        assert post_login(client, "nurse").status_code == 429
        # The refused attempt started the wait again.
        traveller.shift(dt.timedelta(minutes=29))
        assert post_login(client, "nurse").status_code == 429
        traveller.shift(dt.timedelta(minutes=31))
        assert post_login(client, "nurse").status_code == 302


def test_the_lock_is_configurable_from_the_environment():
    from tests.test_settings import run_python

    result = run_python(
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds())",
        LOGIN_FAILURE_LIMIT="3", LOGIN_LOCKOUT_MINUTES="15",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "900.0"]


def test_an_administrator_unlocks_an_account(client, nurse):
    fail_logins(client, "nurse", 5)
    admin_user = UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:edc_user_changelist"),
        {"action": "unlock", "_selected_action": [nurse.pk]},
        follow=True,
    )
    assert "1 account unlocked." in response.content.decode()
    client.logout()
    assert post_login(client, "nurse").status_code == 302


def test_a_locked_account_cannot_sign_either(client, nurse):
    fail_logins(client, "nurse", 5)
    assert edc_services.password_confirms(nurse, PASSWORD) is False


def test_re_authentication_without_a_request_still_works(nurse):
    assert edc_services.password_confirms(nurse, PASSWORD) is True
    assert edc_services.password_confirms(nurse, "wrong-password-123") is False


# --- Password hashing --------------------------------------------------------------------------


@pytest.fixture
def production_hashers(settings):
    settings.PASSWORD_HASHERS = edc_settings.PASSWORD_HASHERS


def test_a_new_password_is_hashed_with_argon2(production_hashers, db):
    user = UserFactory()
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert user.check_password(PASSWORD)


def test_an_old_pbkdf2_hash_still_works_and_is_upgraded_at_login(production_hashers, client, db):
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(
        password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )
    assert post_login(client, user.username).status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$")


# --- Password policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Short-pw-9", "password_too_short"),
        ("password1234", "password_too_common"),
        ("493817265091", "password_entirely_numeric"),
        ("wang.fang-Winter-2026", "password_contains_username"),
        ("WANG.FANG.2026", "password_too_similar"),
    ],
)
def test_weak_passwords_are_refused(db, password, code):
    user = User(username="wang.fang", first_name="Fang", last_name="Wang")
    with pytest.raises(ValidationError) as caught:
        password_validation.validate_password(password, user)
    assert code in {error.code for error in caught.value.error_list}


def test_a_strong_password_is_accepted(db):
    user = User(username="wang.fang", first_name="Fang", last_name="Wang")
    password_validation.validate_password("river-lantern-quietly-47", user)


def test_the_admin_refuses_a_weak_password_for_a_new_account(client, db):
    client.force_login(UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True))
    response = client.post(reverse("admin:edc_user_add"), {
        "username": "li.na", "password1": "li.na-2026-ok", "password2": "li.na-2026-ok",
        "usable_password": "true", "role": Role.SITE_STAFF,
    })
    assert response.status_code == 200
    assert "must not contain the username" in response.content.decode()
    assert not User.objects.filter(username="li.na").exists()


# --- Logout after inactivity -------------------------------------------------------------------


def test_an_idle_session_is_logged_out_and_an_active_one_kept(client, nurse, settings):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    idle = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(START, tick=False) as traveller:
        assert post_login(client, "nurse").status_code == 302
        for _ in range(3):  # an hour and a half of work, a click every 25 minutes
            traveller.shift(idle - dt.timedelta(minutes=5))
            assert is_logged_in(client)
        traveller.shift(idle + dt.timedelta(seconds=1))
        response = client.get(reverse("home"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


# --- Usernames never reused --------------------------------------------------------------------


def test_a_deactivated_users_username_cannot_be_given_again(nurse):
    nurse.is_active = False
    with system_writes():  # test data written directly
        nurse.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="nurse", password="another-person-2026")
    assert User.objects.get(username="nurse").pk == nurse.pk


def test_the_admin_refuses_a_username_already_used_in_any_case(client, nurse):
    nurse.is_active = False
    with system_writes():  # test data written directly
        nurse.save()
    client.force_login(UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True))
    response = client.post(reverse("admin:edc_user_add"), {
        "username": "Nurse", "password1": "river-lantern-quietly-47",
        "password2": "river-lantern-quietly-47", "usable_password": "true",
        "role": Role.SITE_STAFF,
    })
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 2


def test_the_admin_can_neither_delete_nor_rename_a_user(client, nurse):
    client.force_login(UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True))
    assert client.get(reverse("admin:edc_user_delete", args=[nurse.pk])).status_code == 403
    changelist = client.get(reverse("admin:edc_user_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    form = client.get(reverse("admin:edc_user_change", args=[nurse.pk])).context["adminform"]
    assert "username" in form.readonly_fields


# --- Administrators and clinical data ------------------------------------------------------


@pytest.fixture
def administrator(db):
    return UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True)


def test_an_administrator_cannot_enter_clinical_data(client, site, nurse, administrator):
    subject = randomized_subject(site=site, user=nurse)
    d2 = subject.visits.get(code="D2")
    client.force_login(administrator)
    urls = [
        reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]),
        reverse("forms:log_new", args=[subject.pk, "concomitant_medication"]),
        reverse("forms:visit_update", args=[subject.pk, d2.pk]),
        reverse("visits:consent", args=[subject.pk]),
        reverse("visits:unblind", args=[subject.pk]),
    ]
    vitals = {"version": 0, "action": "complete", "measured_at":
              timezone.now().strftime("%Y-%m-%dT%H:%M"), "systolic_bp": "140",
              "diastolic_bp": "85", "heart_rate": "78", "medication": "Aspirin",
              "reason": "x", "password": PASSWORD}
    for url in urls:
        assert client.post(url, vitals).status_code == 403, url
    assert not VitalSigns.objects.exists()


CONFIGURATION_MODELS = {
    "edc.site", "edc.user", "edc.jobrun", "auth.group", "forms.labreferencerange",
    "axes.accessattempt", "axes.accesslog", "axes.accessfailurelog",
}


def test_django_admin_holds_configuration_and_read_only_records_only(rf, administrator):
    request = rf.get("/admin/")
    request.user = administrator
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        assert label.split(".")[0] not in {"forms", "visits"} or label in CONFIGURATION_MODELS
        if label not in CONFIGURATION_MODELS:  # e.g. the audit trail: shown, never edited
            assert not model_admin.has_add_permission(request), label
            assert not model_admin.has_change_permission(request), label
            assert not model_admin.has_delete_permission(request), label
