from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExportsConfig(AppConfig):
    """Dataset exports: a layer above the CRFs, which data capture never imports. No models
    of its own (an export's record, ``edc.models.ExportRun``, belongs to the core)."""

    name = "exports"
    verbose_name = _("Exports")
