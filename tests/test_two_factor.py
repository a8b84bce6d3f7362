"""Two-factor login (issue 19 item 1): a TOTP code after the password for the roles
TWO_FACTOR_ROLES names (every role when DEBUG is off), enrolment with a QR code and recovery
codes, an administrator's audited reset. The rest of the suite runs with the demo's default
(no second factor); ``verified_login`` in tests/conftest.py logs a test in past it."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from axes.models import AccessAttempt
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from edc.models import AuditEvent
from edc.roles import Role
from tests.factories import PASSWORD, UserFactory

ROOT = Path(__file__).resolve().parent.parent
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def code(device: TOTPDevice) -> str:
    return TOTP(device.bin_key, step=device.step, t0=device.t0, digits=device.digits,
                drift=device.drift).token().__str__().zfill(device.digits)


def login(client, username):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD})


@pytest.fixture
def everyone(settings):
    settings.TWO_FACTOR_ROLES = ["all"]


@pytest.mark.parametrize(("debug", "roles"), [("0", "['all']"), ("1", "[]")])
def test_every_role_needs_it_in_production_and_none_in_the_demo(debug, roles):
    environment = {**os.environ, "DEBUG": debug, "SECRET_KEY": "x" * 50,
                   "DJANGO_SETTINGS_MODULE": "edc.settings"}
    environment.pop("TWO_FACTOR_ROLES", None)
    result = subprocess.run([sys.executable, "-c", "from django.conf import settings; "
                             "print(settings.TWO_FACTOR_ROLES)"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == roles


def test_enrolment_then_a_login_with_a_code(client, everyone, nurse):
    with time_machine.travel(START, tick=False):
        assert login(client, "nurse").status_code == 302
        home = client.get(reverse("home"))
        assert home.status_code == 302 and home.url.startswith(reverse("two_factor_enrol"))
        page = client.get(reverse("two_factor_enrol")).content.decode()
        assert "<svg" in page and 'id="totp-secret"' in page
        device = TOTPDevice.objects.get(user=nurse, confirmed=False)
        assert client.post(reverse("two_factor_enrol"), {"code": "000000"}).status_code == 400
        done = client.post(reverse("two_factor_enrol"), {"code": code(device)})
        assert done.status_code == 200
        codes = done.context["codes"]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="two_factor_enrolled", user=nurse).exists()

    client.logout()
    with time_machine.travel(START + dt.timedelta(minutes=5), tick=False):
        device.refresh_from_db()
        assert login(client, "nurse").status_code == 302
        assert client.get(reverse("home")).url.startswith(reverse("two_factor_verify"))
        assert client.post(reverse("two_factor_verify"), {"code": "123456"}).status_code == 400
        failed = AuditEvent.objects.filter(action="login_failed").get()
        assert (failed.user, failed.detail) == (nurse, {"prompt": "two_factor"})
        assert AccessAttempt.objects.get(username="nurse").failures_since_start == 1
    with time_machine.travel(START + dt.timedelta(minutes=6), tick=False):
        assert client.post(reverse("two_factor_verify"), {"code": code(device)}).status_code == 302
        assert client.get(reverse("home")).status_code == 200

    # A recovery code replaces the app once.
    client.logout()
    login(client, "nurse")
    assert client.post(reverse("two_factor_verify"), {"code": codes[0]}).status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.logout()
    login(client, "nurse")
    with time_machine.travel(START + dt.timedelta(minutes=20), tick=False):
        assert client.post(reverse("two_factor_verify"), {"code": codes[0]}).status_code == 400


def test_required_per_role(client, settings, site, nurse):
    settings.TWO_FACTOR_ROLES = [Role.INVESTIGATOR]
    UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])
    login(client, "nurse")
    assert client.get(reverse("home")).status_code == 200
    client.logout()
    login(client, "investigator")
    assert client.get(reverse("home")).url.startswith(reverse("two_factor_enrol"))


def test_an_administrator_resets_a_device_audited_but_not_their_own(client, everyone, nurse):
    device = TOTPDevice.objects.create(user=nurse, name="phone", confirmed=True)
    StaticDevice.objects.create(user=nurse, name="recovery", confirmed=True)
    admin_user = UserFactory(username="admin", role=Role.ADMINISTRATOR, is_staff=True,
                             is_superuser=True)
    own = TOTPDevice.objects.create(user=admin_user, name="phone", confirmed=True)
    from tests.conftest import verified_login

    verified_login(client, admin_user)
    changelist = reverse("admin:edc_user_changelist")
    client.post(changelist, {"action": "two_factor_reset",
                             "_selected_action": [nurse.pk, admin_user.pk]})
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not StaticDevice.objects.filter(user=nurse).exists()
    assert TOTPDevice.objects.filter(pk=own.pk).exists()
    reset = AuditEvent.objects.get(action="two_factor_reset")
    assert (reset.user, reset.object_id, reset.detail["username"]) == (
        admin_user, str(nurse.pk), "nurse")
    # The nurse enrols again at the next login.
    client.logout()
    login(client, "nurse")
    assert client.get(reverse("home")).url.startswith(reverse("two_factor_enrol"))
