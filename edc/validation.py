"""Model validation that reads the database only for what changed."""

from contextlib import nullcontext

from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.db.models.functions import Coalesce
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


def field_values(instance: models.Model) -> dict[str, object]:
    """Every concrete field's value, by field name (to tell later which changed)."""
    return {field.name: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields}


def changed_fields(instance: models.Model, before: dict[str, object]) -> set[str]:
    return {name for name, value in field_values(instance).items() if before.get(name) != value}
