"""Queries the ORM builds once and the hot paths run many times with other values.

Building a queryset with subqueries (``Exists`` over locks, signatures and queries, say) and
compiling it to SQL costs a few milliseconds of Python, far more than PostgreSQL needs to run
it; a save asks the same question of every subject. :class:`PreparedQuery` builds the query
with the ORM on first use, keeps its SQL, and runs it again with the new values in the
parameters' places: the query stays written once, in the ORM, where the models are.

Each argument is an integer (a primary key) or a list of them; on first use the builder
receives a marker value for each, and the places where a marker lands among the compiled
parameters are where later values go. A value of ``None`` changes the SQL (``IS NULL``), and
so does a list's length (``IN (%s, %s)``): both are part of the key under which the SQL is
kept. The builder uses its arguments only as values in the query (an argument that does not
reach the parameters unchanged is refused with :class:`PreparedQueryError`). The rows come
back converted as the ORM converts them (a boolean from SQLite's 0 or 1, say).
"""

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable
from django.db.transaction import TransactionManagementError

# Within a 32-bit integer column's range (Django answers an out-of-range lookup without
# asking the database) and far above any key this trial's tables will reach.
_MARKER_BASE = 2_147_400_000

# The compiled statements kept per query (each list length is one).
_KEPT = 256

Argument = int | None | Sequence[int]


class PreparedQueryError(Exception):
    """The builder's query does not carry an argument as a parameter of its SQL, or is not a
    query this module can run again (related rows, annotations or deferred fields)."""


def _shape(value: Argument) -> object:
    """What of an argument changes the SQL: None (``IS NULL``), a list's length (``IN``)."""
    if value is None:
        return None
    if isinstance(value, int):
        return int
    return len(value)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    places: dict[int, tuple[str, int | None]]  # parameter index -> (argument, list position)
    compiler: Any
    model: "_ModelColumns | None"


@dataclass(frozen=True)
class _ModelColumns:
    start: int
    end: int
    attnames: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]


class PreparedQuery:
    """``PreparedQuery(lambda subject_id, visit_id: Model.objects.filter(...).values_list(
    ...))``; then ``query.rows(subject_id=1, visit_id=None)``, ``query.first(...)``, or, for a
    plain queryset of a model, ``query.instances(...)``. An argument is an integer, None, or
    a list of integers (``pk__in``: each length its own SQL, compiled when first seen)."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: dict[tuple, _Compiled] = {}

    def _compile(self, using: str, arguments: dict[str, Argument]) -> _Compiled:
        counter = itertools.count(_MARKER_BASE)
        markers: dict[int, tuple[str, int | None]] = {}
        given: dict[str, Argument] = {}
        for name, value in arguments.items():
            if value is None:
                given[name] = None
            elif isinstance(value, int):
                marker = next(counter)
                markers[marker] = (name, None)
                given[name] = marker
            else:
                given[name] = []
                for position in range(len(value)):
                    marker = next(counter)
                    markers[marker] = (name, position)
                    given[name].append(marker)
        queryset = self.build(**given)
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        places = {index: markers[param] for index, param in enumerate(params)
                  if type(param) is int and param in markers}
        missing = set(markers.values()) - set(places.values())
        if missing:
            raise PreparedQueryError(
                f"{', '.join(sorted({name for name, _at in missing}))}: not a parameter of "
                f"the compiled query")
        return _Compiled(sql, tuple(params), places, compiler,
                         self._model_columns(queryset, compiler))

    @staticmethod
    def _model_columns(queryset: QuerySet, compiler) -> _ModelColumns | None:
        """Where a row's model fields and annotations are, for a queryset of model instances
        with nothing related and no deferred field; None for any other."""
        query = queryset.query
        if (queryset._iterable_class is not ModelIterable or query.select_related
                or query.deferred_loading[0] or not query.deferred_loading[1]
                or compiler.klass_info is None):
            return None
        fields = compiler.klass_info["select_fields"]
        return _ModelColumns(
            start=fields[0], end=fields[-1] + 1,
            attnames=tuple(compiler.select[i][0].target.attname for i in fields),
            annotations=tuple(compiler.annotation_col_map.items()))

    def _for(self, using: str, arguments: dict[str, Argument]) -> _Compiled:
        key = (using, tuple((name, _shape(value)) for name, value in arguments.items()))
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= _KEPT:
                self._compiled.clear()  # lists of many lengths: keep the memory bounded
            compiled = self._compiled[key] = self._compile(using, arguments)
        return compiled

    def statement(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: Argument
                  ) -> tuple[str, list]:
        """The SQL and its parameters with these values (to embed in a larger statement)."""
        compiled = self._for(using, arguments)
        params = list(compiled.params)
        for index, (name, position) in compiled.places.items():
            value = arguments[name]
            params[index] = value if position is None else value[position]
        return compiled.sql, params

    def _fetch(self, using: str, arguments: dict[str, Argument]) -> tuple[_Compiled, list]:
        compiled = self._for(using, arguments)
        sql, params = self.statement(using=using, **arguments)
        connection = connections[using]
        if (compiled.compiler.query.select_for_update and connection.get_autocommit()
                and connection.features.has_select_for_update):
            # As the ORM refuses it: a lock outside a transaction would be let go at once.
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return compiled, cursor.fetchall()

    def converted(self, rows: list, *, using: str = DEFAULT_DB_ALIAS, **arguments: Argument
                  ) -> list[tuple]:
        """``rows`` read with :meth:`statement`'s SQL, converted as the ORM converts them."""
        if not rows:
            return []
        compiler = self._for(using, arguments).compiler
        if compiler.connection is not connections[using]:
            # Compiled in another thread: convert with this thread's connection.
            compiler = copy.copy(compiler)
            compiler.connection = connections[using]
        return [tuple(row) for row in compiler.results_iter(results=[rows])]

    def rows(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: Argument) -> list[tuple]:
        _compiled, found = self._fetch(using, arguments)
        return self.converted(found, using=using, **arguments)

    def first(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: Argument) -> tuple | None:
        return next(iter(self.rows(using=using, **arguments)), None)

    def instances(self, *, using: str = DEFAULT_DB_ALIAS, **arguments: Argument) -> list:
        """The model instances of a queryset of a model (every field, nothing related; its
        annotations set as attributes), as the ORM makes them (``Model.from_db``)."""
        compiled, found = self._fetch(using, arguments)
        columns = compiled.model
        if columns is None:
            raise PreparedQueryError("instances() needs a plain queryset of a model: no "
                                     "values(), select_related(), only() or defer()")
        model = compiled.compiler.query.model
        made = []
        for row in self.converted(found, using=using, **arguments):
            instance = model.from_db(using, columns.attnames, row[columns.start:columns.end])
            for name, at in columns.annotations:
                setattr(instance, name, row[at])
            made.append(instance)
        return made
