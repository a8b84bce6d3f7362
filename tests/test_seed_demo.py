from django.core.management import call_command
from django.urls import reverse

from edc.management.commands.seed_demo import USERS, demo_password
from edc.models import Site, User
from visits.models import Subject, SubjectStatus, Visit


def snapshot() -> dict[str, int]:
    return {
        "sites": Site.objects.count(),
        "users": User.objects.count(),
        "subjects": Subject.objects.count(),
        "visits": Visit.objects.count(),
        "subject_history": Subject.history.count(),
        "visit_history": Visit.history.count(),
        "user_history": User.history.count(),
    }


def test_seed_demo_twice_changes_nothing(db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    first = snapshot()
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert snapshot() == first
    assert first["users"] == len(USERS)
    statuses = set(Subject.objects.values_list("status", flat=True))
    assert {SubjectStatus.SCREENING, SubjectStatus.SCREEN_FAILED, SubjectStatus.RANDOMIZED,
            SubjectStatus.WITHDRAWN} <= statuses


def test_every_seeded_user_logs_in_and_sees_their_home_page(client, db, capsys):
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
        assert str(role.label) in response.content.decode()
