"""The edit-check library: every check, declared in one module per CRF family and listed here
explicitly (no auto-discovery). Codes are stable: they appear in queries, the edit-check
specification and the tests."""

from edc.i18n import messages_register
from forms.quality.checks import dates, events, labs, nihss, treatment, vitals
from forms.quality.checks.base import HARD, KITS, SOFT, VISIT, Check, SubjectData

ALL_CHECKS: tuple[Check, ...] = (
    *vitals.CHECKS, *labs.CHECKS, *nihss.CHECKS, *events.CHECKS, *treatment.CHECKS,
    *dates.CHECKS,
)
CHECKS_BY_CODE: dict[str, Check] = {check.code: check for check in ALL_CHECKS}
# The questions the checks raise, for the queries that store them (``Query.shown_text``).
messages_register({check.code: check.message for check in ALL_CHECKS})
if len(CHECKS_BY_CODE) != len(ALL_CHECKS):
    raise ImportError("Edit-check codes must be unique.")


def checks_for(form: str, severity: str) -> list[Check]:
    return [c for c in ALL_CHECKS if c.severity == severity and c.form in (form, "*")]


__all__ = ["ALL_CHECKS", "CHECKS_BY_CODE", "HARD", "KITS", "SOFT", "VISIT", "Check", "SubjectData",
           "checks_for"]
