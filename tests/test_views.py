import datetime as dt

import pytest
from django.urls import reverse

from edc.roles import Role
from edc.services import job_heartbeat
from tests.factories import (
    PASSWORD,
    UserFactory,
    randomization_list,
    randomized_subject,
    screened_subject,
)


def login(client, user):
    response = client.post(
        reverse("login"), {"username": user.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("home")
    return response


def test_anonymous_user_is_sent_to_login(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_page_is_served_with_labels(client, db):
    response = client.get(reverse("login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">' in html
    assert '<label for="id_password">' in html
    assert "Content-Security-Policy" in response.headers


def test_wrong_password_shows_an_error_and_keeps_the_username(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": "wrong"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in html
    assert 'value="nurse"' in html


def test_logout_ends_the_session(client, nurse):
    login(client, nurse)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.parametrize("role", list(Role))
def test_every_role_has_a_home_page(client, site, nurse, role):
    randomized_subject(site=site, user=nurse)
    user = UserFactory(role=role, sites=[site])
    response = login(client, user)
    html = response.content.decode()
    assert response.status_code == 200
    assert str(Role(role).label) in html
    if role in (Role.SITE_STAFF, Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER,
                Role.UNBLINDED_PHARMACIST):
        assert "SZ01-001" in html
    else:
        assert "SZ01-001" not in html
    if role in (Role.MONITOR, Role.DATA_MANAGER, Role.UNBLINDED_STATISTICIAN):
        assert 'id="sites-heading"' in html
    if role == Role.ADMINISTRATOR:
        assert reverse("admin:edc_user_changelist") in html


def test_site_staff_see_only_their_sites_subjects(client, site, other_site, nurse):
    mine = screened_subject(site=site, user=nurse)
    theirs = screened_subject(site=other_site, user=UserFactory(sites=[other_site]))
    login(client, nurse)
    html = client.get(reverse("home")).content.decode()
    assert mine.screening_number in html
    assert theirs.screening_number not in html


def test_data_manager_sees_all_sites(client, site, other_site, nurse):
    mine = screened_subject(site=site, user=nurse)
    theirs = screened_subject(site=other_site, user=UserFactory(sites=[other_site]))
    login(client, UserFactory(role=Role.DATA_MANAGER))
    html = client.get(reverse("home")).content.decode()
    assert mine.screening_number in html and theirs.screening_number in html


def test_times_are_shown_in_the_sites_time_zone(client, site, nurse):
    consent = dt.datetime(2026, 1, 5, 23, 30, tzinfo=dt.UTC)  # 07:30 on 6 Jan in Shenzhen
    screened_subject(site=site, user=nurse, consented_at=consent)
    login(client, nurse)
    html = client.get(reverse("home")).content.decode()
    assert "2026-01-06 07:30" in html
    assert "Asia/Shanghai" in html


def test_user_without_role_is_told_to_ask_for_one(client, site):
    user = UserFactory(role="", sites=[site])
    login(client, user)
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert "no role yet" in response.content.decode()


def test_data_manager_sees_when_background_jobs_last_ran(client, db):
    login(client, UserFactory(role=Role.DATA_MANAGER))
    assert "No background job has run yet" in client.get(reverse("home")).content.decode()
    job_heartbeat(worker="celery@test")
    html = client.get(reverse("home")).content.decode()
    assert "Last heartbeat" in html and "celery@test" in html


def test_home_page_query_count_does_not_grow_with_subjects(
    client, site, nurse, django_assert_max_num_queries
):
    login(client, nurse)
    randomization_list(site, rows_per_stratum=15)
    for _ in range(3):
        randomized_subject(site=site, user=nurse)
    with django_assert_max_num_queries(12) as small:
        client.get(reverse("home"))
    for _ in range(12):
        randomized_subject(site=site, user=nurse)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(reverse("home"))


def test_administrator_manages_sites_and_users_in_admin(client, site):
    admin = UserFactory(role=Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    login(client, admin)
    assert client.get(reverse("admin:edc_site_changelist")).status_code == 200
    assert client.get(reverse("admin:edc_user_changelist")).status_code == 200
    # Users are deactivated, never deleted.
    target = UserFactory(role=Role.SITE_STAFF)
    response = client.get(reverse("admin:edc_user_delete", args=[target.pk]))
    assert response.status_code == 403


def test_static_css_is_served_by_the_application(client, db, live_server):
    import urllib.request

    with urllib.request.urlopen(f"{live_server.url}/static/css/edc.css") as response:  # noqa: S310
        assert response.status == 200
        assert b"--accent" in response.read()


def test_subjects_off_study_have_no_next_or_overdue_visit(client, site, nurse):
    from visits import services
    from visits.models import SubjectStatus

    subject = screened_subject(site=site, user=nurse,
                               consented_at=dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC))
    services.subject_set_status(subject=subject, status=SubjectStatus.SCREEN_FAILED,
                                user=nurse, reason="NIHSS 6", failed_criteria=["IN06"])
    login(client, nurse)
    row = client.get(reverse("home")).context["subject_rows"][0]
    assert (row.next_visit, row.overdue_visits) == (None, 0)
