"""The one audited save: every write to a model that keeps its history (django-simple-history)
goes through :func:`audited_save`, which validates the row, names its author and the reason on
the instance (never patched onto a history row afterwards) and saves it.

A history row without an author is refused when ``AUDIT_REQUIRE_AUTHOR`` is set (the tests set
it): a save that forgot its author fails loudly instead of leaving an anonymous change in the
audit trail. Writes made by the system itself name it: ``user=SYSTEM`` (an edit check raising
its query) or, for the seeding commands that build a trial, ``with system_writes():``.
"""

from collections.abc import Callable, Iterable
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Literal

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import models, transaction
from django.utils import timezone
from simple_history.signals import pre_create_historical_record

from edc import bounds
from edc.audit import chain_batch
from edc.models import User
from edc.validation import changed_fields, validate_constraints_over


class _System:
    """The author of a write no person made (``history_user`` stays empty)."""

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = _System()

# How the database constraints are judged before the write:
# "django": by ``full_clean`` (Django's own check, one query per constraint);
# "all": every constraint in one query (``validate_constraints_over``), for a new row;
# a set of field names: only the constraints over these changed fields (the row was read
#   locked in this transaction, so the others hold);
# "database": left to the database (the caller looked for the duplicate, or catches the
#   IntegrityError of a concurrent insert).
Constraints = Literal["django", "all", "database"] | set[str]

_system_writes: ContextVar[bool] = ContextVar("edc_system_writes", default=False)


@contextmanager
def system_writes():
    """Writes in this block are the system's (a seeding command building a trial): their
    history rows may have no author."""
    token = _system_writes.set(True)
    try:
        yield
    finally:
        _system_writes.reset(token)


def audited_save(
    instance: models.Model,
    *,
    user: User | _System | None,
    reason: str = "",
    exclude: Iterable[str] = (),
    constraints: Constraints = "django",
    unique: bool = True,
    clean: bool = True,
    stored: dict[str, object] | None = None,
    update_fields: Iterable[str] | None = None,
    savepoint: bool = False,
    then: Callable[[], None] | None = None,
) -> None:
    """Validate ``instance`` (``full_clean``, without the fields in ``exclude``: links set by
    code whose rows exist), set its author and reason, and save it.

    ``constraints`` says how the database constraints are judged (see :data:`Constraints`);
    ``unique=False`` leaves the unique ones to the caller. ``stored``: the row's values as read
    locked in this transaction (``edc.validation.field_values``); then its links unchanged since
    are not read again and only the constraints over the changed fields are judged.
    ``clean=False`` only for a write of values set by code, never typed (a password hash, a
    broken signature's state). The reason is free text handed to a service: stripped, refused
    if it holds NUL or is longer than a reason and the label before it (``bounds.text_input``).

    The save runs in ``transaction.atomic(savepoint=savepoint)``: without a savepoint (the
    default) a failure from the write on dooms the caller's whole transaction, so nothing
    half-saved is committed; ``savepoint=True`` for an insert that may lose a race, whose
    ``IntegrityError`` the caller catches and answers. ``then``: the writes that follow from
    this one (a broken signature, the edit checks' queries), run after it in the same block,
    with every history row written there linked in the audit chain together at its end
    (``edc.audit.chain_batch``); validation stays before the block, so a refused value leaves
    the caller's transaction usable.
    """
    reason = bounds.text_input(reason, limit=bounds.REASON + bounds.TERM, field="reason")
    exclude = list(exclude)
    if stored is not None:
        constraints = changed_fields(instance, stored)
        exclude += [field.name for field in instance._meta.concrete_fields
                    if field.is_relation and field.name not in constraints
                    and field.name not in exclude]
    if clean:
        if constraints == "django":
            instance.full_clean(exclude=exclude or None)
        else:
            instance.full_clean(exclude=exclude or None, validate_constraints=False)
            if constraints != "database":
                validate_constraints_over(instance, None if constraints == "all" else constraints,
                                          unique=unique)
    instance._history_user = None if user is SYSTEM else user
    instance._history_system = user is SYSTEM
    if reason:
        instance._change_reason = reason
    with transaction.atomic(savepoint=savepoint), (chain_batch() if then else nullcontext()):
        if update_fields is None:
            instance.save()
        else:
            instance.save(update_fields=list(update_fields))
        if then is not None:
            then()


class AuthorMissing(RuntimeError):
    pass


def _refuse_without_author(sender, instance, history_instance, **kwargs) -> None:
    if not getattr(settings, "AUDIT_REQUIRE_AUTHOR", False):
        return
    if history_instance.history_user_id is not None:
        return
    if getattr(instance, "_history_system", False) or _system_writes.get():
        return
    raise AuthorMissing(
        f"A history row of {type(instance).__name__} {instance.pk} has no author: save it "
        "with edc.history.audited_save(instance, user=..., reason=...) (user=SYSTEM for the "
        "system's own writes)."
    )


def _last_login(sender, user, **kwargs) -> None:
    """Django's ``update_last_login``, through the one audited save: whoever signs in is the
    author of their own sign-in time (also when a test signs in without a request)."""
    user.last_login = timezone.now()
    audited_save(user, user=user, clean=False, update_fields=["last_login"])


def connect() -> None:
    pre_create_historical_record.connect(_refuse_without_author,
                                         dispatch_uid="edc.history.author_required")
    if user_logged_in.disconnect(dispatch_uid="update_last_login"):
        user_logged_in.connect(_last_login, dispatch_uid="edc.history.last_login")
