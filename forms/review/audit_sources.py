"""What the audit trail reads and who may read it: the history tables (sources), grouped as
clinical data, direct identifiers and the allocation; the actions and columns of a trail row;
the trail as CSV cells. The reading and the descriptions are in ``forms.review.audit``."""

import datetime as dt
from dataclasses import dataclass
from functools import cache

from django.db import models
from django.utils.functional import Promise
from django.utils.text import capfirst
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from edc import protocol
from edc.i18n import shown
from edc.models import User
from edc.roles import Action, can
from edc.sources import Source
from forms.models import CRF_MODELS, Query, QueryMessage
from forms.models.signoff import Lock, Signature
from visits.models import (
    KitAssignment,
    RandomizationSlot,
    Subject,
    SubjectIdentity,
    Unblinding,
    Visit,
)

CREATED, CHANGED, DELETED = "created", "changed", "deleted"



ACTION_LABELS = {CREATED: _("Created"), CHANGED: _("Changed"), DELETED: _("Deleted")}



_HISTORY_ACTIONS = {"+": CREATED, "~": CHANGED, "-": DELETED}



# Bookkeeping columns: the record's key, its optimistic-locking counter and save times (the
# history row carries the time itself).
_BOOKKEEPING = frozenset({"id", "version", "created_at", "updated_at"})



CLINICAL, IDENTITY, ALLOCATION = "clinical", "identity", "allocation"



@dataclass(frozen=True)
class AuditSource:
    """One audited model: how its history rows reach their subject, and who may see them."""

    key: str
    model: type[models.Model]
    label: "str | Promise"
    # Lookup from a history row to its subject's id.
    subject_path: str = "subject_id"
    # Lookup matched against a record's primary key when the trail is of one record.
    record_path: str = "id"
    # Fields the record description already says (its subject, visit, …).
    context_fields: frozenset[str] = frozenset({"subject"})
    gate: str = CLINICAL



def _sources() -> list[AuditSource]:
    crf_context = frozenset({"subject", "visit"})
    return [
        AuditSource("subject", Subject, Subject._meta.verbose_name, subject_path="id",
                    context_fields=frozenset()),
        AuditSource("visit", Visit, Visit._meta.verbose_name),
        *(AuditSource(code, model, protocol.crf(code).label, context_fields=crf_context)
          for code, model in CRF_MODELS.items()),
        AuditSource("query", Query, Query._meta.verbose_name,
                    context_fields=frozenset({"subject", "content_type", "object_id"})),
        AuditSource("query", QueryMessage, QueryMessage._meta.verbose_name,
                    subject_path="query__subject_id", record_path="query_id",
                    context_fields=frozenset({"query"})),
        AuditSource("kit", KitAssignment, _("kit assignment")),
        AuditSource("signature", Signature, _("electronic signature"),
                    context_fields=frozenset({"subject", "visit"})),
        # Site and trial locks have no subject: they are listed on the locks page.
        AuditSource("lock", Lock, _("data lock"),
                    context_fields=frozenset({"subject", "content_type", "object_id"})),
        AuditSource("unblinding", Unblinding, _("emergency unblinding")),
        AuditSource("identity", SubjectIdentity, SubjectIdentity._meta.verbose_name,
                    gate=IDENTITY),
        # The allocation itself is the change of ``subject``: it stays a field here.
        AuditSource("randomization", RandomizationSlot, RandomizationSlot._meta.verbose_name,
                    context_fields=frozenset(), gate=ALLOCATION),
    ]



SOURCES = _sources()



@dataclass(frozen=True)
class AuditRow:
    when: dt.datetime  # UTC
    who: str
    action: str  # created / changed / deleted
    model: str
    record: str
    field_label: str
    field: str  # the field's code
    old_value: str
    new_value: str
    reason: str
    source: str
    subject_pk: int
    record_pk: int
    time_zone: str  # the subject's site zone, for display
    # How the change came in (``edc.sources.Source``: web page, API, file import, system
    # job), checklist ER-07; empty for rows written before it was recorded.
    channel: str = ""

    @property
    def reason_shown(self) -> str:
        """The reason in the reader's language when the system wrote it (``edc.i18n``)."""
        return shown(self.reason)

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS[self.action])

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)


def channel_label(code: str) -> str:
    """The name of the way a change came in, in the reader's language ("" when unknown)."""
    return str(Source(code).label) if code in Source.values else ""



def may_view_audit(user: User) -> bool:
    """Readers of the trail: those who may view the audit trail, and the unblinded
    statistician, who owns the randomization list and audits its use (allocation rows only)."""
    return can(user, Action.VIEW_AUDIT) or _may_audit_allocation_only(user)



def _may_audit_allocation_only(user: User) -> bool:
    return (not can(user, Action.VIEW_AUDIT) and can(user, Action.VIEW_ALLOCATION)
            and can(user, Action.LOAD_RANDOMIZATION_LIST))



def sources_for(user: User) -> list[AuditSource]:
    """The audited models whose rows ``user`` may see at some site (each row is checked again
    against its own site)."""
    if _may_audit_allocation_only(user):
        return [s for s in SOURCES if s.gate == ALLOCATION]
    if not can(user, Action.VIEW_AUDIT):
        return []
    gates = {CLINICAL}
    if can(user, Action.VIEW_IDENTIFIERS):
        gates.add(IDENTITY)
    if can(user, Action.VIEW_ALLOCATION):
        gates.add(ALLOCATION)
    return [s for s in SOURCES if s.gate in gates]



def source_choices(user: User) -> list[tuple[str, str]]:
    """(key, label) of the forms and record types ``user`` may filter on, in protocol order."""
    seen: dict[str, str] = {}
    for source in sources_for(user):
        seen.setdefault(source.key, capfirst(str(source.label)))
    return list(seen.items())



_GATE_ACTION = {IDENTITY: Action.VIEW_IDENTIFIERS, ALLOCATION: Action.VIEW_ALLOCATION}



@cache
def _tracked_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The fields a model's history tracks. Read once: simple-history builds a new manager
    class on every ``Model.history`` access, which made exporting the trail crawl."""
    return tuple(model.history.model.tracked_fields)



@cache
def _choice_labels(f: models.Field) -> dict:
    return dict(f.flatchoices)



def _fields(source: AuditSource) -> list[models.Field]:
    return [f for f in _tracked_fields(source.model)
            if f.name not in _BOOKKEEPING and f.name not in source.context_fields]



# (id of the label, language) → (the label, kept alive so its id is never reused; its text).
_TEXTS: dict[tuple[int, str | None], tuple[object, str]] = {}


def _text(label, language: str | None = None) -> str:
    """A model's or field's (lazily translated) label, capitalized, translated once per
    language: the trail repeats the same few labels thousands of times."""
    key = (id(label), language or get_language())
    if key not in _TEXTS:
        _TEXTS[key] = (label, capfirst(str(label)))
    return _TEXTS[key][1]



def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}



CSV_COLUMNS = ("time_utc", "user", "action", "model", "record", "field", "old_value",
               "new_value", "reason", "channel")



def csv_cells(row: AuditRow) -> list[str]:
    """One CSV line: UTC time, the field as "label (code)"; cells that a spreadsheet would
    run as a formula are prefixed with an apostrophe (OWASP, CSV injection)."""
    cells = [
        row.when.strftime("%Y-%m-%dT%H:%M:%SZ"), row.who, row.action, row.model, row.record,
        f"{row.field_label} ({row.field})", row.old_value, row.new_value, row.reason,
        row.channel,
    ]
    return [_inert(cell) for cell in cells]



def _inert(cell: str) -> str:
    if cell[:1] in ("=", "+", "@", "\t", "\r") or (
        cell[:1] == "-" and not cell[1:2].isdigit()
    ):
        return "'" + cell
    return cell
