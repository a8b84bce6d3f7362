"""seed_demo: the demo accounts and, at their sites, a synthetic trial entered by them."""

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from edc.models import Site, User
from edc.roles import Role
from forms.models import CRF_MODELS, AdverseEvent
from forms.models.base import SDVStatus
from forms.models.signoff import Lock, LockScope, Signature
from forms.quality.queries import Query, QueryStatus
from visits.models import Subject, Visit
from visits.schedule import VisitStatus, local_date
from wiring.management.commands import seed_demo
from wiring.management.commands.seed_demo import SITES, USERS, demo_password


def snapshot() -> dict[str, int]:
    return {
        "sites": Site.objects.count(),
        "users": User.objects.count(),
        "subjects": Subject.objects.count(),
        "visits": Visit.objects.count(),
        "crfs": sum(model.objects.count() for model in CRF_MODELS.values()),
        "queries": Query.objects.count(),
        "signatures": Signature.objects.count(),
        "locks": Lock.objects.count(),
        "subject_history": Subject.history.count(),
        "visit_history": Visit.history.count(),
        "user_history": User.history.count(),
    }


@pytest.fixture
def small_demo(monkeypatch):
    """The demo with a few subjects, for what does not depend on its size."""
    monkeypatch.setattr(seed_demo, "DEMO_SUBJECTS", 4)


def test_seed_demo_twice_changes_nothing(db, small_demo):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    first = snapshot()
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert snapshot() == first
    assert first["subjects"] == 4
    assert User.objects.filter(username__in=[u[0] for u in USERS]).count() == len(USERS)


def test_every_seeded_user_logs_in_and_sees_their_home_page(client, db, capsys, small_demo):
    call_command("seed_demo")
    printed = capsys.readouterr().out
    for username, role, *_ in USERS:
        assert f"{username} " in printed and demo_password(username) in printed
        client.logout()
        response = client.post(
            reverse("login"),
            {"username": username, "password": demo_password(username)},
            follow=True,
        )
        assert response.redirect_chain[-1][0] == reverse("home"), username
        assert response.status_code == 200
        # Each in their own language (the site people in Chinese, the others in English).
        with translation.override(User.objects.get(username=username).language):
            assert str(role.label) in response.content.decode()


def test_site_people_read_the_demo_in_chinese_and_the_others_in_english(client, db,
                                                                       small_demo):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    site_roles = {Role.SITE_STAFF, Role.INVESTIGATOR}
    for user in User.objects.all():
        assert user.language == ("zh-hans" if user.role in site_roles else "en"), user
    assert User.objects.filter(role=Role.SITE_STAFF).count() >= 3
    client.post(reverse("login"), {"username": "nurse", "password": demo_password("nurse")})
    page = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans">' in page
    client.post(reverse("logout"))
    client.post(reverse("login"), {"username": "monitor", "password": demo_password("monitor")})
    page = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<html lang="en">' in page


def test_the_demo_trial_shows_every_state_to_the_demo_users_of_its_sites(client, db):
    # The trial runs up to yesterday: on this day, it is the one make demo served then.
    with time_machine.travel(dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)):
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
        today = timezone.now()

    demo_sites = [code for code, *_ in SITES]
    assert Subject.objects.count() == seed_demo.DEMO_SUBJECTS
    assert set(Subject.objects.values_list("site__code", flat=True)) == set(demo_sites)
    seen = {visit.status_on(local_date(today, visit.subject.site.zone))
            for visit in Visit.objects.select_related("subject__site")}
    assert {VisitStatus.DONE, VisitStatus.MISSED, VisitStatus.DUE, VisitStatus.UPCOMING,
            VisitStatus.NOT_EXPECTED} <= seen
    assert AdverseEvent.objects.filter(is_serious=True).exists()
    queries = set(Query.objects.values_list("status", flat=True))
    assert {QueryStatus.OPEN, QueryStatus.ANSWERED, QueryStatus.CLOSED} <= queries
    assert any(model.objects.filter(sdv_status=SDVStatus.VERIFIED).exists()
               for model in CRF_MODELS.values())
    signed = Signature.objects.filter(visit=None, is_broken=False)
    locked = Lock.objects.filter(scope=LockScope.SUBJECT, unlocked_at__isnull=True)
    assert signed.exists() and locked.exists()
    assert set(locked.values_list("subject", flat=True)) <= set(
        signed.values_list("subject", flat=True))
    # The demo accounts entered it, and each sees the subjects of their sites only.
    assert Subject.history.filter(history_user__username="nurse").exists()
    client.login(username="nurse", password=demo_password("nurse"))
    matrix = client.get(reverse("forms:matrix")).content.decode()
    for subject in Subject.objects.exclude(subject_id=None).select_related("site"):
        assert (subject.subject_id in matrix) == (subject.site.code == "SZ01"), subject

