"""Constraint validation in one statement (edc.validation): the same errors as Django's
``Model.validate_constraints``, one SELECT for all of a model's check constraints."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from edc.validation import validate_constraints_over
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
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 1  # Django's own way: one SELECT (and a savepoint) per check


def test_a_subject_randomized_before_consent_is_refused_with_the_constraint_message(subject):
    subject.consented_at = timezone.now()
    subject.randomized_at = subject.consented_at - dt.timedelta(hours=1)
    expected = _errors(subject.validate_constraints)
    assert expected  # the case is a violation
    assert _errors(lambda: validate_constraints_over(subject, None, unique=False)) == expected
