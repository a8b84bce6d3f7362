from django.conf import settings

from edc import bounds, protocol
from edc.roles import Action, Role, can
from exports.views import may_use_exports
from forms.review.audit_sources import may_view_audit


def trial(request) -> dict:
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "trial_name": settings.TRIAL_NAME,
        # Lengths of free text typed outside model forms (the maxlength of those inputs).
        "limits": {"reason": bounds.REASON, "text": bounds.DESCRIPTION,
                   "filter": bounds.FILTER},
        "trial_registry_id": protocol.TRIAL_REGISTRY_ID,
        "role_label": Role(user.role).label if signed_in and user.role else "",
        "nav_subjects": signed_in and can(user, Action.VIEW_SUBJECTS),
        "nav_queries": signed_in and (can(user, Action.RAISE_QUERY)
                                      or can(user, Action.ANSWER_QUERY)),
        "nav_sdv": signed_in and (can(user, Action.VERIFY_SOURCE) or can(user, Action.LOCK_DATA)),
        "nav_locks": signed_in and can(user, Action.LOCK_DATA),
        "nav_audit": signed_in and may_view_audit(user),
        "nav_dashboard": signed_in and can(user, Action.VIEW_DASHBOARD),
        "nav_exports": signed_in and may_use_exports(user),
        "nav_notifications": signed_in,
        "nav_pharmacy": signed_in and can(user, Action.VIEW_ALLOCATION)
        and can(user, Action.VIEW_SUBJECTS),
    }
