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
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness protects real accounts; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language():
    """A request leaves its reader's language active in the test's thread (LocaleMiddleware,
    the account's language): every test starts, and ends, in the default language."""
    translation.deactivate()
    yield
    translation.deactivate()
