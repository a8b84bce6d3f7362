from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WiringConfig(AppConfig):
    name = "wiring"
    verbose_name = _("Project wiring")
