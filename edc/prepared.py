"""Queries the ORM builds once and the hot paths run many times with other values.

Building a queryset with subqueries (``Exists`` over locks, signatures and queries, say) and
compiling it to SQL costs a few milliseconds of Python, far more than PostgreSQL needs to run
it; a save asks the same question of every subject. :class:`PreparedQuery` builds the query
with the ORM on first use, keeps its SQL, and runs it again with the new values in the
parameters' places: the query stays written once, in the ORM, where the models are.

Each argument is an integer (a primary key); on first use the builder receives a marker
value for each, and the places where a marker lands among the compiled parameters are where
later values go. A value of ``None`` changes the SQL (``IS NULL``), so whether each argument
is None is part of the key under which the SQL is kept. The rows come back converted as the
ORM converts them (a boolean from SQLite's 0 or 1, say).
"""

import copy
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

# Within a 32-bit integer column's range (Django answers an out-of-range lookup without
# asking the database) and far above any key this trial's tables will reach.
_MARKER_BASE = 2_147_400_000


class PreparedQueryError(Exception):
    """The builder's query does not carry an argument as a parameter of its SQL."""


class PreparedQuery:
    """``PreparedQuery(lambda subject_id, visit_id: Model.objects.filter(...).values_list(
    ...))``; then ``query.rows(subject_id=1, visit_id=None)`` or ``query.first(...)``."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: dict[tuple, tuple[str, list, dict[int, str], Any]] = {}

    def _compile(self, using: str, arguments: dict[str, int | None]):
        names = [name for name, value in arguments.items() if value is not None]
        markers = {name: _MARKER_BASE + number for number, name in enumerate(names)}
        queryset = self.build(**{name: markers.get(name) for name in arguments})
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        by_marker = {marker: name for name, marker in markers.items()}
        places = {index: by_marker[param] for index, param in enumerate(params)
                  if type(param) is int and param in by_marker}
        missing = set(markers.values()) - {markers[name] for name in places.values()}
        if missing:
            raise PreparedQueryError(
                f"{', '.join(sorted(by_marker[m] for m in missing))}: not a parameter of "
                f"the compiled query")
        return sql, list(params), places, compiler

    def rows(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: int | None) -> list[tuple]:
        key = (using, tuple((name, value is None) for name, value in arguments.items()))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(using, arguments)
        sql, template, places, compiler = compiled
        params = list(template)
        for index, name in places.items():
            params[index] = arguments[name]
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        if not found:
            return []
        if compiler.connection is not connections[using]:
            # Compiled in another thread: convert with this thread's connection.
            compiler = copy.copy(compiler)
            compiler.connection = connections[using]
        return [tuple(row) for row in compiler.results_iter(results=[found])]

    def first(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: int | None) -> tuple | None:
        return next(iter(self.rows(using=using, **arguments)), None)

