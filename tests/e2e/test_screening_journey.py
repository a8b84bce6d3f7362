"""A research nurse screens a patient, enters the screening forms, sees eligibility derived,
an investigator confirms it, the nurse randomizes and enters the first visit, where a blood
pressure outside the expected range raises a query on the form (issues 3 and 10). Nobody
blinded is shown the arm on the way; the unblinded pharmacist sees it on the pharmacy page."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from edc import protocol
from edc.roles import Role
from forms.quality.queries import Query
from tests.e2e.steps import SHANGHAI, fill, local, log_in, open_form, save_complete
from tests.eligible import NIHSS_12, lab_ranges
from tests.factories import SiteFactory, UserFactory, randomization_list
from visits.models import RandomizationSlot, Subject, SubjectStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_nurse_screens_randomizes_and_enters_the_first_visit(page, watch):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site],
                first_name="Chen", last_name="Jing")
    UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])
    UserFactory(username="pharmacist", role=Role.UNBLINDED_PHARMACIST, sites=[site],
                first_name="Li", last_name="Na")
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
    expect(page.locator(".derived").get_by_text("12")).to_have_count(1)
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
    expect(page.get_by_text("NIHSS 12, 1a = 0")).to_have_count(1)
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
    expect(page.get_by_role("heading", name="Kits to give")).to_have_count(1)

    # First visit: vital signs, the systolic pressure above the expected range but possible.
    open_form(page, "Randomization + infusion 1", "Vital signs")
    fill(page, {"measured_at": local(timezone.now() - dt.timedelta(minutes=5)),
                "systolic_bp": "190", "diastolic_bp": "88", "heart_rate": "92",
                "temperature": "37.1", "respiratory_rate": "18", "spo2": "96", "weight": "68.5"})
    save_complete(page)
    expect(page.get_by_text("1 open query on this form.")).to_have_count(1)
    item = page.locator("#item-systolic_bp")
    assert item.get_by_text("1 query").is_visible()
    assert item.get_by_text("VS-001 · Open").is_visible()
    assert item.get_by_text("Systolic blood pressure is outside the expected range").is_visible()
    query = Query.objects.get()
    assert (query.check_code, query.field_name, query.status) == ("VS-001", "systolic_bp", "open")

    subject.refresh_from_db()
    assert subject.status == SubjectStatus.RANDOMIZED
    assert subject.subject_id == "SZ01-001"

    # The pharmacist prepares the bags: the pharmacy page is where the arm is shown.
    arm = protocol.arm(RandomizationSlot.objects.get(subject=subject).arm)
    log_in(page, "pharmacist")
    page.get_by_role("link", name="Pharmacy").click()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="SZ01-001"))
    assert row.get_by_text(f"{arm.code} — {arm.label}").is_visible()

    # The watch sees the arm where it is shown (the pharmacy page, once it has sent itself):
    # the checks below look at real pages.
    watch.wait_for(page, lambda p: p.user.startswith("Li Na") and "/pharmacy" in p.url)
    assert [p.arm_text() for p in watch.seen_by("Li Na")][-1]
    assert watch.arm_leaks() == {}
    assert watch.structure_problems() == {}
    nurse_pages = watch.seen_by("Chen Jing")
    assert len(watch.pages) > 25 and len(nurse_pages) > 15
