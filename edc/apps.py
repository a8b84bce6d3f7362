from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EdcConfig(AppConfig):
    name = "edc"
    verbose_name = _("Trial administration")

    def ready(self) -> None:
        # The audit trail's infrastructure (edc.audit): append-only triggers after each
        # migrate, a hash-chain link for every history row, login and account events.
        from django.contrib.auth.signals import user_logged_in

        from edc import audit, history, sessions

        # First, where Django stamped last_login: a history row without an author fails
        # loudly where AUDIT_REQUIRE_AUTHOR is set, and the sign-in time is an audited save.
        history.connect()
        audit.connect(self)
        # A sign-in is the session's first renewal (edc.middleware.SessionRenewalMiddleware).
        user_logged_in.connect(sessions.renewed_at_login, dispatch_uid="edc.sessions.login")
