"""An investigator signs a completed visit, then the whole casebook, with their password in the
browser; a later change breaks both signatures and the casebook asks for new ones (issues 6
and 10). The investigator is blinded: no page on the way shows the arm."""

import datetime as dt

import pytest
from django.utils import timezone

from edc.roles import Role
from forms.entry import services
from forms.models import VitalSigns
from forms.models.signoff import Signature
from tests.e2e.steps import log_in
from tests.factories import PASSWORD, SiteFactory, UserFactory, randomized_subject
from tests.forms.test_signoff import complete_visit

pytestmark = pytest.mark.django_db(transaction=True)


def test_investigator_signs_a_visit_and_the_casebook_with_the_password(page, watch):
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

    page.get_by_role("link", name="Sign the whole casebook").click()
    page.get_by_role("heading", name="Sign the whole casebook").wait_for()
    assert page.get_by_text("I confirm that I have reviewed these data").is_visible()
    page.get_by_label("Re-enter your password to sign").fill(PASSWORD)
    page.get_by_role("button", name="Sign").click()
    page.get_by_text("Signed.").wait_for()
    assert page.get_by_text("Whole casebook: Wang Wei").is_visible()
    casebook = Signature.objects.get(visit=None)
    assert (casebook.subject, casebook.signer.username, casebook.is_broken) == (
        subject, "investigator", False)

    vitals = VitalSigns.objects.get(visit=visit)
    services.crf_save(crf=vitals, values={"heart_rate": 72}, user=nurse,
                      expected_version=vitals.version, reason="Late entry from source")
    page.reload()
    page.get_by_text("a new signature is needed").first.wait_for()
    assert page.get_by_text("a new signature is needed").count() == 2
    assert [s.is_broken for s in Signature.objects.all()] == [True, True]

    assert watch.arm_leaks() == {}
    assert watch.structure_problems() == {}
    assert len(watch.seen_by("Wang Wei")) >= 5
