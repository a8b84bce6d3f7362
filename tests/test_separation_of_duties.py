"""Separation of duties (issue 14 item 8; DESIGN.md "Trust at the edges"): nobody changes their
own role, sites or active state; an unblinded role takes a second administrator; an
administrator account is never unblinded; every such change is an audit event."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from edc import services
from edc.models import AuditAction, AuditEvent, RoleGrantRequest, RoleGrantStatus, User
from edc.roles import Role
from tests.factories import PASSWORD, UserFactory


@pytest.fixture
def first_admin(db):
    return UserFactory(username="admin.one", role=Role.ADMINISTRATOR, is_staff=True,
                       is_superuser=True)


@pytest.fixture
def second_admin(db):
    return UserFactory(username="admin.two", role=Role.ADMINISTRATOR, is_staff=True,
                       is_superuser=True)


@pytest.fixture
def pharmacist_to_be(site):
    # A colleague who has signed in and chosen their own password (an unblinded role is not
    # approved on a password an administrator set).
    return UserFactory(username="chen.jing", role=Role.SITE_STAFF, sites=[site],
                       password_chosen_by_holder=True)


def change_form(client, user, **changes):
    """POST the admin's change form for ``user`` as it stands, with ``changes``."""
    data = {
        "username": user.username, "first_name": user.first_name,
        "last_name": user.last_name, "email": user.email, "role": user.role,
        "sites": [s.pk for s in user.sites.all()], "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "", "is_superuser": "on" if user.is_superuser
        else "", "groups": [],
    }
    data.update(changes)
    data = {key: value for key, value in data.items() if value != ""}
    return client.post(reverse("admin:edc_user_change", args=[user.pk]), data)


# --- Nobody changes their own role, sites or active state ------------------------------------


@pytest.mark.parametrize("change", [
    {"role": Role.UNBLINDED_PHARMACIST, "is_staff": "", "is_superuser": ""},
    {"role": Role.UNBLINDED_STATISTICIAN, "is_staff": "", "is_superuser": ""},
    {"role": Role.DATA_MANAGER},
    {"is_active": ""},
    {"is_superuser": ""},
])
def test_an_administrator_cannot_change_their_own_account_in_the_admin(
    client, first_admin, change
):
    client.force_login(first_admin)
    response = change_form(client, first_admin, **change)
    assert response.status_code == 200
    assert "Nobody changes their own role, sites, active state" in response.content.decode()
    first_admin.refresh_from_db()
    assert (first_admin.role, first_admin.is_active, first_admin.is_superuser) == (
        Role.ADMINISTRATOR, True, True)
    assert not RoleGrantRequest.objects.exists()
    client.force_login(first_admin)
    assert client.get(reverse("visits:pharmacy")).status_code == 403


def test_an_administrator_cannot_give_themself_sites(client, first_admin, site):
    client.force_login(first_admin)
    response = change_form(client, first_admin, sites=[site.pk])
    assert "Nobody changes their own role, sites" in response.content.decode()
    assert not first_admin.sites.exists()


def test_the_service_refuses_an_own_account_change_too(first_admin, site):
    first_admin.is_active = False
    with pytest.raises(ValidationError, match="Nobody changes their own"):
        services.user_save(actor=first_admin, user=first_admin)
    first_admin.refresh_from_db()
    with pytest.raises(ValidationError, match="Nobody changes their own"):
        services.user_save(actor=first_admin, user=first_admin, sites=[site])
    with pytest.raises(ValidationError, match="Nobody asks for a role for themself"):
        services.role_grant_request(user=first_admin, role=Role.UNBLINDED_PHARMACIST,
                                    requester=first_admin)
    first_admin.refresh_from_db()
    assert first_admin.is_active and not first_admin.sites.exists()


def test_an_administrator_can_still_edit_their_own_name(client, first_admin):
    client.force_login(first_admin)
    response = change_form(client, first_admin, first_name="Yan", last_name="Li")
    assert response.status_code == 302
    first_admin.refresh_from_db()
    assert first_admin.get_full_name() == "Yan Li"


# --- An unblinded role takes a second administrator ------------------------------------------


def test_an_unblinded_role_waits_for_a_second_administrator(
    client, first_admin, second_admin, pharmacist_to_be
):
    client.force_login(first_admin)
    response = change_form(client, pharmacist_to_be, role=Role.UNBLINDED_PHARMACIST)
    assert response.status_code == 302
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.role == Role.SITE_STAFF
    grant = RoleGrantRequest.objects.get()
    assert (grant.user, grant.role, grant.requested_by, grant.status) == (
        pharmacist_to_be, Role.UNBLINDED_PHARMACIST, first_admin, RoleGrantStatus.PENDING)
    requested = AuditEvent.objects.get(action=AuditAction.ROLE_GRANT_REQUESTED)
    assert (requested.user, requested.detail["from"], requested.detail["to"]) == (
        first_admin, Role.SITE_STAFF, Role.UNBLINDED_PHARMACIST)

    # Meanwhile the allocation stays closed.
    client.force_login(pharmacist_to_be)
    assert client.get(reverse("visits:pharmacy")).status_code == 403

    # The requester cannot approve their own request ...
    client.force_login(first_admin)
    changelist = reverse("admin:edc_rolegrantrequest_changelist")
    response = client.post(changelist, {"action": "approve", "_selected_action": [grant.pk]},
                           follow=True)
    assert "cannot decide on it: a second administrator" in response.content.decode()
    grant.refresh_from_db()
    assert grant.status == RoleGrantStatus.PENDING
    client.force_login(pharmacist_to_be)
    assert client.get(reverse("visits:pharmacy")).status_code == 403

    # ... a second administrator can.
    client.force_login(second_admin)
    response = client.post(changelist, {"action": "approve", "_selected_action": [grant.pk]},
                           follow=True)
    assert "approved" in response.content.decode()
    grant.refresh_from_db()
    assert (grant.status, grant.decided_by) == (RoleGrantStatus.APPROVED, second_admin)
    assert grant.decided_at >= grant.requested_at
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.role == Role.UNBLINDED_PHARMACIST
    approved = AuditEvent.objects.get(action=AuditAction.ROLE_GRANT_APPROVED)
    assert (approved.user, approved.detail["requested_by"]) == (second_admin, "admin.one")
    role = AuditEvent.objects.get(action=AuditAction.ROLE_CHANGED,
                                  object_id=str(pharmacist_to_be.pk))
    assert (role.user, role.detail["from"], role.detail["to"]) == (
        second_admin, Role.SITE_STAFF, Role.UNBLINDED_PHARMACIST)
    client.force_login(pharmacist_to_be)
    assert client.get(reverse("visits:pharmacy")).status_code == 200


def test_a_refused_request_changes_nothing_and_is_audited(
    first_admin, second_admin, pharmacist_to_be
):
    grant = services.role_grant_request(user=pharmacist_to_be,
                                        role=Role.UNBLINDED_STATISTICIAN, requester=first_admin)
    services.role_grant_decide(grant=grant, approver=second_admin, approve=False)
    grant.refresh_from_db()
    pharmacist_to_be.refresh_from_db()
    assert (grant.status, grant.decided_by, pharmacist_to_be.role) == (
        RoleGrantStatus.REFUSED, second_admin, Role.SITE_STAFF)
    assert AuditEvent.objects.filter(action=AuditAction.ROLE_GRANT_REFUSED,
                                     user=second_admin).exists()
    with pytest.raises(ValidationError, match="already decided"):
        services.role_grant_decide(grant=grant, approver=second_admin, approve=True)


def test_a_new_account_with_an_unblinded_role_is_created_without_it(
    client, first_admin, site
):
    client.force_login(first_admin)
    response = client.post(reverse("admin:edc_user_add"), {
        "username": "new.pharmacist", "first_name": "Jing", "last_name": "Chen",
        "password1": "river-lantern-quietly-47", "password2": "river-lantern-quietly-47",
        "usable_password": "true", "role": Role.UNBLINDED_PHARMACIST, "sites": [site.pk],
    })
    assert response.status_code == 302
    user = User.objects.get(username="new.pharmacist")
    assert user.role == ""
    assert RoleGrantRequest.objects.get().user == user


def test_the_database_refuses_a_request_decided_by_its_requester(
    first_admin, pharmacist_to_be
):
    grant = services.role_grant_request(user=pharmacist_to_be,
                                        role=Role.UNBLINDED_PHARMACIST, requester=first_admin)
    with pytest.raises(ValidationError, match="second administrator"):
        services.role_grant_decide(grant=grant, approver=first_admin, approve=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleGrantRequest.objects.filter(pk=grant.pk).update(
            status=RoleGrantStatus.APPROVED, decided_by=first_admin, decided_at=grant.requested_at)


# --- An administrator account is never unblinded ----------------------------------------------


def test_an_administrator_account_is_never_given_an_unblinded_role(
    client, first_admin, second_admin, pharmacist_to_be
):
    client.force_login(first_admin)
    response = change_form(client, second_admin, role=Role.UNBLINDED_PHARMACIST)
    assert "never given an unblinded role" in response.content.decode()
    with pytest.raises(ValidationError, match="never given an unblinded role"):
        services.role_grant_request(user=second_admin, role=Role.UNBLINDED_PHARMACIST,
                                    requester=first_admin)
    # A pending request for someone who became staff meanwhile is refused at approval.
    grant = services.role_grant_request(user=pharmacist_to_be,
                                        role=Role.UNBLINDED_PHARMACIST, requester=first_admin)
    pharmacist_to_be.is_staff = True
    services.user_save(actor=first_admin, user=pharmacist_to_be)
    with pytest.raises(ValidationError, match="never given an unblinded role"):
        services.role_grant_decide(grant=grant, approver=second_admin, approve=True)
    # Nor can an unblinded user be made staff, by the form or behind it.
    pharmacist = UserFactory(role=Role.UNBLINDED_PHARMACIST)
    response = change_form(client, pharmacist, is_staff="on")
    assert "never given an unblinded role" in response.content.decode()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=pharmacist.pk).update(is_superuser=True)


# --- Every role, site and active-state change is audited with old and new values -----------


def test_account_changes_record_old_and_new_values(client, first_admin, site, other_site):
    nurse = UserFactory(username="wu.min", role=Role.SITE_STAFF, sites=[site])
    client.force_login(first_admin)
    assert change_form(client, nurse, role=Role.INVESTIGATOR,
                       sites=[site.pk, other_site.pk]).status_code == 302
    nurse.refresh_from_db()
    assert change_form(client, nurse, is_active="").status_code == 302
    nurse.refresh_from_db()
    assert change_form(client, nurse, is_active="on").status_code == 302
    events = {e.action: e for e in AuditEvent.objects.filter(object_id=str(nurse.pk),
                                                              user=first_admin)}
    assert events[AuditAction.ROLE_CHANGED].detail | {"username": "wu.min"} == {
        "username": "wu.min", "from": "site_staff", "to": "investigator"}
    sites = events[AuditAction.SITES_CHANGED]
    assert (sites.detail["from"], sites.detail["to"]) == (["SZ01"], ["GZ02", "SZ01"])
    assert events[AuditAction.USER_DEACTIVATED].detail["to"] is False
    assert events[AuditAction.USER_REACTIVATED].detail == {
        "username": "wu.min", "from": False, "to": True}


# --- Nobody but its holder sets the password of an unblinded account -------------------------

NEW_PASSWORD = "amber-harbour-quietly-58"
OWN_PASSWORD = "violet-orchard-slowly-93"


def set_password_in_admin(client, user, password=NEW_PASSWORD):
    return client.post(reverse("admin:auth_user_password_change", args=[user.pk]),
                       {"password1": password, "password2": password,
                        "usable_password": "true"}, follow=True)


@pytest.mark.parametrize("role", [Role.UNBLINDED_PHARMACIST, Role.UNBLINDED_STATISTICIAN])
def test_an_administrator_cannot_set_the_password_of_an_unblinded_account(
    client, first_admin, role
):
    unblinded = UserFactory(username="unblinded.one", role=role)
    client.force_login(first_admin)
    page = client.get(reverse("admin:auth_user_password_change", args=[unblinded.pk]))
    assert "nobody else sets their password" in page.content.decode()
    response = set_password_in_admin(client, unblinded)
    assert response.status_code == 200
    page = response.content.decode()
    assert "holds an unblinded role, so nobody else sets their password" in page
    assert "/accounts/password/" in page
    unblinded.refresh_from_db()
    assert unblinded.check_password(PASSWORD) and not unblinded.check_password(NEW_PASSWORD)
    assert not client.login(username="unblinded.one", password=NEW_PASSWORD)
    assert not AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGED).exists()
    # Behind the form, the service refuses too.
    with pytest.raises(ValidationError, match="nobody else sets their password"):
        services.user_password_set(user=unblinded, password=NEW_PASSWORD, actor=first_admin)
    unblinded.refresh_from_db()
    assert unblinded.check_password(PASSWORD)
    # The holder changes it themself.
    client.force_login(unblinded)
    response = client.post(reverse("password_change"), {
        "old_password": PASSWORD, "new_password1": OWN_PASSWORD, "new_password2": OWN_PASSWORD})
    assert response.status_code == 302
    unblinded.refresh_from_db()
    assert unblinded.check_password(OWN_PASSWORD)


def test_an_unblinded_role_is_not_approved_on_a_password_an_administrator_set(
    client, first_admin, second_admin, pharmacist_to_be
):
    # The lost-password path: the administrator (allowed: the account is blinded) sets a
    # temporary password and asks for the role; approval waits for the holder's own password.
    client.force_login(first_admin)
    response = set_password_in_admin(client, pharmacist_to_be)
    assert response.status_code == 200 and "nobody else sets" not in response.content.decode()
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.check_password(NEW_PASSWORD)
    assert not pharmacist_to_be.password_chosen_by_holder
    grant = services.role_grant_request(user=pharmacist_to_be, role=Role.UNBLINDED_PHARMACIST,
                                        requester=first_admin)
    client.force_login(second_admin)
    changelist = reverse("admin:edc_rolegrantrequest_changelist")
    response = client.post(changelist, {"action": "approve", "_selected_action": [grant.pk]},
                           follow=True)
    assert "still has a password an administrator set" in response.content.decode()
    grant.refresh_from_db()
    pharmacist_to_be.refresh_from_db()
    assert (grant.status, pharmacist_to_be.role) == (RoleGrantStatus.PENDING, Role.SITE_STAFF)

    # The holder chooses their own password; now the second administrator can approve, and
    # nobody else may set it any more.
    client.force_login(pharmacist_to_be)
    assert client.post(reverse("password_change"), {
        "old_password": NEW_PASSWORD, "new_password1": OWN_PASSWORD,
        "new_password2": OWN_PASSWORD}).status_code == 302
    services.role_grant_decide(grant=grant, approver=second_admin, approve=True)
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.role == Role.UNBLINDED_PHARMACIST
    client.force_login(first_admin)
    assert "nobody else sets" in set_password_in_admin(client, pharmacist_to_be).content.decode()
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.check_password(OWN_PASSWORD)


def test_a_new_account_is_not_unblinded_on_the_password_its_creator_typed(
    client, first_admin, second_admin, site
):
    client.force_login(first_admin)
    response = client.post(reverse("admin:edc_user_add"), {
        "username": "new.pharmacist", "first_name": "Hong", "last_name": "Sun",
        "email": "hs@hospital.example", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
        "usable_password": "true", "role": Role.UNBLINDED_PHARMACIST, "sites": [site.pk]})
    assert response.status_code == 302
    grant = RoleGrantRequest.objects.get(user__username="new.pharmacist")
    with pytest.raises(ValidationError, match="still has a password an administrator set"):
        services.role_grant_decide(grant=grant, approver=second_admin, approve=True)
    assert User.objects.get(username="new.pharmacist").role != Role.UNBLINDED_PHARMACIST


# --- The second administrator is not one the requester made ---------------------------------


def test_an_administrator_the_requester_made_cannot_approve(
    client, first_admin, second_admin, pharmacist_to_be
):
    # Administrator one creates a second account and gives it administrator rights ...
    client.force_login(first_admin)
    assert client.post(reverse("admin:edc_user_add"), {
        "username": "puppet", "first_name": "Pu", "last_name": "Ppet",
        "email": "pp@hospital.example", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
        "usable_password": "true", "role": Role.ADMINISTRATOR}).status_code == 302
    puppet = User.objects.get(username="puppet")
    assert change_form(client, puppet, is_staff="on", is_superuser="on").status_code == 302
    puppet.refresh_from_db()
    given = AuditEvent.objects.filter(action=AuditAction.ADMINISTRATOR_RIGHTS_GIVEN,
                                      object_id=str(puppet.pk))
    assert [(e.user, e.detail["given"]) for e in given.order_by("pk")] == [
        (first_admin, ["role"]), (first_admin, ["is_staff", "is_superuser"])]
    response = change_form(client, pharmacist_to_be, role=Role.UNBLINDED_PHARMACIST)
    assert response.status_code == 302
    grant = RoleGrantRequest.objects.get()

    # ... signs in as it and tries to approve their own request: refused.
    assert client.login(username="puppet", password=NEW_PASSWORD)
    changelist = reverse("admin:edc_rolegrantrequest_changelist")
    response = client.post(changelist, {"action": "approve", "_selected_action": [grant.pk]},
                           follow=True)
    assert "created the other&#x27;s account or gave it administrator rights" in (
        response.content.decode())
    grant.refresh_from_db()
    pharmacist_to_be.refresh_from_db()
    assert (grant.status, pharmacist_to_be.role) == (RoleGrantStatus.PENDING, Role.SITE_STAFF)
    # Nor the other way round (the made account asks, its maker approves), nor through a
    # chain of made accounts.
    with pytest.raises(ValidationError, match="created the other's account"):
        services.role_grant_decide(grant=grant, approver=puppet, approve=False)
    other = UserFactory(role=Role.SITE_STAFF, password_chosen_by_holder=True)
    reverse_grant = services.role_grant_request(user=other, role=Role.UNBLINDED_STATISTICIAN,
                                                requester=puppet)
    with pytest.raises(ValidationError, match="created the other's account"):
        services.role_grant_decide(grant=reverse_grant, approver=first_admin, approve=True)
    grandchild = UserFactory(username="grandchild", role=Role.SITE_STAFF)
    grandchild._history_user = puppet
    grandchild.role, grandchild.is_staff = Role.ADMINISTRATOR, True
    services.user_save(actor=puppet, user=grandchild)
    with pytest.raises(ValidationError, match="created the other's account"):
        services.role_grant_decide(grant=grant, approver=grandchild, approve=True)

    # An independent administrator approves.
    services.role_grant_decide(grant=grant, approver=second_admin, approve=True)
    pharmacist_to_be.refresh_from_db()
    assert pharmacist_to_be.role == Role.UNBLINDED_PHARMACIST
