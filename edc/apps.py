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
        # With split database roles, a migrate (run as the owner) grants the application role
        # its privileges on the tables it added (edc.db_roles).
        from django.db.models.signals import post_migrate

        post_migrate.connect(_grant_application_role, sender=self,
                             dispatch_uid="edc.db_roles.grants")


def _grant_application_role(sender, using="default", **kwargs) -> None:
    from django.conf import settings

    if settings.DATABASE_APP_ROLE:
        from edc.db_roles import db_grants

        db_grants(app=settings.DATABASE_APP_ROLE, using=using)
