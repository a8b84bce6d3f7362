"""Who may do what, and at which sites. The one place that decides it.

Every view, service and export asks :func:`can` before acting and :func:`scope_to_user`
before reading, so a rule changes here and nowhere else. Blinding is a permission like any
other: only the two unblinded roles hold ``VIEW_ALLOCATION``.
"""

from enum import StrEnum
from typing import TYPE_CHECKING

from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from edc.models import Site, User


class Role(models.TextChoices):
    SITE_STAFF = "site_staff", _("Site staff (research nurse)")
    INVESTIGATOR = "investigator", _("Investigator")
    MONITOR = "monitor", _("Monitor")
    DATA_MANAGER = "data_manager", _("Data manager")
    UNBLINDED_PHARMACIST = "unblinded_pharmacist", _("Unblinded pharmacist")
    UNBLINDED_STATISTICIAN = "unblinded_statistician", _("Unblinded statistician")
    ADMINISTRATOR = "administrator", _("Administrator")


class Action(StrEnum):
    VIEW_SUBJECTS = "view_subjects"
    VIEW_IDENTIFIERS = "view_identifiers"
    SCREEN_SUBJECT = "screen_subject"
    ENTER_DATA = "enter_data"
    RANDOMIZE = "randomize"
    ANSWER_QUERY = "answer_query"
    CONFIRM_ELIGIBILITY = "confirm_eligibility"
    SIGN_CASEBOOK = "sign_casebook"
    EMERGENCY_UNBLIND = "emergency_unblind"
    RAISE_QUERY = "raise_query"
    CLOSE_QUERY = "close_query"
    VERIFY_SOURCE = "verify_source"
    VIEW_AUDIT = "view_audit"
    LOCK_DATA = "lock_data"
    UNLOCK_DATA = "unlock_data"
    EXPORT_BLINDED = "export_blinded"
    EXPORT_UNBLINDED = "export_unblinded"
    VIEW_ALLOCATION = "view_allocation"
    LOAD_RANDOMIZATION_LIST = "load_randomization_list"
    MANAGE_USERS = "manage_users"
    VIEW_DASHBOARD = "view_dashboard"


_SITE_DATA_ENTRY = frozenset(
    {
        Action.VIEW_SUBJECTS,
        Action.VIEW_IDENTIFIERS,
        Action.SCREEN_SUBJECT,
        Action.ENTER_DATA,
        Action.RANDOMIZE,
        Action.ANSWER_QUERY,
    }
)

PERMISSIONS: dict[str, frozenset[Action]] = {
    Role.SITE_STAFF: _SITE_DATA_ENTRY,
    Role.INVESTIGATOR: _SITE_DATA_ENTRY
    | {
        Action.CONFIRM_ELIGIBILITY,
        Action.SIGN_CASEBOOK,
        Action.EMERGENCY_UNBLIND,
        Action.VIEW_AUDIT,
    },
    Role.MONITOR: frozenset(
        {
            Action.VIEW_SUBJECTS,
            Action.RAISE_QUERY,
            Action.CLOSE_QUERY,
            Action.VERIFY_SOURCE,
            Action.VIEW_AUDIT,
            Action.VIEW_DASHBOARD,
        }
    ),
    Role.DATA_MANAGER: frozenset(
        {
            Action.VIEW_SUBJECTS,
            Action.RAISE_QUERY,
            Action.CLOSE_QUERY,
            Action.VIEW_AUDIT,
            Action.LOCK_DATA,
            Action.UNLOCK_DATA,
            Action.EXPORT_BLINDED,
            Action.VIEW_DASHBOARD,
        }
    ),
    # Prepares the infusion bag: needs the subjects of their sites and the allocation, nothing
    # else. Never enters clinical data, so nothing they saw can leak into it.
    Role.UNBLINDED_PHARMACIST: frozenset({Action.VIEW_SUBJECTS, Action.VIEW_ALLOCATION}),
    Role.UNBLINDED_STATISTICIAN: frozenset(
        {
            Action.VIEW_ALLOCATION,
            Action.LOAD_RANDOMIZATION_LIST,
            Action.EXPORT_BLINDED,
            Action.EXPORT_UNBLINDED,
        }
    ),
    # Configures sites and accounts; sees no clinical data (so no clinical audit trail) and no
    # allocation. Account events are in Django admin.
    Role.ADMINISTRATOR: frozenset({Action.MANAGE_USERS}),
}

# Roles whose work spans the whole trial; everyone else works at the sites they are assigned to.
ALL_SITES_ROLES = frozenset(
    {Role.DATA_MANAGER, Role.UNBLINDED_STATISTICIAN, Role.ADMINISTRATOR}
)
UNBLINDED_ROLES = frozenset(
    role for role, actions in PERMISSIONS.items() if Action.VIEW_ALLOCATION in actions
)


def administrator_rights(account) -> frozenset[str]:
    """The administrator rights an account (or one of its history rows) holds: the
    administrator role, Django admin access (``is_staff``), ``is_superuser``."""
    held = {"role": account.role == Role.ADMINISTRATOR, "is_staff": account.is_staff,
            "is_superuser": account.is_superuser}
    return frozenset(name for name, present in held.items() if present)


def has_all_sites(user: "User") -> bool:
    return user.role in ALL_SITES_ROLES


def can(user: "User", action: Action, site: "Site | None" = None) -> bool:
    """May ``user`` do ``action`` (at ``site``, when the action concerns one site's data)?"""
    if not user.is_authenticated or not user.is_active:
        return False
    if action not in PERMISSIONS.get(user.role, frozenset()):
        return False
    if site is None or has_all_sites(user):
        return True
    return site.pk in user.site_pks


def is_blinded(user: "User") -> bool:
    return not can(user, Action.VIEW_ALLOCATION)


def site_ids(user: "User") -> "models.QuerySet":
    """The ids of the sites whose data ``user`` works with. The Site model is reached through the
    user's own relation: the models import these rules, so the rules import no model."""
    sites = user.sites.model.objects.all()
    if not has_all_sites(user):
        sites = sites.filter(members=user)
    return sites.values("pk")


def scope_to_user(
    queryset: models.QuerySet, user: "User", *, site_field: str = "site"
) -> models.QuerySet:
    """Restrict ``queryset`` to the rows of ``user``'s sites (``site_field`` is the lookup path
    from the queryset's model to its Site). Users without a role see nothing."""
    if not user.is_authenticated or not user.is_active or not user.role:
        return queryset.none()
    if has_all_sites(user):
        return queryset
    return queryset.filter(**{f"{site_field}__in": site_ids(user)})
