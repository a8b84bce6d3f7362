"""What an edit check is, and the data a check sees.

A check is a small pure function over one record (a CRF or a visit) and the subject's other
data, returning the items that fail it. Hard checks refuse the save; soft checks accept it
and open a query on each failing item, which closes itself when the data pass again.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.utils.functional import Promise

from visits.models import Subject, Visit

HARD = "hard"
SOFT = "soft"
VISIT = "visit"  # the form code of checks on the visit record itself
KITS = "kits"  # in ``Check.reads``: the subject's kit allocation (``SubjectData.kits``)


@dataclass
class SubjectData:
    """A subject's saved records, loaded once for a run of every check."""

    subject: Subject
    visits: dict[int, Visit]
    forms: dict[str, list[Any]] = field(default_factory=dict)
    kits: dict[int, str] = field(default_factory=dict)
    # Forms read only when a check first asks for them (a record's value may make reading
    # them unnecessary: no fever, no adverse event to look for), by code → loader.
    later: dict[str, Callable[[], list[Any]]] = field(default_factory=dict)

    def all(self, code: str) -> list[Any]:
        if code not in self.forms and code in self.later:
            self.forms[code] = self.later.pop(code)()
        return self.forms.get(code, [])

    def keep(self, record: Any) -> None:
        """Put ``record`` (just saved, or about to be) in place of its stored copy, in the
        data read by the checks; a form or the visits not loaded are read by none of them."""
        if isinstance(record, Visit):
            if record.pk in self.visits:
                self.visits[record.pk] = record
            return
        records = self.forms.get(record.crf_code)
        if records is None or any(kept is record for kept in records):
            return
        for index, kept in enumerate(records):
            if record.pk is not None and kept.pk == record.pk:
                records[index] = record
                return
        records.append(record)

    def at(self, code: str, visit_code: str) -> Any | None:
        for record in self.all(code):
            visit = self.visits.get(record.visit_id)
            if visit is not None and visit.code == visit_code:
                return record
        return None


@dataclass(frozen=True)
class Check:
    code: str
    form: str
    fields: tuple[str, ...]
    severity: Literal["hard", "soft"]
    message: "str | Promise"
    # (record, subject data) → the failing items (empty when the record passes)
    function: Callable[[Any, SubjectData], Iterable[str]]
    # Longer explanation for the specification (optional).
    description: "str | Promise" = ""
    # What the check reads besides the record it checks and the subject (consent, site): the
    # forms whose records it looks at (CRF codes, ``KITS``; its own form's code when it
    # compares the record with the form's other records) and the fields it reads of the
    # subject's visits (a visit-form check's own visit is its record, not listed here). A save
    # runs only the checks that read what it changed; tests/forms/test_check_reads.py
    # enforces that a check reads nothing else.
    reads: frozenset[str] = frozenset()
    visit_fields: frozenset[str] = frozenset()

    def failing(self, record: Any, data: SubjectData) -> list[str]:
        return list(self.function(record, data))
