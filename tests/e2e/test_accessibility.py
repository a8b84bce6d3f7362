"""Accessibility and tablet use, in the browser (issue 10): every form control has a name, every
page one h1 and a language; a nurse fills and submits a CRF with the keyboard alone; errors
are announced beside their field and tied to it; on a tablet the CRF form and the matrix fit
the screen."""

import datetime as dt

import pytest
from django.utils import timezone

from edc.roles import Role
from forms.models import VitalSigns
from tests.e2e.steps import SHANGHAI, STRUCTURE, log_in
from tests.factories import SiteFactory, UserFactory, randomized_subject

pytestmark = pytest.mark.django_db(transaction=True)

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def trial(db):
    """A site with a nurse, a monitor and a data manager, and a subject three days after
    randomization whose Day 2 vital signs have an open query."""
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="monitor", role=Role.MONITOR, sites=[site])
    UserFactory(username="dm", role=Role.DATA_MANAGER)
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=3))
    return subject


def vitals_url(page, subject) -> str:
    d2 = subject.visits.get(code="D2")
    return f"{page.base_url}/casebook/subjects/{subject.pk}/visits/{d2.pk}/vital_signs/"


def measured_local() -> dt.datetime:
    return (timezone.now() - dt.timedelta(hours=1)).astimezone(SHANGHAI)


def test_main_pages_name_their_controls_and_have_one_h1_and_a_language(page, trial):
    subject = trial
    problems: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state()
        problems[name] = page.evaluate(STRUCTURE)

    page.goto(page.base_url + "/accounts/login/")
    check("login")
    log_in(page, "nurse")
    check("home")
    page.get_by_role("link", name="Screening log").click()
    check("screening log")
    page.get_by_role("link", name="Subject matrix").click()
    check("matrix")
    page.goto(f"{page.base_url}/casebook/subjects/{subject.pk}/")
    check("casebook")
    page.goto(vitals_url(page, subject))
    check("CRF form, empty")
    page.locator("[name=heart_rate]").fill("128")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("1 query").wait_for()
    check("CRF form with a query, nurse")
    page.get_by_role("link", name="Queries").click()
    check("query list")

    log_in(page, "monitor")
    page.goto(vitals_url(page, subject))
    for summary in page.locator("summary").all():
        summary.click()
    check("CRF form, monitor, every query control open")

    log_in(page, "dm")
    page.get_by_role("link", name="Exports").click()
    check("exports")
    page.get_by_role("link", name="Dashboard").click()
    check("dashboard")

    assert {name: found for name, found in problems.items() if found} == {}
    assert len(problems) == 11


def focused(page) -> dict:
    return page.evaluate("""() => ({name: document.activeElement.name || '',
        text: document.activeElement.textContent.trim(), tag: document.activeElement.tagName})""")


def tab_to(page, *, name: str = "", text: str = "", limit: int = 80) -> int:
    """Press Tab until the control with this name (or this text) has the focus; how many
    presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        now = focused(page)
        if (name and now["name"] == name) or (text and now["text"] == text):
            return presses
    raise AssertionError(f"Tab never reached {name or text}")


def test_a_nurse_fills_and_submits_vital_signs_with_the_keyboard_alone(page, trial):
    subject = trial
    log_in(page, "nurse")
    page.goto(vitals_url(page, subject))
    measured = measured_local()

    # The first Tab offers to skip the navigation; from the content, the form is a few Tabs on.
    assert tab_to(page, text="Skip to content", limit=1) == 1
    page.keyboard.press("Enter")
    assert tab_to(page, name="measured_at") <= 3
    # Chromium lays the date-time field out in its own language, American here whatever the
    # page's: month, day, year; Tab; hours, minutes, AM/PM.
    page.keyboard.type(measured.strftime("%m%d%Y"))
    page.keyboard.press("Tab")
    page.keyboard.type(measured.strftime("%I%M%p")[:5])
    assert page.evaluate("document.activeElement.value") == measured.strftime("%Y-%m-%dT%H:%M")
    for name, value in (("systolic_bp", "135"), ("diastolic_bp", "80"), ("heart_rate", "76"),
                        ("temperature", "36.9"), ("respiratory_rate", "16"), ("spo2", "97"),
                        ("weight", "70.5")):
        tab_to(page, name=name)
        page.keyboard.type(value)
    tab_to(page, text="Save and mark complete")
    page.keyboard.press("Enter")
    page.get_by_text("saved (Complete)").wait_for()

    vitals = VitalSigns.objects.get()
    assert (vitals.status, vitals.systolic_bp, vitals.weight) == ("complete", 135,
                                                                   pytest.approx(70.5))
    assert vitals.measured_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") == \
        measured.strftime("%Y-%m-%d %H:%M")


ERRORS = """() => [...document.querySelectorAll('.field-error')].map((error) => {
  const field = error.closest('.field');
  const control = field.querySelector('fieldset') || field.querySelector('input, select, textarea');
  return {
    id: error.id, role: error.getAttribute('role'), text: error.textContent.trim(),
    control: control.name || control.tagName.toLowerCase(),
    describedby: (control.getAttribute('aria-describedby') || '').split(/\\s+/),
    invalid: control.getAttribute('aria-invalid'),
    label: field.querySelector('label, legend').textContent.trim(),
  };
})"""


def test_errors_are_announced_beside_their_field(page, trial):
    subject = trial
    log_in(page, "nurse")
    page.goto(vitals_url(page, subject))
    page.locator("[name=measured_at]").fill(measured_local().strftime("%Y-%m-%dT%H:%M"))
    page.locator("[name=systolic_bp]").fill("300")   # above the possible range
    page.locator("[name=diastolic_bp]").fill("70")
    page.locator("[name=spo2]").fill("101")
    page.get_by_role("button", name="Save and mark complete").click()
    page.locator(".field-error").first.wait_for()
    assert page.locator(".error[role=alert]").get_by_text("Please correct").is_visible()

    errors = page.evaluate(ERRORS)
    # Missing required items are errors too when completing.
    assert {e["control"] for e in errors} == {
        "systolic_bp", "spo2", "heart_rate", "temperature", "respiratory_rate"}, errors
    for error in errors:
        assert error["role"] == "alert", error
        assert error["id"] and error["id"] in error["describedby"], error
        assert error["invalid"] == "true", error
        # The unit stays part of the description, after the error.
        assert f"unit_{error['control']}" in error["describedby"], error
    assert page.evaluate(STRUCTURE) == []

    # Scales are radio buttons in a fieldset: the fieldset is described by the error.
    page.goto(vitals_url(page, subject).replace("vital_signs", "nihss"))
    page.get_by_role("button", name="Save and mark complete").click()
    page.locator(".field-error").first.wait_for()
    errors = page.evaluate(ERRORS)
    assert len(errors) > 10 and "fieldset" in {e["control"] for e in errors}, errors
    for error in errors:
        assert error["role"] == "alert", error
        assert error["id"] and error["id"] in error["describedby"], error
    assert page.evaluate(STRUCTURE) == []


def open_matrix(page) -> None:
    """Follow the header's link to the subject matrix and wait until the matrix has loaded
    (measuring right after the click measured the page being left, or no page at all)."""
    page.get_by_role("link", name="Subject matrix").click()
    page.wait_for_url("**/casebook/matrix/**")
    page.wait_for_load_state()


def test_the_crf_form_and_the_matrix_fit_a_tablet(page, trial):
    subject = trial
    page.set_viewport_size({"width": 768, "height": 1024})
    log_in(page, "nurse")
    page.goto(vitals_url(page, subject))
    page.locator("[name=heart_rate]").fill("128")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("1 query").wait_for()
    overflow = {"CRF form": page.evaluate(OVERFLOW)}
    open_matrix(page)
    overflow["matrix"] = page.evaluate(OVERFLOW)
    log_in(page, "monitor")
    page.goto(vitals_url(page, subject))
    for summary in page.locator("summary").all():
        summary.click()
    overflow["CRF form, monitor"] = page.evaluate(OVERFLOW)
    open_matrix(page)
    overflow["matrix, monitor"] = page.evaluate(OVERFLOW)
    assert {name: px for name, px in overflow.items() if px > 0} == {}


def test_the_exports_page_and_the_data_dictionary_fit_a_tablet(page, trial):
    page.set_viewport_size({"width": 768, "height": 1024})
    log_in(page, "dm")
    page.goto(f"{page.base_url}/exports/")
    overflow = {"exports": page.evaluate(OVERFLOW)}
    page.get_by_role("link", name="Read the data dictionary").click()
    page.get_by_role("heading", name="Data dictionary", level=1).wait_for()
    overflow["data dictionary"] = page.evaluate(OVERFLOW)
    assert {name: px for name, px in overflow.items() if px > 0} == {}
