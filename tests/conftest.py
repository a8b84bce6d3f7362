import uuid

import pytest
from django.utils import translation

from edc.roles import Role
from tests.factories import SiteFactory, UserFactory


@pytest.fixture
def site(db):
    return SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")


@pytest.fixture
def other_site(db):
    return SiteFactory(code="GZ02", name="Guangzhou", time_zone="Asia/Shanghai")


@pytest.fixture
def nurse(site):
    return UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])


@pytest.fixture
def users(site, nurse):
    """A nurse and a monitor of ``site`` and a data manager of every site, by role name."""
    return {
        "nurse": nurse,
        "monitor": UserFactory(username="monitor", role=Role.MONITOR, sites=[site]),
        "data_manager": UserFactory(username="dm", role=Role.DATA_MANAGER),
    }


@pytest.fixture(autouse=True)
def _history_rows_need_an_author(settings):
    """Every audited write names its author (edc.history.audited_save): a history row without
    one fails the test that wrote it."""
    settings.AUDIT_REQUIRE_AUTHOR = True


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness protects real accounts; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    # Rate-limit counters live in the cache, which outlives a test's database; each test
    # counts from zero under its own prefix (edc.ratelimit).
    settings.RATE_LIMIT_KEY_PREFIX = f"edc-rate-test-{uuid.uuid4().hex}"


def verified_login(client, user) -> None:
    """Log ``user`` in with both factors done, as ``force_login`` does for the password: for
    tests that run with two-factor login required (``TWO_FACTOR_ROLES``). The user gets a
    confirmed authenticator if they have none."""
    from django.test import RequestFactory
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = (TOTPDevice.objects.filter(user=user, confirmed=True).first()
              or TOTPDevice.objects.create(user=user, name="test", confirmed=True))
    client.force_login(user)
    request = RequestFactory().get("/")
    request.session = client.session
    request.user = user
    otp_login(request, device)
    request.session.save()


@pytest.fixture(autouse=True)
def _default_language():
    """A request leaves its reader's language active in the test's thread (LocaleMiddleware,
    the account's language): every test starts, and ends, in the default language."""
    translation.deactivate()
    yield
    translation.deactivate()
