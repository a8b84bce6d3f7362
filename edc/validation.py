"""Model validation that reads the database only for what changed."""

import datetime as dt
from contextlib import nullcontext
from decimal import Decimal

from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Coalesce, Length
from django.db.models.lookups import Lookup
from django.db.models.sql import Query
from django.db.models.sql.constants import SINGLE


def _fields_read(constraint: models.BaseConstraint) -> set[str]:
    """The fields a constraint reads; empty when they cannot be told (then it always runs)."""
    if isinstance(constraint, models.UniqueConstraint):
        return set(constraint.fields) if constraint.fields and not constraint.expressions \
            and constraint.condition is None else set()
    if isinstance(constraint, models.CheckConstraint):
        return set(models.Q(constraint.condition).referenced_base_fields)
    return set()


def validate_constraints_over(instance: models.Model, changed: set[str] | None, *,
                              unique: bool = True) -> None:
    """``Model.validate_constraints`` (same errors) over the constraints that read a field in
    ``changed`` (every one when ``None``, a new row): a stored row satisfies the others, since
    the database enforces them. Django validates each check constraint with a query of its own
    (and a savepoint): an update of a few items reads none. ``unique=False`` leaves the
    unique constraints to the caller (it looked for the duplicate itself)."""
    using = router.db_for_write(type(instance), instance=instance)
    errors: dict = {}
    for model_class, constraints in instance.get_constraints():
        chosen = []
        for constraint in constraints:
            if isinstance(constraint, models.UniqueConstraint) and not unique:
                continue
            read = _fields_read(constraint)
            if changed is not None and read and not read & changed:
                continue
            chosen.append(constraint)
        checks = [c for c in chosen if isinstance(c, models.CheckConstraint)]
        # A unique constraint with a condition binds only a row that meets the condition:
        # Django asks the database (a query and a savepoint) whether it does; asked here in
        # the same SELECT as the check constraints.
        gated = [c for c in chosen if isinstance(c, models.UniqueConstraint)
                 and c.condition is not None]
        held = _conditions_held(model_class, instance,
                                [c.condition for c in [*checks, *gated]], using)
        for constraint in checks:
            if held.get(id(constraint.condition)) is False:
                errors = ValidationError(
                    constraint.get_violation_error_message(),
                    code=constraint.violation_error_code,
                ).update_error_dict(errors)
        for constraint in chosen:
            if isinstance(constraint, models.CheckConstraint):
                continue
            if constraint in gated and held.get(id(constraint.condition)) is False:
                continue  # the row is outside the constraint's condition: nothing to collide
            try:
                constraint.validate(model_class, instance, using=using)
            except ValidationError as error:
                if (getattr(error, "code", None) == "unique"
                        and len(getattr(constraint, "fields", ())) == 1):
                    errors.setdefault(constraint.fields[0], []).append(error)
                else:
                    errors = error.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


def _conditions_held(model_class, instance: models.Model, conditions: list,
                     using: str) -> dict[int, bool]:
    """Whether ``instance`` meets each condition (by ``id`` of the condition), evaluated by
    the database in one SELECT (Django asks one query and one savepoint per constraint:
    ``CheckConstraint.validate``). Same semantics: the instance's values stand in for its
    columns, a condition that is NULL holds (as in SQL), a condition naming a field the model
    lacks is not judged here (absent from the answer), and a database error (e.g. a value the
    column's type refuses) judges nothing, leaving it to the database at the save, as Django
    does."""
    if not conditions:
        return {}
    against = instance._get_field_expression_map(meta=model_class._meta)
    held: dict[int, bool] = {}
    left = []
    for condition in conditions:
        verdict = condition_holds(condition, against)
        if verdict is None:
            left.append(condition)
        else:
            held[id(condition)] = verdict
    return held | _conditions_held_in_sql(left, against, using)


def _conditions_held_in_sql(conditions: list, against: dict, using: str) -> dict[int, bool]:
    if not conditions:
        return {}
    query = Query(None)
    for name, value in against.items():
        if not hasattr(value, "resolve_expression"):
            value = Value(value)
        query.add_annotation(value, name, select=False)
    judged = []
    for index, condition in enumerate(conditions):
        expression = Coalesce(ExpressionWrapper(Q(condition), output_field=BooleanField()),
                              Value(True), output_field=BooleanField())
        try:
            query.add_annotation(expression, f"_check_{index}")
        except FieldError:
            continue
        judged.append(condition)
    if not judged:
        return {}
    connection = connections[using]
    try:
        with transaction.atomic(using=using) if connection.in_atomic_block else nullcontext():
            row = query.get_compiler(using=using).execute_sql(SINGLE)
    except DatabaseError:
        return {}
    return {id(c): bool(held) for c, held in zip(judged, row, strict=True)}


# --- Judging a check constraint in Python -------------------------------------------------------
#
# The check constraints of this project are comparisons of a row's own columns with constants or
# with each other, joined by AND, OR and NOT. ``condition_holds`` judges those the way the
# database does (SQL's three-valued logic: a comparison with NULL is unknown, and an unknown
# condition holds), so that a save asks the database nothing to validate them; a condition it
# cannot judge exactly (a regular expression, a text ordered by collation, a join, a transform,
# a value of a type it does not compare) is left to the SELECT above. The database enforces
# every constraint again at the save. tests/test_validation.py compares both verdicts on every
# check constraint of every model.


class _NotJudged(Exception):
    """The condition is left to the database."""


# Values compared for order the same way in Python and in PostgreSQL or SQLite. Text is not
# (the collation orders it), nor bool (SQLite stores it as an integer).
_ORDERED = (int, Decimal, float, dt.date, dt.time, dt.timedelta)
_EQUAL = (*_ORDERED, str, bool)
_COMPARE = {
    "exact": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def condition_holds(condition, against: dict) -> bool | None:
    """Whether a row whose values are ``against`` (``Model._get_field_expression_map``) meets
    a check constraint's ``condition``, as the database judges it (unknown holds); None when
    it is not judged here."""
    try:
        verdict = _truth(condition, against)
    except (_NotJudged, TypeError, ArithmeticError):
        return None
    return verdict is not False


def _truth(node, against: dict) -> bool | None:
    """SQL truth of ``node``: True, False or None (unknown)."""
    if isinstance(node, Q):
        return _truth_of_q(node, against)
    if isinstance(node, Lookup):
        return _compare(node.lookup_name, _operand(node.lhs, against),
                        _operand(node.rhs, against))
    raise _NotJudged


def _truth_of_q(q: Q, against: dict) -> bool | None:
    if not q.children:
        raise _NotJudged
    verdicts = []
    undecided = False
    for child in q.children:
        try:
            if isinstance(child, tuple):
                verdicts.append(_truth_of_leaf(*child, against))
            else:
                verdicts.append(_truth(child, against))
        except _NotJudged:
            undecided = True
    decisive = q.connector == Q.OR
    if decisive in verdicts:
        result = decisive
    elif undecided:
        raise _NotJudged  # the children not judged decide
    elif None in verdicts:
        result = None
    else:
        result = not decisive
    if q.negated and result is not None:
        return not result
    return result


def _truth_of_leaf(path: str, value, against: dict) -> bool | None:
    name, _sep, lookup = path.partition("__")
    lookup = lookup or "exact"
    if name not in against:
        raise _NotJudged  # a join, or a field the model lacks
    column = _operand(F(name), against)
    if lookup == "exact" and value is None:
        lookup, value = "isnull", True
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise _NotJudged
        return (column is None) == value
    if lookup == "in":
        if column is None:
            return None
        values = [_operand(item, against) for item in value]
        if any(item is None for item in values):
            raise _NotJudged  # x IN (…, NULL): unknown when not found
        return any(_compare("exact", column, item) for item in values)
    if lookup == "range":
        low, high = (_operand(item, against) for item in value)
        return _and(_compare("gte", column, low), _compare("lte", column, high))
    return _compare(lookup, column, _operand(value, against))


def _and(left: bool | None, right: bool | None) -> bool | None:
    if left is False or right is False:
        return False
    return None if left is None or right is None else True


def _operand(value, against: dict):
    """The Python value of a constant, a column (``F``), or the length of a column's text."""
    if isinstance(value, F):
        if value.name not in against:
            raise _NotJudged
        value = against[value.name]
    if isinstance(value, Length):
        [inner] = value.get_source_expressions()
        text = _operand(inner, against)
        if text is not None and not isinstance(text, str):
            raise _NotJudged
        return None if text is None else len(text)
    if isinstance(value, Value):
        value = value.value
    if value is None:
        return None
    if hasattr(value, "resolve_expression") or not isinstance(value, _EQUAL):
        raise _NotJudged
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise _NotJudged  # the database would read it in the connection's time zone
    return value


def _compare(lookup: str, left, right) -> bool | None:
    if lookup not in _COMPARE:
        raise _NotJudged  # regex, iexact, contains, …: the database's own rules
    if left is None or right is None:
        return None
    ordered = lookup != "exact"
    kinds = _ORDERED if ordered else _EQUAL
    if not (isinstance(left, kinds) and isinstance(right, kinds)):
        raise _NotJudged
    if isinstance(left, bool) != isinstance(right, bool) or (
            isinstance(left, str) != isinstance(right, str)):
        raise _NotJudged  # the database casts one to the other, or refuses
    if isinstance(left, dt.datetime) != isinstance(right, dt.datetime):
        raise _NotJudged  # a date against a timestamp: cast by the database
    if isinstance(left, float) or isinstance(right, float):
        raise _NotJudged  # a float against a numeric column: rounded by the database
    return _COMPARE[lookup](left, right)


def links_in_hand(instance: models.Model) -> list[str]:
    """The foreign keys of ``instance`` set from a saved object the caller holds (the subject
    it read, the site, the user acting): their rows exist, since nothing linked is ever
    deleted (every link protects its target, and the database checks the key at the save
    anyway), so validation need not read them again. A one-to-one link is left to validation
    (a second row for the same target is refused with a message)."""
    return [field.name for field in instance._meta.concrete_fields
            if field.is_relation and not field.unique and field.is_cached(instance)
            and (target := getattr(instance, field.name)) is not None
            and target.pk is not None and target.pk == getattr(instance, field.attname)]


def field_values(instance: models.Model) -> dict[str, object]:
    """Every concrete field's value, by field name (to tell later which changed)."""
    return {field.name: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields}


def changed_fields(instance: models.Model, before: dict[str, object]) -> set[str]:
    return {name for name, value in field_values(instance).items() if before.get(name) != value}
