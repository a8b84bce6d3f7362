"""After a query is raised, answered or verified, or data are locked, the page goes back where
the user came from: a path on this site, else the casebook (found by the fuzz suite: any other
``next`` value was reversed as a URL name and gave a 500, losing the action)."""

import pytest
from django.urls import reverse

from edc.roles import Role
from forms.quality.queries import Query
from tests.factories import UserFactory, randomized_subject


@pytest.fixture
def visit(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    return subject.visits.order_by("pk").first()


@pytest.mark.parametrize("next_value", [
    "0", "nihss", "2026-01-01T10:00", "admin:index", "logout", "http://evil.example/",
    "//evil.example/", "", "\x00", "/\x00", "a\nb", "/casebook/\r\nSet-Cookie: x=1",
])
def test_a_query_raised_with_any_next_value_is_kept_and_goes_back_to_the_casebook(
        client, site, visit, next_value):
    client.force_login(UserFactory(role=Role.MONITOR, sites=[site]))
    response = client.post(
        reverse("forms:query_new", args=[visit.subject_id, "visit", visit.pk]),
        {"field": "actual_date", "text": "Please check the date", "next": next_value})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert location.isprintable() and " " not in location
    if not next_value.startswith("/"):
        assert location == reverse("forms:casebook", args=[visit.subject_id])
    assert Query.objects.filter(subject=visit.subject, field_name="actual_date").exists()


def test_a_path_on_this_site_is_where_the_page_goes_back_to(client, site, visit):
    client.force_login(UserFactory(role=Role.MONITOR, sites=[site]))
    response = client.post(
        reverse("forms:query_new", args=[visit.subject_id, "visit", visit.pk]),
        {"field": "actual_date", "text": "Please check", "next": "/casebook/queries/?site=SZ01"})
    assert response["Location"] == "/casebook/queries/?site=SZ01"
