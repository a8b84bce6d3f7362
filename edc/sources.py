"""Where a change came from (checklist ER-07): the web pages, the API, a file import or a
system job. Every history row and every audit event records it.

The source is a context variable: the API view, the data import page, Celery jobs and
management commands set it with :func:`audit_source` around their work; a request served by
the web pages needs nothing (a history row written while simple-history's middleware holds a
request is ``web``); anything else (a job, a command, a shell) is ``system``.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.manager import HistoryManager
from simple_history.models import HistoricalRecords


class Source(models.TextChoices):
    WEB = "web", _("Web page")
    API = "api", _("API")
    FILE_IMPORT = "import", _("File import")
    SYSTEM = "system", _("System job")


SOURCE_LENGTH = 10
_current: ContextVar[str | None] = ContextVar("edc_audit_source", default=None)


@contextmanager
def audit_source(source: Source) -> Iterator[None]:
    """Record ``source`` on every history row and audit event written inside the block."""
    token = _current.set(Source(source))
    try:
        yield
    finally:
        _current.reset(token)


def current_source() -> str:
    """The source of what is being written now (see the module docstring)."""
    explicit = _current.get()
    if explicit is not None:
        return explicit
    serving = getattr(HistoricalRecords.context, "request", None) is not None
    return Source.WEB if serving else Source.SYSTEM


class SourcedHistory(models.Model):
    """The column every history table adds to simple-history's own (``HistoricalRecords(
    bases=[SourcedHistory])``), set as each row is created (``edc.audit``). Empty on rows
    written before sources were recorded."""

    history_source = models.CharField(_("source"), max_length=SOURCE_LENGTH,
                                      choices=Source.choices, default="", blank=True)

    class Meta:
        abstract = True


class HistoryManagerOnce(HistoryManager):
    """simple-history's manager of history rows, its class made once per queryset class.
    simple-history (3.13) makes a new manager class (``Manager.from_queryset``, which walks
    the queryset's members) on every read of ``Model.history``, and it reads it once for each
    history row it writes: a third of a millisecond per audited save."""

    @classmethod
    def from_queryset(cls, queryset_class, class_name=None):
        key = (cls, queryset_class, class_name)
        made = _MANAGER_CLASSES.get(key)
        if made is None:
            made = _MANAGER_CLASSES[key] = super().from_queryset(queryset_class, class_name)
        return made


_MANAGER_CLASSES: dict[tuple, type] = {}


def audited_history(**options) -> HistoricalRecords:
    """The history of an audited model: simple-history's, with the source of each row
    (:class:`SourcedHistory`)."""
    return HistoricalRecords(bases=[SourcedHistory], history_manager=HistoryManagerOnce,
                             **options)
