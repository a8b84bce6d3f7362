"""A research nurse screens a patient, enters the screening forms, sees eligibility derived,
an investigator confirms it, the nurse randomizes and enters the first visit (issue 3)."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from edc.roles import Role
from tests.eligible import NIHSS_12, lab_ranges
from tests.factories import PASSWORD, SiteFactory, UserFactory, randomization_list
from visits.models import Subject, SubjectStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db(transaction=True)


def local(moment: dt.datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def log_in(page, username: str) -> None:
    page.context.clear_cookies()
    page.goto(page.base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(page.base_url + "/")


def fill(page, values: dict) -> None:
    """Fill a form by field name: radios are checked, everything else typed."""
    for name, value in values.items():
        radio = page.locator(f"input[type=radio][name='{name}'][value='{value}']")
        if radio.count():
            radio.check()
        else:
            page.locator(f"[name='{name}']").fill(str(value))


def open_form(page, visit_label: str, form_label: str) -> None:
    heading = page.locator("th", has_text=re.compile(f"^{re.escape(visit_label)}$"))
    row = page.locator("tr", has=heading)
    row.get_by_role("link", name=form_label, exact=True).click()


def save_complete(page) -> None:
    page.get_by_role("button", name="Save and mark complete").click()
    page.get_by_text("(Complete)").wait_for()


def test_nurse_screens_randomizes_and_enters_the_first_visit(page):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])
    randomization_list(site)
    lab_ranges(site)
    now = timezone.now()

    log_in(page, "nurse")
    page.get_by_role("link", name="Screening log").click()
    fill(page, {"screened_at": local(now - dt.timedelta(hours=3)), "full_name": "Zhou Ming",
                "birth_date": "1961-08-09", "hospital_record_number": "SZ-778812",
                "phone": "13912345678"})
    page.get_by_role("button", name="Assign screening number").click()
    page.get_by_text("Screening number SZ01-S001 assigned").wait_for()

    fill(page, {"consented_at": local(now - dt.timedelta(hours=2)), "signed_by": "subject",
                "form_version": "v2.0 2026-01-15"})
    page.get_by_role("button", name="Record consent").click()
    page.get_by_text("Informed consent recorded").wait_for()

    open_form(page, "Screening", "Demographics")
    fill(page, {"sex": "M", "ethnicity": "han", "height": "171", "weight": "68.5"})
    save_complete(page)
    page.get_by_role("link", name="Casebook").first.click()
    open_form(page, "Screening", "Stroke event and imaging")
    fill(page, {"onset_type": "witnessed", "onset_at": local(now - dt.timedelta(hours=20)),
                "imaging_modality": "ct", "imaging_at": local(now - dt.timedelta(hours=18)),
                "territory": "anterior", "hemorrhage": "none", "thrombolysis": "no",
                "thrombectomy": "no"})
    save_complete(page)
    page.get_by_role("link", name="Casebook").first.click()
    open_form(page, "Screening", "NIHSS")
    fill(page, {"assessed_at": local(now - dt.timedelta(hours=1)), **NIHSS_12})
    save_complete(page)
    assert page.locator(".derived").get_by_text("12").count() == 1
    page.get_by_role("link", name="Casebook").first.click()
    open_form(page, "Screening", "Modified Rankin Scale")
    fill(page, {"assessed_on": timezone.localdate(now, SHANGHAI).isoformat(), "score": "0"})
    save_complete(page)
    page.get_by_role("link", name="Casebook").first.click()
    open_form(page, "Screening", "Laboratory panel")
    fill(page, {"sampled_at": local(now - dt.timedelta(hours=2)), "ast": "32", "alt": "28",
                "creatinine": "80", "hemoglobin": "141", "wbc": "6.8", "platelets": "230"})
    save_complete(page)

    # The nurse sees what the system derived; an investigator must confirm.
    page.get_by_role("link", name="Casebook").first.click()
    page.get_by_role("link", name="Eligibility checklist").first.click()
    assert page.get_by_text("NIHSS 12, 1a = 0").count() == 1
    log_in(page, "investigator")
    subject = Subject.objects.get()
    page.goto(f"{page.base_url}/casebook/subjects/{subject.pk}/eligibility/")
    page.locator("#planned").fill(local(now + dt.timedelta(hours=2)))
    for radio in page.locator("input[type=radio][value=yes]").all():
        radio.check()
    page.get_by_role("button", name="Save checklist").click()
    page.get_by_text("Eligible: every criterion is met and confirmed.").wait_for()

    log_in(page, "nurse")
    page.goto(f"{page.base_url}/casebook/subjects/{subject.pk}/")
    page.get_by_role("link", name="Randomize").click()
    page.get_by_role("button", name="Randomize now").click()
    page.get_by_text("SZ01-001 randomized").wait_for()
    assert page.get_by_role("heading", name="Kits to give").count() == 1

    # First visit: vital signs, one value outside the soft range (fever) but possible.
    open_form(page, "Randomization + infusion 1", "Vital signs")
    fill(page, {"measured_at": local(timezone.now() - dt.timedelta(minutes=5)),
                "systolic_bp": "150", "diastolic_bp": "88", "heart_rate": "92",
                "temperature": "38.4", "respiratory_rate": "18", "spo2": "96", "weight": "68.5"})
    save_complete(page)

    subject.refresh_from_db()
    assert subject.status == SubjectStatus.RANDOMIZED
    assert subject.subject_id == "SZ01-001"
    page_text = page.content()
    for arm_word in ("Placebo", "placebo", "Single infusion", "Multiple infusions"):
        assert arm_word not in page_text
