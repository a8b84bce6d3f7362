"""The history pages of Django admin answer 404, not 500, for an id that names no record
(found by the fuzz suite)."""

import pytest

from edc.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def admin_client(client, site):
    administrator = UserFactory(username="root", role=Role.ADMINISTRATOR, is_staff=True,
                                is_superuser=True)
    client.force_login(administrator)
    return client


@pytest.mark.parametrize("path", [
    "/admin/edc/site/abc/history/",
    "/admin/edc/site/abc/history/1/",
    "/admin/edc/site/1.5/history/",
    "/admin/edc/user/abc/history/",
    "/admin/edc/user/abc/history/1/",
    "/admin/edc/user/99999999999999999999999/history/",
    "/admin/edc/site/{site}/history/abc/",
])
def test_history_of_no_record_is_not_found(admin_client, site, path):
    assert admin_client.get(path.format(site=site.pk)).status_code == 404


def test_history_of_a_site_is_shown(admin_client, site):
    response = admin_client.get(f"/admin/edc/site/{site.pk}/history/")
    assert response.status_code == 200
    version = site.history.first().history_id
    assert admin_client.get(f"/admin/edc/site/{site.pk}/history/{version}/").status_code == 200
