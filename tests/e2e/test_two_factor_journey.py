"""Two-factor login in the browser (issue 19 item 1): a nurse whose role needs it enrols an
authenticator after the password (QR code and typed key, a code, the recovery codes), logs out,
and logs in again with the password and a code."""

from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from edc.models import AuditEvent
from edc.roles import Role
from tests.factories import PASSWORD, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def app_code(secret: str, steps_ahead: int = 0) -> str:
    """What the authenticator app shows for the key typed from the page (``steps_ahead``: the
    next 30-second code; a code is accepted once)."""
    key = b32decode(secret.replace(" ", ""))
    return str(TOTP(key, drift=steps_ahead).token()).zfill(6)


def password_step(page) -> None:
    page.context.clear_cookies()
    page.goto(page.base_url + "/accounts/login/")
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_nurse_enrols_an_authenticator_then_logs_in_with_a_code(page, watch, settings):
    settings.TWO_FACTOR_ROLES = ["all"]
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])

    password_step(page)
    page.get_by_role("heading", name="Set up two-factor login").wait_for()
    assert page.locator(".qr svg").count() == 1
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("The code is not correct.").wait_for()
    page.get_by_label("Code from the app").fill(app_code(secret))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Two-factor login is set up").wait_for()
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("link", name="I have kept them: continue").click()
    page.wait_for_url(page.base_url + "/")

    password_step(page)
    page.get_by_role("heading", name="Two-factor login").wait_for()
    page.goto(page.base_url + "/casebook/matrix/")  # nothing else opens before the code
    page.get_by_role("heading", name="Two-factor login").wait_for()
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(
        app_code(secret, steps_ahead=1))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(page.base_url + "/casebook/matrix/")
    assert AuditEvent.objects.filter(action="two_factor_verified").count() == 1
