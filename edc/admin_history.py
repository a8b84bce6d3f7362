"""django-simple-history's admin pages, answering 404 for an id that names no record.

``SimpleHistoryAdmin`` passes the id from the URL (``/admin/edc/site/<id>/history/`` and
``.../history/<version>/``) straight into a query, so ``/admin/edc/site/abc/history/`` raised a
``ValueError`` (a 500) where the change page answers 404.
"""

from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin


def _id_or_404(field: models.Field, value: str) -> object:
    try:
        return field.to_python(unquote(value))
    except (ValidationError, ValueError, TypeError):
        raise Http404 from None


class HistoryAdmin(SimpleHistoryAdmin):
    def history_view(self, request, object_id, extra_context=None):
        _id_or_404(self.model._meta.pk, object_id)
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        _id_or_404(self.model._meta.pk, object_id)
        history = getattr(self.model, self.model._meta.simple_history_manager_attribute)
        _id_or_404(history.model._meta.pk, version_id)
        return super().history_form_view(request, object_id, version_id,
                                         extra_context=extra_context)
