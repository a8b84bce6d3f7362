"""The bounds of every input, declared once: how long free text may be, which dates are
plausible, and the parsers that turn untrusted request parameters into ids, numbers and dates.

Lengths are per kind of text, chosen as a professional EDC would (a term fits a line, a reason
a paragraph, a comment a page). The model fields carry them (``max_length`` and a validator),
the database enforces them (``varchar(n)`` for ``CharField``; a length check for ``TextField``,
on SQLite and PostgreSQL alike), and the entry forms show them (``maxlength``). Export writers
read ``field.max_length`` and so follow any change made here.

Text from outside never holds a NUL character: PostgreSQL cannot store it, and no person types it.
"""

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import protocol

# --- Free text, by kind (characters) -----------------------------------------------------------
TERM = 200          # a term, a name, an "other, specify" answer: one line
REASON = 1000       # a reason: for a change, a lock or unlock, a missed visit, unblinding
NOTE = 1000         # a short note: premedication given, a cause of death
DESCRIPTION = 4000  # a comment, a description, a query or its answer: about a page
SYSTEM_TEXT = 8000  # text the system writes (an error, a job's detail); cut to fit
FILTER = 100        # a search box or filter on a list page

# --- Dates and times ---------------------------------------------------------------------------
# Nobody alive was born before this date, and no medication started before it.
EARLIEST_DATE = dt.date(1900, 1, 1)
# Clinical events of the trial (stroke onset, assessments, samples, infusions, adverse events)
# cannot lie before the trial began.
TRIAL_START = protocol.TRIAL_START

# The largest id a parameter may name (BigAutoField).
MAX_ID = 2**63 - 1
# The largest count of days a filter may name (a century).
MAX_DAYS = 36_600


def bounded_text(verbose_name: Any, limit: int, **kwargs: Any) -> models.TextField:
    """A multi-line free-text field of at most ``limit`` characters, without NUL; pair it with
    ``length_checks`` in the model's ``Meta.constraints``."""
    return models.TextField(
        verbose_name, max_length=limit,
        validators=[MaxLengthValidator(limit), ProhibitNullCharactersValidator()], **kwargs,
    )


class MaxLengthCheck(models.CheckConstraint):
    """The database's own refusal of over-long text. Validation (``full_clean``) is left to the
    field's ``MaxLengthValidator``, which names the field and the limit; this constraint is
    what still holds for a write that skips validation."""

    def validate(self, *args: Any, **kwargs: Any) -> None:
        return None


def length_checks(prefix: str, **limits: int) -> list[models.CheckConstraint]:
    """``MaxLengthCheck`` constraints for the text fields named, e.g.
    ``length_checks("visit", missed_reason=bounds.REASON)``."""
    return [
        MaxLengthCheck(condition=LessThanOrEqual(Length(name), limit),
                       name=f"{prefix}_{name}_max_length")
        for name, limit in limits.items()
    ]


def text_input(value: Any, *, limit: int, field: str = "text") -> str:
    """Free text entered outside a form (a reason for change handed to a service): stripped,
    refused with a message if it holds NUL or exceeds ``limit``."""
    text = "" if value is None else str(value)
    if "\x00" in text:
        raise ValidationError({field: _("Null characters are not allowed.")})
    text = text.strip()
    if len(text) > limit:
        raise ValidationError({field: _(
            "Ensure this value has at most %(limit)d characters (it has %(count)d)."
        ) % {"limit": limit, "count": len(text)}})
    return text


def cut(text: str, limit: int = SYSTEM_TEXT) -> str:
    """System-written text shortened to fit its field, saying so."""
    text = (text or "").replace("\x00", "")
    if len(text) <= limit:
        return text
    marker = " […]"
    return text[: limit - len(marker)] + marker


# --- Request parameters ------------------------------------------------------------------------


def id_param(raw: Any) -> int | None:
    """An object id from a request (``"12"``), or None for anything else: empty, signs, spaces,
    non-ASCII digits (``"²".isdigit()`` is true but ``int("²")`` fails), or too large for the
    database."""
    return int_param(raw, minimum=1, maximum=MAX_ID)


def int_param(raw: Any, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A whole number written in ASCII digits within [minimum, maximum], or None."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def text_param(raw: Any, *, limit: int = FILTER) -> str:
    """A filter's text: stripped; empty if it holds NUL or is longer than any value it could
    match."""
    text = raw.strip() if isinstance(raw, str) else ""
    if "\x00" in text or len(text) > limit:
        return ""
    return text


def date_param(raw: Any, *, earliest: dt.date = EARLIEST_DATE,
               latest: dt.date | None = None) -> dt.date | None:
    """An ISO date (``2026-03-10``) within [earliest, latest] (latest: a year from today), or
    None. Raises ``ValueError`` with a message for a date outside the span."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or "\x00" in text or len(text) > 10:
        return None
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        return None
    latest = latest or timezone.localdate() + dt.timedelta(days=366)
    if not earliest <= value <= latest:
        raise ValueError(_("Enter a date between %(earliest)s and %(latest)s.") % {
            "earliest": earliest.isoformat(), "latest": latest.isoformat()})
    return value


# --- Plausible dates of CRF items --------------------------------------------------------------


def date_span_error(value: dt.date | dt.datetime, *, earliest: dt.date) -> str | None:
    """The message for a CRF date before the plausible span, or None. (A date in the future is
    refused separately, unless the item is a planned date.)"""
    day = value.date() if isinstance(value, dt.datetime) else value
    if day < earliest:
        return _("A date before %(earliest)s is not plausible here.") % {
            "earliest": earliest.isoformat()}
    return None
