"""The session: renewed at most once per ``SESSION_RENEW_SECONDS`` while used
(``edc.middleware.SessionRenewalMiddleware``), in one statement (``SessionStore``)."""

import time

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, router, transaction

# The session key holding when the session was last renewed (seconds since the epoch).
RENEWED_AT = "_renewed_at"


def renew_if_due(session) -> None:
    """Mark ``session`` modified (so it is saved with a new expiry) when it holds data and
    was last renewed ``SESSION_RENEW_SECONDS`` ago or more. An empty session (a visitor not
    signed in, or one just logged out) is never written."""
    if not set(session.keys()) - {RENEWED_AT}:  # SessionBase has no __iter__
        return
    now = int(time.time())
    renewed = session.get(RENEWED_AT)
    if not isinstance(renewed, int) or not 0 <= now - renewed < settings.SESSION_RENEW_SECONDS:
        session[RENEWED_AT] = now


def renewed_at_login(sender, request, user, **kwargs) -> None:
    """A sign-in writes the session: it counts as its renewal (``user_logged_in``)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[RENEWED_AT] = int(time.time())


class SessionStore(DatabaseSessionStore):
    """Django's database store, except that writing an existing session outside any
    transaction is its single ``UPDATE`` (atomic by itself) instead of BEGIN, UPDATE, COMMIT.
    Creating a session (log-in, a new key) is Django's own, whose transaction tells a key
    already taken."""

    def save(self, must_create: bool = False) -> None:
        if must_create or self.session_key is None:
            return super().save(must_create=must_create)
        obj = self.create_model_instance(self._get_session())
        using = router.db_for_write(self.model, instance=obj)
        if transaction.get_connection(using).in_atomic_block:
            return super().save(must_create=must_create)
        try:
            obj.save(force_update=True, using=using)
        except DatabaseError as error:
            # The row is gone (logged out elsewhere, or expired and cleared): as Django does.
            raise UpdateError from error
        return None
