"""A nurse saves an out-of-range value and sees the query on the field; she answers it; the
monitor re-queries, she corrects the value with a reason, the query closes itself; the
monitor raises and closes a manual query and verifies the form (issue 5)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from edc.roles import Role
from forms.models import VitalSigns
from forms.queries import Query
from tests.e2e.test_screening_journey import fill, log_in
from tests.factories import SiteFactory, UserFactory, randomized_subject

pytestmark = pytest.mark.django_db(transaction=True)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_query_answered_corrected_and_form_verified(page):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="monitor", role=Role.MONITOR, sites=[site])
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=3))
    d2 = subject.visits.get(code="D2")
    url = f"{page.base_url}/casebook/subjects/{subject.pk}/visits/{d2.pk}/vital_signs/"
    measured = (timezone.now() - dt.timedelta(hours=1)).astimezone(SHANGHAI)

    log_in(page, "nurse")
    page.goto(url)
    fill(page, {"measured_at": measured.strftime("%Y-%m-%dT%H:%M"), "systolic_bp": "135",
                "diastolic_bp": "80", "heart_rate": "128", "temperature": "36.9",
                "respiratory_rate": "16", "spo2": "97"})
    page.get_by_role("button", name="Save and mark complete").click()
    item = page.locator("#item-heart_rate")
    item.get_by_text("1 query").wait_for()
    assert item.get_by_text("VS-003").count() == 1
    item.get_by_label("Message").fill("Patient anxious; value confirmed by a second reading.")
    item.get_by_role("button", name="Answer").click()
    page.get_by_text("Answer sent.").wait_for()

    log_in(page, "monitor")
    page.get_by_role("link", name="Queries").click()
    page.get_by_text("Heart rate is outside the expected range").wait_for()
    page.goto(url)
    item = page.locator("#item-heart_rate")
    item.get_by_label("Message").fill("Source shows 118: please correct.")
    item.get_by_role("button", name="Re-query").click()
    page.get_by_text("Query re-opened.").wait_for()

    log_in(page, "nurse")
    page.goto(url)
    page.locator("[name=heart_rate]").fill("118")
    page.get_by_label("Reason for change").fill("Transcription error, source says 118")
    page.get_by_role("button", name="Save and mark complete").click()
    page.get_by_text("saved (Complete)").wait_for()
    query = Query.objects.get(check_code="VS-003")
    assert (query.status, query.resolution) == ("closed", "resolved by data change")

    log_in(page, "monitor")
    page.goto(url)
    raise_box = page.locator("#item-spo2")
    raise_box.get_by_text("Raise a query on this item").click()
    raise_box.get_by_label("Question to the site").fill("Was oxygen given?")
    raise_box.get_by_role("button", name="Raise query").click()
    page.get_by_text("Query raised.").wait_for()
    manual = Query.objects.get(check_code="")
    assert manual.field_name == "spo2" and manual.raised_by.username == "monitor"
    page.locator("#item-spo2").get_by_role("button", name="Close").click()
    page.get_by_text("Query closed.").wait_for()
    page.get_by_role("button", name="Mark the whole form verified").click()
    page.get_by_text("Source data verified.").wait_for()
    assert VitalSigns.objects.get().sdv_status == "verified"
    assert Query.objects.get(pk=manual.pk).status == "closed"
