"""Database roles on PostgreSQL (issue 19 item 4): an owner that migrates, an application role
that owns nothing.

The append-only triggers hold only against a connection that cannot remove them: the owner of
a table may disable its triggers, truncate it or drop it. So the database and every table,
sequence and function belong to the **owner** role, which only ``migrate`` uses; the web
processes, workers and beat connect as the **application** role, which

- may read and write the tables of the product (sessions, forms, subjects, ...);
- may only ``SELECT`` and ``INSERT`` into the history and audit tables (``edc.audit``'s
  append-only tables), plus ``UPDATE`` of the chain heads, whose trigger lets a head move only
  one link forward (and a locking read of the head needs that privilege);
- holds no ``TRUNCATE``, ``REFERENCES`` or ``TRIGGER`` privilege, and, owning nothing, cannot
  ``ALTER`` (so cannot disable a trigger) or ``DROP`` any table; nor create tables.

:func:`db_roles_create` (``manage.py db_roles``, run once by a superuser) creates both roles
and hands every object to the owner; :func:`db_grants` gives the application role its
privileges and runs again after every ``migrate`` run as the owner (``DATABASE_APP_ROLE``:
``post_migrate``), so a table a later migration adds is covered.
"""

from django.db import DEFAULT_DB_ALIAS, connections

from edc.audit import append_only_models
from edc.models import AuditChainHead


def _quote(name: str) -> str:
    if not name or len(name) > 63 or not all(ch.isalnum() or ch == "_" for ch in name):
        raise ValueError(f"a role name is letters, digits and underscores (63 at most): "
                         f"{name!r}")
    return f'"{name}"'


def _role_exists(cursor, name: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    return cursor.fetchone() is not None


def db_roles_create(*, owner: str, app: str, owner_password: str | None = None,
                    app_password: str | None = None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create (or update) the owner and the application role, and make the owner own the
    database and everything in its ``public`` schema. Needs a superuser connection."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise ValueError("database roles are for PostgreSQL")
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        for role, password in ((owner, owner_password), (app, app_password)):
            verb = "ALTER" if _role_exists(cursor, role) else "CREATE"
            cursor.execute(f"{verb} ROLE {_quote(role)} LOGIN NOSUPERUSER NOCREATEDB "
                           "NOCREATEROLE NOREPLICATION NOBYPASSRLS")
            if password:
                cursor.execute(f"ALTER ROLE {_quote(role)} PASSWORD %s", [password])
        cursor.execute(f"ALTER DATABASE {connection.ops.quote_name(database)} "
                       f"OWNER TO {_quote(owner)}")
        cursor.execute(f"ALTER SCHEMA public OWNER TO {_quote(owner)}")
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cursor.execute(
            "SELECT c.relname, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "AND pg_get_userbyid(c.relowner) <> %s", [owner])
        for name, kind in cursor.fetchall():
            if kind == "S":
                cursor.execute("SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                               "WHERE c.relname = %s AND d.deptype IN ('a', 'i')", [name])
                if cursor.fetchone():
                    continue  # a column's own sequence follows its table
            cursor.execute(f"ALTER TABLE {connection.ops.quote_name(name)} "
                           f"OWNER TO {_quote(owner)}")
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s", [owner])
        for (signature,) in cursor.fetchall():
            cursor.execute(f"ALTER FUNCTION {signature} OWNER TO {_quote(owner)}")
    db_grants(app=app, using=using)


def db_grants(*, app: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """The application role's privileges on every table that exists now (run by the owner or
    a superuser): read and write the product's tables, only read and append the audit's."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    existing = set(connection.introspection.table_names())
    append_only = {m._meta.db_table for m in append_only_models()} & existing
    head = AuditChainHead._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT CONNECT ON DATABASE {quote(connection.settings_dict['NAME'])} "
                       f"TO {_quote(app)}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {_quote(app)}")
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {_quote(app)}")
        for table in sorted(existing):
            if table == "django_migrations":
                privileges = "SELECT"
            elif table == head:
                privileges = "SELECT, INSERT, UPDATE"
            elif table in append_only:
                privileges = "SELECT, INSERT"
            else:
                privileges = "SELECT, INSERT, UPDATE, DELETE"
            cursor.execute(f"GRANT {privileges} ON {quote(table)} TO {_quote(app)}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {_quote(app)}")
