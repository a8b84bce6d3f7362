"""The permission matrix: every role x every action x own site / other site.

The expected matrix is written out here independently of edc/roles.py, so a change to who may
do what must be made on purpose in both places.
"""

import pytest

from edc.roles import Action, Role, can, is_blinded, scope_to_user
from tests.factories import SiteFactory, UserFactory, screened_subject
from visits.models import Subject

A = Action
SITE = {  # roles working at their assigned sites
    Role.SITE_STAFF: {A.VIEW_SUBJECTS, A.VIEW_IDENTIFIERS, A.SCREEN_SUBJECT, A.ENTER_DATA,
                      A.RANDOMIZE, A.ANSWER_QUERY},
    Role.INVESTIGATOR: {A.VIEW_SUBJECTS, A.VIEW_IDENTIFIERS, A.SCREEN_SUBJECT, A.ENTER_DATA,
                        A.RANDOMIZE, A.ANSWER_QUERY, A.CONFIRM_ELIGIBILITY, A.SIGN_CASEBOOK,
                        A.EMERGENCY_UNBLIND, A.VIEW_AUDIT},
    Role.MONITOR: {A.VIEW_SUBJECTS, A.RAISE_QUERY, A.CLOSE_QUERY, A.VERIFY_SOURCE, A.VIEW_AUDIT,
                   A.VIEW_DASHBOARD},
    Role.UNBLINDED_PHARMACIST: {A.VIEW_SUBJECTS, A.VIEW_ALLOCATION},
}
TRIAL_WIDE = {  # roles working across all sites
    Role.DATA_MANAGER: {A.VIEW_SUBJECTS, A.RAISE_QUERY, A.CLOSE_QUERY, A.VIEW_AUDIT,
                        A.LOCK_DATA, A.UNLOCK_DATA, A.EXPORT_BLINDED, A.VIEW_DASHBOARD,
                        A.IMPORT_DATA},
    Role.UNBLINDED_STATISTICIAN: {A.VIEW_ALLOCATION, A.LOAD_RANDOMIZATION_LIST, A.EXPORT_BLINDED,
                                  A.EXPORT_UNBLINDED},
    Role.ADMINISTRATOR: {A.MANAGE_USERS},
}


def expected(role: Role, action: Action, where: str) -> bool:
    if role in TRIAL_WIDE:
        return action in TRIAL_WIDE[role]
    return action in SITE[role] and where == "own"


def test_matrix_covers_every_role():
    assert set(SITE) | set(TRIAL_WIDE) == set(Role)


@pytest.fixture
def two_sites(db):
    return SiteFactory(code="OWN"), SiteFactory(code="OTH")


@pytest.mark.parametrize("role", list(Role))
def test_permission_matrix(two_sites, role):
    own, other = two_sites
    user = UserFactory(role=role, sites=[own] if role in SITE else [])
    got = {
        (action, where): can(user, action, site)
        for action in Action
        for where, site in (("own", own), ("other", other))
    }
    want = {
        (action, where): expected(role, action, where)
        for action in Action
        for where in ("own", "other")
    }
    assert got == want


@pytest.mark.parametrize("role", list(Role))
def test_querysets_are_scoped_to_the_users_sites(two_sites, role):
    own, other = two_sites
    staff = UserFactory(role=Role.SITE_STAFF, sites=[own, other])
    mine = screened_subject(site=own, user=staff)
    theirs = screened_subject(site=other, user=staff)
    user = UserFactory(role=role, sites=[own] if role in SITE else [])
    visible = set(scope_to_user(Subject.objects.all(), user))
    assert visible == ({mine, theirs} if role in TRIAL_WIDE else {mine})


def test_only_unblinded_roles_see_the_allocation(db):
    blinded = {role for role in Role if is_blinded(UserFactory(role=role))}
    assert set(Role) - blinded == {Role.UNBLINDED_PHARMACIST, Role.UNBLINDED_STATISTICIAN}


def test_inactive_or_roleless_users_may_do_nothing(two_sites):
    own, _ = two_sites
    inactive = UserFactory(role=Role.DATA_MANAGER, is_active=False)
    roleless = UserFactory(role="", sites=[own])
    for user in (inactive, roleless):
        assert not any(can(user, action, own) for action in Action)
        assert not scope_to_user(Subject.objects.all(), user).exists()
