"""Direct identifiers live apart from clinical data and only staff of the subject's site see
them (issue 3, pseudonymisation)."""

import pytest
from django.urls import reverse

from edc.roles import Role
from tests.factories import UserFactory, screened_subject
from visits.models import Subject, SubjectIdentity


@pytest.fixture
def subject(site, nurse):
    return screened_subject(site=site, user=nurse)


def test_identifiers_are_not_columns_of_clinical_tables():
    clinical = {f.name for f in Subject._meta.get_fields()}
    assert not clinical & {"full_name", "birth_date", "phone", "hospital_record_number"}
    assert SubjectIdentity._meta.db_table != Subject._meta.db_table


@pytest.mark.parametrize(("role", "status"), [
    (Role.SITE_STAFF, 200), (Role.INVESTIGATOR, 200), (Role.MONITOR, 403),
    (Role.UNBLINDED_PHARMACIST, 403), (Role.DATA_MANAGER, 403),
])
def test_only_site_staff_open_the_identifiers(client, site, subject, role, status):
    client.force_login(UserFactory(role=role, sites=[site]))
    response = client.get(reverse("visits:identity", args=[subject.pk]))
    assert response.status_code == status
    if status == 200:
        assert "Wang Fang" in response.content.decode()


def test_staff_of_another_site_cannot_find_the_subject(client, other_site, subject):
    client.force_login(UserFactory(role=Role.SITE_STAFF, sites=[other_site]))
    assert client.get(reverse("visits:identity", args=[subject.pk])).status_code == 404
    assert client.get(reverse("forms:casebook", args=[subject.pk])).status_code == 404


def test_monitor_pages_never_show_the_name(client, site, subject):
    client.force_login(UserFactory(role=Role.MONITOR, sites=[site]))
    for url in (reverse("home"), reverse("visits:screening_log"),
                reverse("forms:casebook", args=[subject.pk]), reverse("forms:matrix")):
        html = client.get(url).content.decode()
        assert "Wang Fang" not in html and "H123456" not in html


def test_changing_identifiers_needs_a_reason_and_updates_the_age(client, site, nurse, subject):
    client.force_login(nurse)
    url = reverse("visits:identity", args=[subject.pk])
    form = {"full_name": "Wang Fang", "birth_date": "1950-01-01",
            "hospital_record_number": "H123456", "phone": ""}
    assert client.post(url, form).status_code == 400
    assert client.post(url, form | {"reason": "Wrong year of birth"}).status_code == 302
    subject.refresh_from_db()
    assert subject.age_at_consent >= 76
    assert subject.identity.history.first().history_change_reason == "Wrong year of birth"
