"""The query list, the visit page's queries, the SDV progress page (issue 5)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from edc.roles import Role
from forms.entry import services
from forms.models import VitalSigns
from forms.quality import queries
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject


@pytest.fixture
def monitor(site):
    return UserFactory(username="monitor", role=Role.MONITOR, sites=[site])


@pytest.fixture
def vitals(site, nurse):
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=20))
    return save(VitalSigns, subject, nurse, {
        "measured_at": timezone.now() - dt.timedelta(hours=1), "systolic_bp": 200,
        "diastolic_bp": 90, "heart_rate": 80, "temperature": 37, "respiratory_rate": 16,
        "spo2": 97}, visit=subject.visits.get(code="D2"))


def test_query_list_filters_and_counts(client, monitor, vitals, nurse):
    manual = queries.query_raise(target=vitals, field_name="spo2", text="Oxygen given?",
                                 user=monitor)
    client.force_login(monitor)
    url = reverse("forms:query_list")

    def listed(**filters):
        return {q.check_code or q.text for q, _age in client.get(url, filters).context["rows"]}

    assert listed() == {"VS-001", "Oxygen given?"}
    assert "Oxygen given?" in client.get(url).content.decode()
    assert listed(check="manual") == {"Oxygen given?"}
    assert listed(check="VS-001") == {"VS-001"}
    assert listed(min_age="3") == set()
    assert listed(form="labs") == set()
    queries.query_close(query=manual, user=monitor)
    assert listed() == {"VS-001"}
    assert listed(status="closed") == {"Oxygen given?"}
    response = client.get(url)
    assert dict(response.context["counts"])["Closed"] == 1
    assert dict(response.context["ageing"])["0–7 days"] == 1


def test_staff_of_another_site_see_no_queries(client, other_site, vitals):
    client.force_login(UserFactory(role=Role.SITE_STAFF, sites=[other_site]))
    assert client.get(reverse("forms:query_list")).context["rows"] == []


def test_wrong_role_cannot_close_through_the_page(client, vitals, nurse):
    query = queries.Query.objects.get(check_code="VS-001")
    client.force_login(nurse)
    response = client.post(reverse("forms:query_act", args=[query.pk, "close"]),
                           {"text": "closing"})
    assert response.status_code == 403
    assert queries.Query.objects.get(pk=query.pk).status == "open"


def test_visit_window_query_shows_on_the_visit_page(client, monitor, vitals, nurse):
    subject = vitals.subject
    d8 = subject.visits.get(code="D8")
    services.visit_record(visit=d8, actual_date=d8.window_end + dt.timedelta(days=1),
                          user=nurse)
    client.force_login(monitor)
    html = client.get(reverse("forms:visit_update", args=[subject.pk, d8.pk])).content.decode()
    assert "VIS-001" in html
    assert "Raise a query on this item" in html


def test_sdv_progress_page(client, monitor, vitals):
    from forms.quality import sdv

    client.force_login(monitor)
    assert client.get(reverse("forms:sdv_progress")).context["by_site"][vitals.subject.site] \
        .verified == 0
    sdv.crf_verify(crf=vitals, user=monitor)
    progress = client.get(reverse("forms:sdv_progress")).context["by_site"]
    assert progress[vitals.subject.site].verified == 1
