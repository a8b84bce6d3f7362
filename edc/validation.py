"""Model validation that reads the database only for what changed."""

from django.core.exceptions import ValidationError
from django.db import models, router


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
        for constraint in constraints:
            if isinstance(constraint, models.UniqueConstraint) and not unique:
                continue
            read = _fields_read(constraint)
            if changed is not None and read and not read & changed:
                continue
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


def field_values(instance: models.Model) -> dict[str, object]:
    """Every concrete field's value, by field name (to tell later which changed)."""
    return {field.name: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields}


def changed_fields(instance: models.Model, before: dict[str, object]) -> set[str]:
    return {name for name, value in field_values(instance).items() if before.get(name) != value}
