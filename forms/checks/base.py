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


@dataclass
class SubjectData:
    """A subject's saved records, loaded once for a run of every check."""

    subject: Subject
    visits: dict[int, Visit]
    forms: dict[str, list[Any]] = field(default_factory=dict)
    kits: dict[int, str] = field(default_factory=dict)

    def all(self, code: str) -> list[Any]:
        return self.forms.get(code, [])

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

    def failing(self, record: Any, data: SubjectData) -> list[str]:
        return list(self.function(record, data))
