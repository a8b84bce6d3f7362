"""Constraint validation in one statement (edc.validation): the same errors as Django's
``Model.validate_constraints``, one SELECT for all of a model's check constraints."""

import datetime as dt
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from edc.validation import _conditions_held_in_sql, condition_holds, validate_constraints_over
from visits.models import Subject, Visit

pytestmark = pytest.mark.django_db


def _errors(call) -> dict | None:
    try:
        call()
    except ValidationError as error:
        return {key: sorted(str(m) for m in messages)
                for key, messages in error.message_dict.items()}
    return None


def _visit(subject, **values) -> Visit:
    today = dt.date(2026, 6, 1)
    return Visit(subject=subject, code="D8", sequence=0, **({
        "planned_date": today, "window_start": today, "window_end": today} | values))


@pytest.fixture
def subject(site):
    return Subject(site=site, screening_number="S-VAL-1", screened_at=timezone.now())


@pytest.mark.parametrize("values", [
    {},                                                     # passes every check
    {"is_missed": True},                                    # missed without a reason
    {"is_missed": True, "actual_date": dt.date(2026, 6, 1), "missed_reason": "x"},
    {"window_start": dt.date(2026, 6, 2)},                  # window after the planned date
    {"planned_date": None},                                 # scheduled visit without a date
    {"is_missed": True, "window_end": dt.date(2026, 5, 1)},  # two checks fail at once
])
def test_the_same_errors_as_django_in_one_statement(subject, values):
    visit = _visit(subject, **values)
    expected = _errors(visit.validate_constraints)
    with CaptureQueriesContext(connection) as captured:
        found = _errors(lambda: validate_constraints_over(visit, None, unique=False))
    assert found == expected
    # Django's own way: one SELECT (and a savepoint) per check; these are judged in Python.
    assert not captured.captured_queries


def test_a_condition_python_leaves_to_the_database_is_judged_by_it_in_one_select(subject):
    """A regular expression (the MedDRA code's) is the database's to judge: one SELECT."""
    from forms.models import AdverseEvent

    for code, valid in (("1234567a", False), ("12345678", True)):
        event = AdverseEvent(subject=subject, term="Headache", meddra_code=code,
                             ctcae_grade=9)
        expected = _errors(event.validate_constraints)
        with CaptureQueriesContext(connection) as captured:
            found = _errors(lambda e=event: validate_constraints_over(e, None, unique=False))
        assert found == expected
        assert ("meddra_code_8_digits" in str(found)) != valid, found
        selects = [q for q in captured.captured_queries if q["sql"].startswith("SELECT")]
        assert len(selects) == 1


def test_a_subject_randomized_before_consent_is_refused_with_the_constraint_message(subject):
    subject.consented_at = timezone.now()
    subject.randomized_at = subject.consented_at - dt.timedelta(hours=1)
    expected = _errors(subject.validate_constraints)
    assert expected  # the case is a violation
    assert _errors(lambda: validate_constraints_over(subject, None, unique=False)) == expected


# --- Check constraints judged in Python, as the database judges them -----------------------------

def _pool(field, rng) -> list:
    """Values of ``field``'s type around the bounds the project's constraints name."""
    values = [None] if field.null else []
    kind = field.get_internal_type()
    if field.choices:
        values += [choice for choice, _label in field.flatchoices]
        values += [""] if kind in ("CharField", "TextField") else []
    elif kind in ("CharField", "TextField"):
        values += ["", "x", "12345678", "1234567a"] + [
            "a" * n for n in (999, 1000, 1001, 3999, 4000, 4001, 7999, 8000, 8001)]
    elif kind in ("IntegerField", "PositiveIntegerField", "PositiveSmallIntegerField",
                  "SmallIntegerField", "BigIntegerField"):
        values += [-1, 0, 1, 2, 3, 4, 5, 6, 41, 42, 43]
    elif kind == "DecimalField":
        values += [Decimal("-1"), Decimal(0), Decimal("0.01"), Decimal(1), Decimal("99.9"),
                   Decimal("100.0"), Decimal(100), Decimal("100.1")]
    elif kind == "DateTimeField":
        moment = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
        values += [moment + dt.timedelta(hours=h) for h in (-1, 0, 1)]
        values.append(moment.astimezone(ZoneInfo("Asia/Shanghai")))  # the same instant
    elif kind == "DateField":
        values += [dt.date(2026, 6, 1) + dt.timedelta(days=d) for d in (-1, 0, 1)]
    elif kind == "BooleanField":
        values += [True, False]
    elif field.is_relation:
        values += [1, 2]
    else:
        values += [rng.choice([0, 1, "", "x"])]
    return values


def _check_constrained_models():
    for model in apps.get_models():
        checks = [c for c in model._meta.constraints if isinstance(c, models.CheckConstraint)]
        if checks:
            yield model, checks


@pytest.mark.parametrize(("model", "checks"), list(_check_constrained_models()),
                         ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_check_constraints_judged_in_python_as_the_database_judges_them(model, checks):
    """Every check constraint of every model, over rows made of boundary values of the
    fields it reads: where Python judges it (``condition_holds``), it says what the
    database says; and it judges every constraint but those it must leave to the database."""
    rng = random.Random(model.__name__)  # noqa: S311 - reproducible rows
    names = sorted({name for check in checks
                    for name in models.Q(check.condition).referenced_base_fields})
    fields = [model._meta.get_field(name) for name in names]
    pools = [_pool(field, rng) for field in fields]
    judged = dict.fromkeys((check.name for check in checks), 0)
    for _row in range(120):
        instance = model()
        for field, pool in zip(fields, pools, strict=True):
            setattr(instance, field.attname, rng.choice(pool))
        against = instance._get_field_expression_map(meta=model._meta)
        in_sql = _conditions_held_in_sql([check.condition for check in checks], against,
                                         "default")
        for check in checks:
            verdict = condition_holds(check.condition, against)
            if verdict is not None:
                judged[check.name] += 1
                assert verdict == in_sql[id(check.condition)], (check.name, {
                    name: getattr(instance, field.attname)
                    for name, field in zip(names, fields, strict=True)})
    # Each is judged here on some rows (the MedDRA code's regular expression is left to the
    # database, but an empty code needs none).
    assert not [name for name, count in judged.items() if not count]
