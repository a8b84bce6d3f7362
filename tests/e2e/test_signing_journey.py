"""An investigator signs a completed visit with their password in the browser; a later change
breaks the signature and the casebook asks for a new one (issue 6)."""

import datetime as dt

import pytest
from django.utils import timezone

from edc.roles import Role
from forms import services
from forms.models import VitalSigns
from forms.models.signoff import Signature
from tests.e2e.test_screening_journey import log_in
from tests.factories import PASSWORD, SiteFactory, UserFactory, randomized_subject
from tests.forms.test_signoff import complete_visit

pytestmark = pytest.mark.django_db(transaction=True)


def test_investigator_signs_a_visit_with_the_password(page):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site],
                first_name="Wang", last_name="Wei")
    subject = randomized_subject(site=site, user=nurse,
                                 randomized_at=timezone.now() - dt.timedelta(days=5))
    visit = complete_visit(subject, nurse)

    log_in(page, "investigator")
    page.goto(f"{page.base_url}/casebook/subjects/{subject.pk}/")
    page.get_by_role("link", name="Sign visit").first.click()
    page.get_by_text("I confirm that I have reviewed these data").wait_for()
    assert page.get_by_text("Wang Wei").count() >= 1
    page.get_by_label("Re-enter your password to sign").fill("not my password")
    page.get_by_role("button", name="Sign").click()
    page.get_by_text("The password is not correct.").wait_for()
    page.get_by_label("Re-enter your password to sign").fill(PASSWORD)
    page.get_by_role("button", name="Sign").click()
    page.get_by_text("Signed.").wait_for()
    signature = Signature.objects.get()
    assert (signature.visit, signature.is_broken) == (visit, False)

    vitals = VitalSigns.objects.get(visit=visit)
    services.crf_save(crf=vitals, values={"heart_rate": 72}, user=nurse,
                      expected_version=vitals.version, reason="Late entry from source")
    page.reload()
    page.get_by_text("a new signature is needed").wait_for()
