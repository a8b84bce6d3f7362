"""The arm never reaches a blinded user (issue 3): every page a blinded role can reach, and
the e-mails the system sends, are scanned for arm labels, bag contents and the kit-to-arm
mapping. Emergency unblinding shows the arm to the one investigator, with an audit trail."""

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import pytest
from django.core import mail
from django.urls import reverse

from edc import protocol
from edc.roles import Role, is_blinded
from tests.eligible import confirm_all, enter_screening_data
from tests.factories import PASSWORD, UserFactory, randomized_subject, screened_subject
from visits.models import RandomizationSlot, Subject, Unblinding

ARM_TEXT = [str(arm.label) for arm in protocol.ARMS] + ["placebo", "Placebo", "PLACEBO"]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def crawl(client, start: str = "/", limit: int = 400) -> dict[str, str]:
    """Every same-site page reachable by GET from ``start``: path → HTML."""
    seen: dict[str, str] = {}
    queue = [start]
    while queue and len(seen) < limit:
        path = queue.pop()
        if path in seen or path.startswith(("/accounts/logout", "/static/")):
            continue
        response = client.get(path)
        seen[path] = response.content.decode(errors="replace") if response.status_code == 200 \
            else ""
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = Links()
        parser.feed(seen[path])
        for href in parser.hrefs:
            url = urlparse(urljoin(path, href))
            if not url.netloc and url.path.startswith("/"):
                queue.append(url.path + (f"?{url.query}" if url.query else ""))
    return seen


def arm_leaks(html: str, slots) -> list[str]:
    found = [text for text in ARM_TEXT if text in html]
    for slot in slots:
        # A kit number next to its arm's content would reveal the mapping.
        for kit in slot.kits:
            if re.search(rf"{kit}\W{{0,20}}({protocol.ACTIVE}|{protocol.PLACEBO})", html):
                found.append(f"kit {kit} with its content")
    return found


@pytest.fixture
def trial(site, nurse):
    """A site with randomized subjects, one in screening with data, and an unblinding."""
    investigator = UserFactory(username="inv", role=Role.INVESTIGATOR, sites=[site])
    randomized_subject(site=site, user=nurse)
    screening = screened_subject(site=site, user=nurse)
    enter_screening_data(screening, nurse)
    confirm_all(screening, investigator)
    return investigator


BLINDED_ROLES = [role for role in Role if role not in
                 (Role.UNBLINDED_PHARMACIST, Role.UNBLINDED_STATISTICIAN)]


@pytest.mark.parametrize("role", BLINDED_ROLES)
def test_no_page_a_blinded_user_can_reach_shows_the_arm(client, site, trial, role):
    user = UserFactory(role=role, sites=[site], is_staff=role == Role.ADMINISTRATOR,
                       is_superuser=role == Role.ADMINISTRATOR)
    assert is_blinded(user)
    client.force_login(user)
    pages = crawl(client, "/")
    if role == Role.ADMINISTRATOR:
        pages |= crawl(client, "/admin/")
    assert len(pages) > 3, pages.keys()
    if role in (Role.MONITOR, Role.DATA_MANAGER):
        assert pages.get(reverse("dashboard")), "the trial dashboard was not scanned"
    slots = list(RandomizationSlot.objects.filter(subject__isnull=False))
    leaks = {path: arm_leaks(html, slots) for path, html in pages.items()}
    assert {path: found for path, found in leaks.items() if found} == {}
    assert client.get(reverse("visits:pharmacy")).status_code == 403


def test_the_crawl_would_see_the_arm_where_it_is_shown(client, site, trial):
    """The same crawl, as the unblinded pharmacist, finds the allocation: the scan works."""
    pharmacist = UserFactory(role=Role.UNBLINDED_PHARMACIST, sites=[site])
    client.force_login(pharmacist)
    pages = crawl(client, "/")
    slots = list(RandomizationSlot.objects.filter(subject__isnull=False))
    assert reverse("visits:pharmacy") in pages
    assert arm_leaks(pages[reverse("visits:pharmacy")], slots)
    assert reverse("dashboard") not in pages


def test_emergency_unblinding_needs_the_password_and_is_audited(
    client, site, nurse, trial, settings, django_capture_on_commit_callbacks
):
    settings.SPONSOR_CONTACT_EMAIL = "safety@sponsor.example"
    UserFactory(role=Role.DATA_MANAGER, email="dm@cro.example")
    investigator = trial
    subject = Subject.objects.exclude(subject_id=None).first()
    client.force_login(investigator)
    url = reverse("visits:unblind", args=[subject.pk])

    wrong = client.post(url, {"reason": "Anaphylaxis, choosing treatment", "password": "nope"})
    assert wrong.status_code == 400
    assert "password is not correct" in wrong.content.decode()
    assert not Unblinding.objects.exists()

    with pytest.raises(AssertionError):
        # Nothing was revealed by the refused attempt.
        assert_arm_shown(wrong.content.decode(), subject)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"reason": "Anaphylaxis, choosing treatment",
                                     "password": PASSWORD})
    assert response.status_code == 200
    assert_arm_shown(response.content.decode(), subject)

    event = Unblinding.objects.get()
    assert (event.user, event.subject, event.reason) == (
        investigator, subject, "Anaphylaxis, choosing treatment")
    subject.refresh_from_db()
    assert subject.emergency_unblinded
    assert subject.history.first().history_user == investigator
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert set(message.to) == {"dm@cro.example", "safety@sponsor.example"}
    assert subject.subject_id in message.body
    assert arm_leaks(message.subject + message.body, RandomizationSlot.objects.all()) == []

    # Every blinded user now sees that the blind was broken, but not the arm.
    client.force_login(nurse)
    casebook = client.get(reverse("forms:casebook", args=[subject.pk])).content.decode()
    assert "Blind broken for this subject" in casebook
    assert arm_leaks(casebook, RandomizationSlot.objects.all()) == []


def assert_arm_shown(html: str, subject: Subject) -> None:
    arm = protocol.arm(RandomizationSlot.objects.get(subject=subject).arm)
    assert str(arm.label) in html


def test_site_staff_and_monitors_cannot_unblind(client, site, trial):
    subject = Subject.objects.exclude(subject_id=None).first()
    for role in (Role.SITE_STAFF, Role.MONITOR, Role.DATA_MANAGER):
        client.force_login(UserFactory(role=role, sites=[site]))
        response = client.post(reverse("visits:unblind", args=[subject.pk]),
                               {"reason": "x", "password": PASSWORD})
        assert response.status_code == 403
    assert not Unblinding.objects.exists()
