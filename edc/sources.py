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
    from simple_history.models import HistoricalRecords

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
