from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EdcConfig(AppConfig):
    name = "edc"
    verbose_name = _("Trial administration")

    def ready(self) -> None:
        # The audit trail's infrastructure (edc.audit): append-only triggers after each
        # migrate, a hash-chain link for every history row, login and account events.
        from edc import audit

        audit.connect(self)
