"""A nurse saves an out-of-range value and sees the query on the field; she answers it. The
monitor finds the query in the query list and re-queries; the nurse answers and corrects the
value with a reason, and the query closes itself. The monitor raises a manual query, the
nurse answers, the monitor closes it and verifies the form (issues 5 and 10). Nobody on the
way is shown the arm."""

import datetime as dt

import pytest
from django.utils import timezone

from edc.roles import Role
from forms.models import VitalSigns
from forms.quality.queries import Query
from tests.e2e.steps import fill, local, log_in
from tests.factories import SiteFactory, UserFactory, randomized_subject

pytestmark = pytest.mark.django_db(transaction=True)


def query_row(page, text: str):
    return page.locator("tbody tr", has_text=text)


def test_query_answered_corrected_and_form_verified(page, watch):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="monitor", role=Role.MONITOR, sites=[site])
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=3))
    d2 = subject.visits.get(code="D2")
    url = f"{page.base_url}/casebook/subjects/{subject.pk}/visits/{d2.pk}/vital_signs/"

    log_in(page, "nurse")
    page.goto(url)
    fill(page, {"measured_at": local(timezone.now() - dt.timedelta(hours=1)),
                "systolic_bp": "135", "diastolic_bp": "80", "heart_rate": "128",
                "temperature": "36.9", "respiratory_rate": "16", "spo2": "97"})
    page.get_by_role("button", name="Save and mark complete").click()
    item = page.locator("#item-heart_rate")
    item.get_by_text("1 query").wait_for()
    assert item.get_by_text("VS-003").count() == 1
    item.get_by_label("Message").fill("Patient anxious; value confirmed by a second reading.")
    item.get_by_role("button", name="Answer").click()
    page.get_by_text("Answer sent.").wait_for()

    # The monitor finds it in the query list and goes from there to the item.
    log_in(page, "monitor")
    page.get_by_role("link", name="Queries").click()
    row = query_row(page, "Heart rate is outside the expected range")
    assert row.get_by_text("Answered").is_visible()
    row.get_by_role("link", name="heart_rate").click()
    page.wait_for_url(f"{url}#item-heart_rate")
    item = page.locator("#item-heart_rate")
    item.get_by_label("Message").fill("Source shows 118: please correct.")
    item.get_by_role("button", name="Re-query").click()
    page.get_by_text("Query re-opened.").wait_for()

    # The nurse finds it open again in her list, answers and corrects the value.
    log_in(page, "nurse")
    page.get_by_role("link", name="Queries").click()
    row = query_row(page, "Heart rate is outside the expected range")
    assert row.get_by_text("Open").is_visible()
    row.get_by_role("link", name="heart_rate").click()
    item = page.locator("#item-heart_rate")
    item.get_by_text("Source shows 118: please correct.").wait_for()
    item.get_by_label("Message").fill("Transcription error: corrected to 118 from source.")
    item.get_by_role("button", name="Answer").click()
    page.get_by_text("Answer sent.").wait_for()
    page.locator("[name=heart_rate]").fill("118")
    page.get_by_label("Reason for change").fill("Transcription error, source says 118")
    page.get_by_role("button", name="Save and mark complete").click()
    page.get_by_text("saved (Complete)").wait_for()
    query = Query.objects.get(check_code="VS-003")
    assert (query.status, query.resolution) == ("closed", "resolved by data change")
    assert [m.kind for m in query.messages.all()] == [
        "raised", "answered", "requeried", "answered", "auto_closed"]

    # The monitor asks about the oxygen saturation; the nurse answers; the monitor closes
    # the query and verifies the form.
    log_in(page, "monitor")
    page.get_by_role("link", name="Queries").click()
    assert page.get_by_text("No queries match.").is_visible()
    page.goto(url)
    raise_box = page.locator("#item-spo2")
    raise_box.get_by_text("Raise a query on this item").click()
    raise_box.get_by_label("Question to the site").fill("Was oxygen given?")
    raise_box.get_by_role("button", name="Raise query").click()
    page.get_by_text("Query raised.").wait_for()
    manual = Query.objects.get(check_code="")
    assert manual.field_name == "spo2" and manual.raised_by.username == "monitor"

    log_in(page, "nurse")
    page.get_by_role("link", name="Queries").click()
    query_row(page, "Was oxygen given?").get_by_role("link", name="spo2").click()
    item = page.locator("#item-spo2")
    item.get_by_label("Message").fill("No, room air.")
    item.get_by_role("button", name="Answer").click()
    page.get_by_text("Answer sent.").wait_for()

    log_in(page, "monitor")
    page.get_by_role("link", name="Queries").click()
    query_row(page, "Was oxygen given?").get_by_role("link", name="spo2").click()
    item = page.locator("#item-spo2")
    assert item.get_by_text("No, room air.").is_visible()
    item.get_by_role("button", name="Close").click()
    page.get_by_text("Query closed.").wait_for()
    page.get_by_role("button", name="Mark the whole form verified").click()
    page.get_by_text("Source data verified.").wait_for()
    assert VitalSigns.objects.get().sdv_status == "verified"
    manual.refresh_from_db()
    assert (manual.status, manual.resolution, manual.closed_by.username) == (
        "closed", "closed by raiser", "monitor")

    assert watch.arm_leaks() == {}
    assert watch.structure_problems() == {}
    assert len(watch.pages) > 20
