"""Texts the system writes, stored language-neutral and read in the reader's language.

A text the EDC itself writes into a record (an edit check's query, "Resolved by data change.",
a system reason in the audit trail) is stored as its message id, the English source text,
whoever's action triggered it; each page, PDF or mail renders it in its reader's language
with :func:`shown`. Text a person typed is never translated. A stored text that is no message
id (typed, or written before the message was reworded) is shown as stored, so old rows stay
readable.
"""

from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise


def language_code(value: str) -> str:
    """``value`` if it is one of ``settings.LANGUAGES``, else "" (the browser's language)."""
    return value if value in dict(settings.LANGUAGES) else ""


def reader_language(user) -> str:
    """The language texts written for ``user`` (mails, notifications) are rendered in: their
    choice, else the site default (``LANGUAGE_CODE``): a background job has no browser."""
    return language_code(getattr(user, "language", "") or "") or settings.LANGUAGE_CODE


def neutral(message) -> str:
    """The stored form of a system text: its message id, whatever language is active."""
    with translation.override(None):
        return str(message)


def shown(text: str) -> str:
    """A stored system text in the active (the reader's) language."""
    if not text:
        return text
    return translation.gettext(text)


# The message behind each code of a text the system writes (an edit check's code → its
# message, which may carry parameters), registered by the layer that owns the messages (the
# edit checks) for the records below it that store their texts (a query).
_MESSAGES: dict[str, object] = {}


def messages_register(messages: dict[str, object]) -> None:
    _MESSAGES.update(messages)


def shown_for(code: str, stored: str) -> str:
    """A text stored for ``code`` in the reader's language: the code's message rendered now
    while the stored text is still that message (in its neutral form); a text the message no
    longer matches (reworded since), as stored or its translation."""
    message = _MESSAGES.get(code)
    if message is not None and neutral(message) == stored:
        return str(message)
    return shown(stored)


def _rendered(value):
    if isinstance(value, Text | Promise):
        return str(value)
    if callable(value):
        return str(value())
    return value


class Text:
    """A text rendered when it is read, in the reader's language: a message id (marked with
    ``gettext_noop`` where it is written) and its parameters, which may be texts too. A
    reminder builds its lines once and each recipient's mail and notification renders them
    in that recipient's language (``edc.notifications.notify``). A parameter that is a
    function is called when the text is rendered (a label read in the reader's language)."""

    def __init__(self, msgid: str, **params):
        self.msgid = msgid
        self.params = params

    def __str__(self) -> str:
        text = translation.gettext(self.msgid)
        if not self.params:
            return text
        return text % {name: _rendered(value) for name, value in self.params.items()}

    def __repr__(self) -> str:
        return f"Text({self.msgid!r}, {self.params!r})"


class Joined(Text):
    """Texts joined by ``separator``, each rendered in the reader's language."""

    def __init__(self, separator: str, parts):
        super().__init__("")
        self.separator = separator
        self.parts = list(parts)

    def __str__(self) -> str:
        return self.separator.join(str(part) for part in self.parts)
