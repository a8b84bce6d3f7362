"""The audit trail's guarantees: append-only tables, tamper evidence, workflow and account events
(21 CFR 11.10(e); ICH E6(R3) 4.2.2; checklist AT-03, AT-06, AT-07, AT-08 in
``shared/reference/peer-edc-systems.md``).

**Append-only, enforced by the database.** Every django-simple-history table and the audit tables
of this module refuse UPDATE and DELETE: on PostgreSQL a ``BEFORE UPDATE OR DELETE ... FOR EACH
ROW`` trigger calling a plpgsql function that raises, on SQLite ``BEFORE UPDATE`` / ``BEFORE
DELETE`` triggers with ``RAISE(ABORT, ...)``. Both surface as ``django.db.IntegrityError``.
:func:`audit_install` creates the missing triggers after every ``migrate`` (``post_migrate``),
so history tables added by later migrations, and the test database, are covered; on SQLite a
migration that rebuilds a table drops its triggers, and the same hook puts them back. A
migration that rewrites history rows (e.g. NULL to a default) is refused: history rows keep
what was recorded.

Emptying the whole database with ``manage.py flush`` (test teardown of transactional tests)
stays possible. On PostgreSQL flush is a ``TRUNCATE``, which row triggers do not see; in
production the application's role should hold no TRUNCATE privilege on these tables. On SQLite
flush is a ``DELETE FROM`` per table, so the DELETE triggers carry ``WHEN NOT
edc_audit_flush_in_progress()``: a per-connection SQL function that is true only while
Django's flush (``connection.ops.execute_sql_flush``, wrapped on each SQLite connection this
application opens) runs on that connection. Any other DELETE, from the ORM or raw SQL, is
refused; a connection not opened by this application (the ``sqlite3`` shell) has no such
function, so its DELETE fails too.

**Tamper evidence.** Each history row (and each :class:`AuditEvent`) gets an
:class:`AuditChainLink`, written in the same transaction from simple-history's
``post_create_historical_record`` signal: SHA-256 over the canonical JSON of the row's column
values (as read back from the database), the table, the link's sequence and the previous link's
hash. One chain per table, whose end its :class:`AuditChainHead` row holds (last sequence and
hash). Appending costs two statements per row (:func:`chain_append`): one ``SELECT`` locks the
head (``FOR UPDATE``; SQLite has a single writer anyway) and reads, with it, the row's values
and the id of the row's column layout; one ``INSERT`` writes the link, and a trigger on the
link table advances the head in that same statement, refusing a link that does not continue
the head (wrong sequence or previous hash). The head itself refuses any other change: it moves
one link at a time, only to a link that exists, and is never deleted. A unique (table,
sequence) constraint makes a fork impossible. Heads are taken in the order rows are written,
so two transactions writing the same two tables in opposite orders can deadlock: PostgreSQL
aborts one of them, which the user retries. :func:`audit_verify` (``manage.py verify_audit``)
recomputes every link and checks that each chain ends where its head says (a link cut from the
tail shows). A chain proves nothing against someone who can disable the triggers and rewrite
the chain's tail and head: record the tips ``verify_audit -v 2`` prints somewhere else to
anchor them.

On SQLite the head's guard and the link table's advancing trigger name each other's table,
and SQLite refuses to rebuild a table (``ALTER TABLE ... RENAME``, as Django's migrations do)
while a trigger names a table that is being replaced; so ``pre_migrate`` drops these two
triggers and ``post_migrate`` puts them back. A link written while they are missing leaves the
head behind, and the next append fails on the unique (table, sequence) constraint: no fork.

**Events.** :func:`audit_event` records logins, failed logins, logouts, account changes (derived
from the User history) and the workflow actions the services report (randomization, unblinding,
SDV, queries, signatures, locks, exports). It never records the treatment arm.
"""

import datetime as dt
import functools
import hashlib
import ipaddress
import json
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from axes.signals import user_locked_out
from django.apps import apps
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate
from django.utils import timezone
from simple_history.models import HistoricalChanges, HistoricalRecords
from simple_history.signals import (
    post_create_historical_m2m_records,
    post_create_historical_record,
    pre_create_historical_record,
)

from edc.models import (
    CHAIN_GENESIS_HASH,
    AuditAction,
    AuditChainHead,
    AuditChainLink,
    AuditEvent,
    AuditRowLayout,
    Site,
    User,
)
from edc.prepared import PreparedQuery
from edc.roles import administrator_rights
from edc.sources import current_source

__all__ = ["AuditAction", "AuditReport", "ChainBreak", "audit_event", "audit_install",
           "audit_verify", "chain_append", "chain_batch"]

GENESIS_HASH = CHAIN_GENESIS_HASH
PG_FUNCTION = "edc_audit_append_only"
PG_TRIGGER = "edc_append_only"
PG_HEAD_FUNCTION = "edc_audit_chain_head_moves"
PG_ADVANCE_FUNCTION = "edc_audit_chain_advance"
ADVANCE_TRIGGER = "edc_chain_advance"
SQLITE_FLUSH_FUNCTION = "edc_audit_flush_in_progress"
# Keys an event's detail may never carry: the blind (DESIGN.md, "Blinding").
BLINDING_KEYS = frozenset({"arm", "treatment", "allocation"})

ROW_ALTERED = "row altered"
ROW_MISSING = "row missing"
LINK_ORDER_BROKEN = "link order broken"
ROW_NOT_CHAINED = "row not chained"


# --- Which tables ------------------------------------------------------------------------------


def history_models() -> list[type[models.Model]]:
    """Every simple-history table (historical records and their m2m records)."""
    return [
        model for model in apps.get_models()
        if issubclass(model, HistoricalChanges)
        and model._meta.managed and not model._meta.proxy
    ]


def chained_models() -> list[type[models.Model]]:
    return [*history_models(), AuditEvent]


def append_only_models() -> list[type[models.Model]]:
    return [*chained_models(), AuditChainHead, AuditRowLayout, AuditChainLink]


# --- Hashing -----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if timezone.is_aware(value) else value).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def row_hash(*, table: str, sequence: int, prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 of one chained row: its column values, its place in the chain, the link before."""
    payload = canonical_json({"table": table, "sequence": sequence, "prev": prev_hash,
                              "row": row})
    return hashlib.sha256(payload.encode()).hexdigest()


def _columns(model: type[models.Model]) -> dict[str, str]:
    """Column name → attribute name, for every column of the model's table."""
    return {f.column: f.attname for f in model._meta.concrete_fields}


def _rows(model, pks, columns: dict[str, str], using: str) -> dict[int, dict[str, Any]]:
    """The rows with these primary keys as {column: value}, read back from the database."""
    pk_attname = model._meta.pk.attname
    found = (model._base_manager.using(using).filter(pk__in=pks).order_by()
             .values(pk_attname, *columns.values()))
    return {row[pk_attname]: {column: row[att] for column, att in columns.items()}
            for row in found}


# --- Chaining ----------------------------------------------------------------------------------


@functools.cache
def _layout_digest(table: str, columns: tuple[str, ...]) -> str:
    return hashlib.sha256(
        canonical_json({"table": table, "columns": list(columns)}).encode()
    ).hexdigest()


def _head_create(table: str, using: str) -> None:
    AuditChainHead.objects.using(using).bulk_create([AuditChainHead(table=table)],
                                                    ignore_conflicts=True)


def _layout_create(table: str, columns: list[str], digest: str, using: str) -> int:
    layouts = AuditRowLayout.objects.using(using)
    layouts.bulk_create([AuditRowLayout(table=table, columns=columns, digest=digest)],
                        ignore_conflicts=True)
    return layouts.values_list("pk", flat=True).get(digest=digest)


def chain_append(model: type[models.Model], pk: int, *,
                 using: str = DEFAULT_DB_ALIAS) -> AuditChainLink | None:
    """Link the row ``pk`` of ``model``'s table to the end of that table's chain, in the
    caller's transaction (or a new one). Two statements: the locking read of the head with the
    row, and the link's ``INSERT`` (which advances the head, by trigger). The first row of a
    table and the first row of a new column layout cost one or two statements more. Inside
    ``chain_batch`` the row is linked at the end of the block (None returned)."""
    pending = getattr(_batch, "pending", None)
    if pending is not None and _batch.using == using:
        pending.append((model, pk))  # linked at the end of the batch (``chain_batch``)
        return None
    with transaction.atomic(using=using, savepoint=False):
        links = _links_for(model, [pk], using)
        if not links:
            raise model.DoesNotExist(f"{model._meta.db_table}: no row {pk} to chain")
        [link] = links
        link.save(using=using, force_insert=True)
    return link


# --- Batched appends ----------------------------------------------------------------------------

_batch = threading.local()


@contextmanager
def chain_batch(using: str = DEFAULT_DB_ALIAS):
    """Link every row ``chain_append`` is asked to chain inside the block at its end, in the
    caller's transaction, in the order the rows were written: per table one locking read of
    the head with all the table's rows, then one ``INSERT`` of every link (whose trigger
    advances each head, link by link, refusing any that does not continue it). A save that
    writes three history rows to three tables pays 4 statements instead of 6. A row rolled
    back since (a savepoint: a lost insert race) is not linked. Nothing is linked when the
    block raises, and its transaction is marked for rollback. Nested blocks join the outer
    one."""
    if getattr(_batch, "pending", None) is not None:
        yield
        return
    _batch.pending, _batch.using = [], using
    try:
        yield
        pending = _batch.pending
    except BaseException:
        if transaction.get_connection(using).in_atomic_block:
            # Rows written in the block are not linked: their transaction must not commit,
            # even if its caller goes on after the error.
            transaction.set_rollback(True, using=using)
        raise
    finally:
        _batch.pending = None
    _chain_pending(pending, using)


def _chain_pending(pending: list[tuple[type[models.Model], int]], using: str) -> None:
    tables: dict[type[models.Model], list[int]] = {}
    for model, pk in pending:
        tables.setdefault(model, []).append(pk)
    links = []
    for model, pks in tables.items():
        links += _links_for(model, pks, using)
    if links:
        with transaction.atomic(using=using, savepoint=False):
            AuditChainLink.objects.using(using).bulk_create(links)


def _links_for(model: type[models.Model], pks: list[int], using: str) -> list[AuditChainLink]:
    """The links continuing ``model``'s chain with the rows ``pks`` that still exist, in the
    order given, the head locked (not yet saved). The table's head and the rows' column
    layout are recorded first when they are new."""
    table = model._meta.db_table
    columns = _columns(model)
    digest = _layout_digest(table, tuple(columns))
    found = _chain_tip_and_rows(model, pks, columns, digest, using)
    if found is None:
        _head_create(table, using)
        found = _chain_tip_and_rows(model, pks, columns, digest, using)
        if found is None:
            raise AuditChainHead.DoesNotExist(f"{table}: no chain head")
    sequence, prev_hash, layout_id, rows = found
    if layout_id is None and rows:
        layout_id = _layout_create(table, list(columns), digest, using)
    links = []
    for pk in dict.fromkeys(pks):  # in the order written, once each
        if pk not in rows:
            continue  # rolled back since it was written
        sequence += 1
        row_digest = row_hash(table=table, sequence=sequence, prev_hash=prev_hash, row=rows[pk])
        links.append(AuditChainLink(table=table, history_id=pk, sequence=sequence,
                                    layout_id=layout_id, prev_hash=prev_hash,
                                    row_hash=row_digest))
        prev_hash = row_digest
    return links


def _chain_tip_and_rows(model, pks, columns: dict[str, str], digest: str, using: str):
    """One statement: lock the table's chain head and read its last (sequence, hash), the id
    of the layout with this digest (None when new) and {pk: row} of the rows that exist, their
    values converted as the ORM reads them (the verifier reads them the same way). None when
    the table has no head yet."""
    connection = connections[using]
    quote = connection.ops.quote_name
    rows = _chain_rows_query(model, tuple(columns.values()))
    pks = list(dict.fromkeys(pks))
    row_sql, row_params = rows.statement(using=using, pks=pks)
    at = list(columns).index(model._meta.pk.column)  # the primary key's place in a row
    head, layout = AuditChainHead._meta.db_table, AuditRowLayout._meta.db_table
    # Table and column names come from the models; values are parameters. The outer join
    # keeps the head's row when none of the rows exists any more.
    sql = (
        f"SELECT h.{quote('last_sequence')}, h.{quote('last_hash')}, "  # noqa: S608
        f"(SELECT y.{quote('id')} FROM {quote(layout)} y WHERE y.{quote('digest')} = %s), "
        f"r.* FROM {quote(head)} h LEFT JOIN ({row_sql}) r ON 1 = 1 "
        f"WHERE h.{quote('table')} = %s"
    )
    if connection.features.has_select_for_update_of:
        sql += " " + connection.ops.for_update_sql(of=["h"])
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest, *row_params, model._meta.db_table])
        found = cursor.fetchall()
    if not found:
        return None
    last_sequence, last_hash, layout_id = found[0][:3]
    present = [row[3:] for row in found if row[3 + at] is not None]
    values = rows.converted(present, using=using, pks=pks)
    return last_sequence, last_hash, layout_id, {
        row[at]: dict(zip(columns, row, strict=True)) for row in values}


_CHAIN_ROWS: dict[tuple, PreparedQuery] = {}


def _chain_rows_query(model, attributes: tuple[str, ...]) -> PreparedQuery:
    """The history rows a batch links, by primary key: compiled once per table and number of
    rows (``edc.prepared``), not for every batch."""
    key = (model, attributes)
    query = _CHAIN_ROWS.get(key)
    if query is None:
        query = _CHAIN_ROWS[key] = PreparedQuery(
            lambda pks: model._base_manager.filter(pk__in=pks).order_by()
            .values_list(*attributes))
    return query


def _start_chain(model: type[models.Model], using: str) -> None:
    """First run for this table: create its chain head and chain the rows it already has
    (written before the chain existed), oldest first."""
    table = model._meta.db_table
    if AuditChainHead.objects.using(using).filter(table=table).exists():
        return
    AuditChainHead.objects.using(using).bulk_create([AuditChainHead(table=table)],
                                                    ignore_conflicts=True)
    linked = AuditChainLink.objects.using(using).filter(table=table).values("history_id")
    unlinked = (model._base_manager.using(using).exclude(pk__in=linked).order_by("pk")
                .values_list("pk", flat=True))
    for pk in unlinked.iterator():
        chain_append(model, pk, using=using)


# --- Events ------------------------------------------------------------------------------------


def _current_request():
    """The request being served, as simple-history's middleware records it (None in tasks)."""
    return getattr(HistoricalRecords.context, "request", None)


def _ip_address(request) -> str | None:
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _subject_and_site(obj, subject, site) -> tuple[int | None, int | None]:
    subject_model = AuditEvent._meta.get_field("subject").related_model
    subject_id = None
    if subject is not None:
        subject_id = subject.pk
    elif isinstance(obj, subject_model):
        subject, subject_id = obj, obj.pk
    elif obj is not None:
        subject_id = getattr(obj, "subject_id", None)
    if site is not None:
        return subject_id, site.pk
    if subject is not None:
        return subject_id, subject.site_id
    if subject_id is not None:
        return subject_id, (subject_model._base_manager.filter(pk=subject_id)
                            .values_list("site_id", flat=True).first())
    return None, None


@transaction.atomic(savepoint=False)
def audit_event(
    *,
    action: AuditAction | str,
    user: User | None = None,
    obj: models.Model | None = None,
    subject=None,
    site: Site | None = None,
    detail: dict[str, Any] | None = None,
    request=None,
    username_attempted: str = "",
) -> AuditEvent:
    """Record a workflow or account event in the caller's transaction, chained.

    ``obj`` is the record acted on; the subject and site are taken from it (or its subject)
    unless given. ``request`` (default: the request being served) gives the IP address.
    ``detail`` is JSON; it may never carry the treatment arm.
    """
    detail = dict(detail or {})
    leaked = BLINDING_KEYS.intersection(key.lower() for key in detail)
    if leaked:
        raise ValueError(f"an audit event never records the blind ({', '.join(sorted(leaked))})")
    if user is not None and (not user.is_authenticated or user.pk is None):
        user = None
    subject_id, site_id = _subject_and_site(obj, subject, site)
    event = AuditEvent(
        action=AuditAction(action),
        user=user,
        username_attempted=(username_attempted or "")[:150],
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        subject_id=subject_id,
        site_id=site_id,
        detail=detail,
        ip_address=_ip_address(request or _current_request()),
        source=current_source(),
    )
    event.full_clean(validate_constraints=False, validate_unique=False,
                     exclude=["user", "subject", "site"])
    event.save()
    chain_append(AuditEvent, event.pk, using=event._state.db)
    return event


def _site_codes(site_ids) -> list[str]:
    return sorted(Site.objects.filter(pk__in=site_ids).values_list("code", flat=True))


def _user_history_events(history) -> None:
    """Account events from a new User history row, compared with the user's previous row:
    created, role changed, sites changed, deactivated, other changes (21 CFR 11.300;
    E6(R3) 4.2.2(a)(i)). A row with no difference (a login stamping ``last_login``) records
    nothing."""
    history_model = type(history)
    sites_model = apps.get_model("edc", "HistoricalUser_sites")

    def sites_of(row) -> set[int]:
        return set(sites_model._base_manager.filter(history_id=row.history_id)
                   .values_list("site_id", flat=True))

    actor = history.history_user
    target = User(pk=history.id)
    base = {"username": history.username}
    if history.history_type == "+":
        audit_event(action=AuditAction.USER_CREATED, user=actor, obj=target,
                    detail=base | {"role": history.role,
                                   "sites": _site_codes(sites_of(history))})
        if administrator_rights(history):
            audit_event(action=AuditAction.ADMINISTRATOR_RIGHTS_GIVEN, user=actor, obj=target,
                        detail=base | {"given": sorted(administrator_rights(history)),
                                       "from": [], "to": sorted(administrator_rights(history))})
        return
    if history.history_type == "-":
        audit_event(action=AuditAction.USER_CHANGED, user=actor, obj=target,
                    detail=base | {"deleted": True})
        return
    previous = (history_model._base_manager
                .filter(id=history.id, history_id__lt=history.history_id)
                .order_by("-history_id").first())
    if previous is None:
        return
    changed = [f.name for f in history_model.tracked_fields
               if getattr(history, f.attname) != getattr(previous, f.attname)]
    rights_before, rights_after = administrator_rights(previous), administrator_rights(history)
    if rights_after - rights_before:
        # Who gave administrator rights decides who may approve that person's unblinded role
        # requests (edc.services.role_grant_decide).
        audit_event(action=AuditAction.ADMINISTRATOR_RIGHTS_GIVEN, user=actor, obj=target,
                    detail=base | {"given": sorted(rights_after - rights_before),
                                   "from": sorted(rights_before), "to": sorted(rights_after)})
    if "password_chosen_by_holder" in changed:
        changed.remove("password_chosen_by_holder")  # the password change is its own event
    if "role" in changed:
        changed.remove("role")
        audit_event(action=AuditAction.ROLE_CHANGED, user=actor, obj=target,
                    detail=base | {"from": previous.role, "to": history.role})
    if "is_active" in changed:
        changed.remove("is_active")
        audit_event(action=(AuditAction.USER_REACTIVATED if history.is_active
                            else AuditAction.USER_DEACTIVATED), user=actor, obj=target,
                    detail=base | {"from": previous.is_active, "to": history.is_active})
    before, after = sites_of(previous), sites_of(history)
    if before != after:
        audit_event(action=AuditAction.SITES_CHANGED, user=actor, obj=target,
                    detail=base | {"from": _site_codes(before), "to": _site_codes(after),
                                   "added": _site_codes(after - before),
                                   "removed": _site_codes(before - after)})
    if changed:
        # Administrator status (is_staff, is_superuser) with its old and new value; other
        # fields (names, e-mail) by name only.
        privileges = {name: {"from": getattr(previous, name), "to": getattr(history, name)}
                      for name in ("is_staff", "is_superuser") if name in changed}
        audit_event(action=AuditAction.USER_CHANGED, user=actor, obj=target,
                    detail=base | {"fields": changed} | privileges)


# --- Signal receivers (infrastructure: connected in EdcConfig.ready) ----------------------------


def _on_history_row_created(sender, history_instance, **kwargs) -> None:
    """Every history row records where its change came from (ER-07, ``edc.sources``)."""
    if hasattr(history_instance, "history_source"):
        history_instance.history_source = current_source()


def _on_history_row(sender, history_instance, **kwargs) -> None:
    chain_append(sender, history_instance.pk, using=history_instance._state.db or DEFAULT_DB_ALIAS)
    # The history model's own ``instance_type``: ``User.history`` would build a manager
    # class (simple_history's descriptor) on every history row of every table.
    if getattr(sender, "instance_type", None) is User:
        _user_history_events(history_instance)


def _on_history_m2m_rows(sender, created_rows, **kwargs) -> None:
    for row in created_rows:
        chain_append(sender, row.pk, using=row._state.db or DEFAULT_DB_ALIAS)


def _on_login(sender, request, user, **kwargs) -> None:
    audit_event(action=AuditAction.LOGIN, user=user, request=request)


def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """A wrong password at the login page or at a re-authentication prompt (signing,
    unblinding, password change: ``credentials["prompt"]``, the user is the session's)."""
    prompt = str(credentials.get("prompt") or "")
    user = getattr(request, "user", None) if prompt else None
    detail = {"prompt": prompt} if prompt else {}
    if "user_id_typed" in credentials:
        # A signature's user ID that is not the signer's (edc.services.password_confirms).
        detail["user_id_typed"] = str(credentials["user_id_typed"])[:150]
    audit_event(action=AuditAction.LOGIN_FAILED, request=request, user=user,
                username_attempted=str(credentials.get("username") or ""),
                detail=detail or None)


def _on_locked_out(sender, request=None, username=None, **kwargs) -> None:
    """django-axes refused or locked an account (after ``AXES_FAILURE_LIMIT`` wrong passwords,
    at any prompt)."""
    audit_event(action=AuditAction.ACCOUNT_LOCKED, request=request,
                user=User.objects.filter(username=username).first() if username else None,
                username_attempted=str(username or ""))


def _on_logout(sender, request, user, **kwargs) -> None:
    audit_event(action=AuditAction.LOGOUT, user=user, request=request)


def _on_sqlite_connection(sender, connection, **kwargs) -> None:
    """Give each SQLite connection the function its DELETE triggers consult, true only while
    this connection runs Django's flush (see the module docstring)."""
    if connection.vendor != "sqlite" or connection.connection is None:
        return
    connection.connection.create_function(
        SQLITE_FLUSH_FUNCTION, 0, lambda: int(getattr(connection, "edc_audit_flushing", False))
    )
    ops = connection.ops
    if getattr(ops, "edc_audit_flush_wrapped", False):
        return
    execute_sql_flush = ops.execute_sql_flush

    def execute_sql_flush_lifting_delete_triggers(sql_list):
        connection.edc_audit_flushing = True
        try:
            execute_sql_flush(sql_list)
        finally:
            connection.edc_audit_flushing = False

    ops.execute_sql_flush = execute_sql_flush_lifting_delete_triggers
    ops.edc_audit_flush_wrapped = True


def _on_pre_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    _drop_sqlite_cross_table_triggers(using)


def _on_post_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    audit_install(using=using)


def connect(app_config) -> None:
    pre_migrate.connect(_on_pre_migrate, sender=app_config, dispatch_uid="edc.audit.uninstall")
    post_migrate.connect(_on_post_migrate, sender=app_config, dispatch_uid="edc.audit.install")
    pre_create_historical_record.connect(_on_history_row_created,
                                         dispatch_uid="edc.audit.source")
    post_create_historical_record.connect(_on_history_row, dispatch_uid="edc.audit.chain")
    post_create_historical_m2m_records.connect(_on_history_m2m_rows,
                                               dispatch_uid="edc.audit.chain_m2m")
    user_logged_in.connect(_on_login, dispatch_uid="edc.audit.login")
    user_login_failed.connect(_on_login_failed, dispatch_uid="edc.audit.login_failed")
    user_logged_out.connect(_on_logout, dispatch_uid="edc.audit.logout")
    user_locked_out.connect(_on_locked_out, dispatch_uid="edc.audit.locked_out")
    connection_created.connect(_on_sqlite_connection, dispatch_uid="edc.audit.sqlite")
    for connection in connections.all(initialized_only=True):
        _on_sqlite_connection(None, connection)


# --- Installing the triggers ----------------------------------------------------------------------

HEAD_TABLE = AuditChainHead._meta.db_table
LINK_TABLE = AuditChainLink._meta.db_table

_PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$
"""

# The one change a chain head accepts: one step forward, to a link of its table that exists
# (the link table's trigger below makes it, in the link's own INSERT).
_HEAD_ADVANCES = f"""NEW.id = OLD.id AND NEW."table" = OLD."table"
    AND NEW.created_at = OLD.created_at AND NEW.last_sequence = OLD.last_sequence + 1
    AND EXISTS (SELECT 1 FROM "{LINK_TABLE}" link WHERE link."table" = NEW."table"
                AND link.sequence = NEW.last_sequence AND link.row_hash = NEW.last_hash)"""  # noqa: S608

_PG_HEAD_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {PG_HEAD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {_HEAD_ADVANCES} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$
"""

_PG_ADVANCE_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {PG_ADVANCE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE "{HEAD_TABLE}" SET last_sequence = NEW.sequence, last_hash = NEW.row_hash
     WHERE "table" = NEW."table" AND last_sequence = NEW.sequence - 1
       AND last_hash = NEW.prev_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain: link % of % does not continue its head',
            NEW.sequence, NEW."table" USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$
"""  # noqa: S608

_SQLITE_ADVANCE_SQL = f"""
CREATE TRIGGER "{ADVANCE_TRIGGER}" AFTER INSERT ON "{LINK_TABLE}" FOR EACH ROW BEGIN
    SELECT RAISE(ABORT, 'audit chain: a link does not continue its head')
     WHERE NOT EXISTS (SELECT 1 FROM "{HEAD_TABLE}" WHERE "table" = NEW."table"
                       AND last_sequence = NEW.sequence - 1 AND last_hash = NEW.prev_hash);
    UPDATE "{HEAD_TABLE}" SET last_sequence = NEW.sequence, last_hash = NEW.row_hash
     WHERE "table" = NEW."table";
END
"""  # noqa: S608


def _pg_triggers(cursor, name: str = PG_TRIGGER) -> dict[str, bool]:
    """Table → whether its trigger ``name`` is enabled."""
    cursor.execute(
        "SELECT c.relname, t.tgenabled <> 'D' FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname = %s AND pg_table_is_visible(c.oid)",
        [name],
    )
    return dict(cursor.fetchall())


def _sqlite_trigger_name(operation: str, table: str) -> str:
    return f"edc_append_only_{operation.lower()}_{table}"


def _sqlite_triggers(cursor) -> set[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return {name for (name,) in cursor.fetchall()}


def _install_postgresql(connection, cursor, tables: list[str]) -> None:
    cursor.execute(_PG_FUNCTION_SQL)
    cursor.execute(_PG_HEAD_FUNCTION_SQL)
    cursor.execute(_PG_ADVANCE_FUNCTION_SQL)
    present = _pg_triggers(cursor)
    for table in tables:
        quoted = connection.ops.quote_name(table)
        function = PG_HEAD_FUNCTION if table == HEAD_TABLE else PG_FUNCTION
        if table not in present:
            cursor.execute(
                f"CREATE TRIGGER {PG_TRIGGER} BEFORE UPDATE OR DELETE ON {quoted} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
        elif not present[table]:
            cursor.execute(f"ALTER TABLE {quoted} ENABLE TRIGGER {PG_TRIGGER}")
    if LINK_TABLE in tables:
        advancing = _pg_triggers(cursor, ADVANCE_TRIGGER)
        if LINK_TABLE not in advancing:
            cursor.execute(
                f'CREATE TRIGGER {ADVANCE_TRIGGER} AFTER INSERT ON "{LINK_TABLE}" '
                f"FOR EACH ROW EXECUTE FUNCTION {PG_ADVANCE_FUNCTION}()"
            )
        elif not advancing[LINK_TABLE]:
            cursor.execute(f'ALTER TABLE "{LINK_TABLE}" ENABLE TRIGGER {ADVANCE_TRIGGER}')


def _install_sqlite(connection, cursor, tables: list[str]) -> None:
    present = _sqlite_triggers(cursor)
    quote = connection.ops.quote_name
    for table in tables:
        for operation in ("UPDATE", "DELETE"):
            name = _sqlite_trigger_name(operation, table)
            if name in present:
                continue
            when = f" WHEN NOT {SQLITE_FLUSH_FUNCTION}()" if operation == "DELETE" else ""
            if operation == "UPDATE" and table == HEAD_TABLE:
                when = f" WHEN NOT ({_HEAD_ADVANCES})"
            message = f"audit trail is append-only: {operation} on {table} refused"
            cursor.execute(
                f"CREATE TRIGGER {quote(name)} BEFORE {operation} ON {quote(table)} "
                f"FOR EACH ROW{when} BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    if LINK_TABLE in tables and HEAD_TABLE in tables and ADVANCE_TRIGGER not in present:
        cursor.execute(_SQLITE_ADVANCE_SQL)


def _drop_sqlite_cross_table_triggers(using: str) -> None:
    """Before migrations on SQLite: drop the two triggers that name another table than their
    own (the head's guard, the link table's advance), which would make SQLite refuse to
    rebuild either table; ``audit_install`` puts them back after the migrations."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in (_sqlite_trigger_name("UPDATE", HEAD_TABLE), ADVANCE_TRIGGER):
            cursor.execute(f"DROP TRIGGER IF EXISTS {connection.ops.quote_name(name)}")


def _existing_tables(using: str) -> set[str]:
    return set(connections[using].introspection.table_names())


def audit_install(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Make every audit table append-only (a chain head: advancing only), let a link's insert
    advance its head, and start the chain of each chained table that has none yet.
    Idempotent; run after every ``migrate`` and ``flush`` (``post_migrate``)."""
    connection = connections[using]
    existing = _existing_tables(using)
    tables = [m._meta.db_table for m in append_only_models() if m._meta.db_table in existing]
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                _install_postgresql(connection, cursor, tables)
            elif connection.vendor == "sqlite":
                _install_sqlite(connection, cursor, tables)
            else:
                raise ImproperlyConfigured(
                    f"The audit trail needs PostgreSQL or SQLite (append-only triggers), "
                    f"not {connection.vendor}."
                )
        if AuditChainLink._meta.db_table not in existing:
            return  # The chain's own migration is not applied yet.
        for model in chained_models():
            if model._meta.db_table in existing:
                _start_chain(model, using)


def unprotected_tables(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Audit tables whose append-only triggers are missing or disabled (for the link table:
    also the trigger that advances the chain head)."""
    connection = connections[using]
    existing = _existing_tables(using)
    tables = [m._meta.db_table for m in append_only_models() if m._meta.db_table in existing]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            enabled = {table for table, on in _pg_triggers(cursor).items() if on}
            if not _pg_triggers(cursor, ADVANCE_TRIGGER).get(LINK_TABLE):
                enabled.discard(LINK_TABLE)
            return [table for table in tables if table not in enabled]
        present = _sqlite_triggers(cursor)
    needed = {table: {_sqlite_trigger_name("UPDATE", table), _sqlite_trigger_name("DELETE", table)}
              for table in tables}
    if LINK_TABLE in needed:
        needed[LINK_TABLE].add(ADVANCE_TRIGGER)
    return [table for table in tables if not needed[table] <= present]


# --- Verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    table: str
    history_id: int | None
    problem: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"history id {self.history_id}" if self.history_id is not None else "-"
        return f"{self.table}: {where}: {self.problem}" + (f" ({self.detail})" if self.detail
                                                          else "")


@dataclass
class AuditReport:
    rows: int = 0
    tables: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    tips: dict[str, str] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.breaks and not self.unprotected


_BATCH = 1000


def _verify_chain(model, using: str, report: AuditReport) -> ChainBreak | None:
    """Walk one table's chain; the first broken link, or None."""
    table = model._meta.db_table
    current = _columns(model)
    layouts = dict(AuditRowLayout.objects.using(using).filter(table=table)
                   .values_list("pk", "columns"))
    links = AuditChainLink.objects.using(using).filter(table=table).order_by("sequence")
    expected, prev_hash = 1, GENESIS_HASH
    while True:
        batch = list(links.filter(sequence__gte=expected)[:_BATCH])
        if not batch:
            break
        rows = _rows(model, [link.history_id for link in batch], current, using)
        for link in batch:
            if link.sequence != expected:
                return ChainBreak(table, link.history_id, LINK_ORDER_BROKEN,
                                  f"link {expected} is missing")
            if link.prev_hash != prev_hash:
                return ChainBreak(table, link.history_id, LINK_ORDER_BROKEN,
                                  f"link {link.sequence} does not follow link {expected - 1}")
            row = rows.get(link.history_id)
            if row is None:
                return ChainBreak(table, link.history_id, ROW_MISSING)
            columns = layouts[link.layout_id]
            gone = [column for column in columns if column not in current]
            if gone:
                return ChainBreak(table, link.history_id, ROW_ALTERED,
                                  f"column no longer in the table: {', '.join(gone)}")
            hashed = row_hash(table=table, sequence=link.sequence, prev_hash=prev_hash,
                              row={column: row[column] for column in columns})
            if hashed != link.row_hash:
                return ChainBreak(table, link.history_id, ROW_ALTERED)
            prev_hash, expected = link.row_hash, expected + 1
            report.rows += 1
    if expected > 1:
        report.tips[table] = prev_hash
    head = (AuditChainHead.objects.using(using).filter(table=table)
            .values_list("last_sequence", "last_hash").first())
    if head is not None and tuple(head) != (expected - 1, prev_hash):
        return ChainBreak(table, None, LINK_ORDER_BROKEN,
                          f"the chain ends at link {expected - 1}, its head at link {head[0]}")
    linked = AuditChainLink.objects.using(using).filter(table=table).values("history_id")
    stray = (model._base_manager.using(using).exclude(pk__in=linked).order_by("pk")
             .values_list("pk", flat=True).first())
    if stray is not None:
        return ChainBreak(table, stray, ROW_NOT_CHAINED, "written around the application")
    return None


def audit_verify(*, using: str = DEFAULT_DB_ALIAS) -> AuditReport:
    """Recompute every chain from the tables' current contents, in one consistent snapshot;
    report the first broken link of each table and any table left without its triggers."""
    connection = connections[using]
    report = AuditReport()
    snapshot = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if snapshot and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        existing = _existing_tables(using)
        models_by_table = {m._meta.db_table: m for m in chained_models()
                           if m._meta.db_table in existing}
        for model in models_by_table.values():
            report.tables += 1
            broken = _verify_chain(model, using, report)
            if broken is not None:
                report.breaks.append(broken)
        links = AuditChainLink.objects.using(using)
        orphaned = set(links.exclude(table__in=models_by_table)
                       .values_list("table", flat=True).distinct())
        for table in sorted(orphaned):
            first = links.filter(table=table).order_by("sequence").first()
            report.breaks.append(ChainBreak(table, first.history_id, ROW_MISSING,
                                            "the table is gone"))
        report.unprotected = unprotected_tables(using=using)
    return report
