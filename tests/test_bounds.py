"""Every free-text input is bounded in the model, the database and the page, and text never
carries a NUL character (issue 14, item 10, input side). The limits live in ``edc.bounds``."""

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import DatabaseError, connection, models, transaction
from django.db.models.functions import Length
from django.urls import reverse
from django.utils import timezone

from edc import bounds
from edc.roles import Role
from forms.entry import services
from forms.models import MedicalHistory, VitalSigns
from forms.models.signoff import LockScope
from forms.quality import queries
from forms.review import locks
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject
from visits.models import Visit

PROJECT_APPS = ("edc", "visits", "forms")


def text_fields():
    """(model, field) for every text field of every model of the project; history tables
    mirror the fields of their model and are written only from it."""
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS or model.__name__.startswith("Historical"):
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField):
                yield model, field


def length_check_for(model, field):
    """The database constraint that bounds ``field``, with its limit, or None."""
    for constraint in model._meta.constraints:
        if not isinstance(constraint, models.CheckConstraint):
            continue
        condition = constraint.condition
        lhs = getattr(condition, "lhs", None)
        if (getattr(condition, "lookup_name", "") == "lte" and isinstance(lhs, Length)
                and lhs.source_expressions[0].name == field.name):
            return condition.rhs
    return None


@pytest.mark.parametrize(("model", "field"), list(text_fields()),
                         ids=lambda v: getattr(v, "name", None) or v.__name__)
def test_every_text_field_has_a_limit_in_the_model_and_the_database(model, field):
    assert field.max_length, f"{model.__name__}.{field.name} has no max_length"
    validators = [v for v in field.validators if isinstance(v, MaxLengthValidator)]
    assert [v.limit_value for v in validators] == [field.max_length], \
        f"{model.__name__}.{field.name}: the model does not refuse longer text"
    if isinstance(field, models.TextField):
        assert length_check_for(model, field) == field.max_length, \
            f"{model.__name__}.{field.name}: no length check in the database"
    else:
        assert field.db_type(connection).startswith(("varchar", "character varying")), \
            field.db_type(connection)
        assert f"({field.max_length})" in field.db_type(connection)


def test_the_walk_sees_the_free_text_fields():
    names = {f"{m.__name__}.{f.name}" for m, f in text_fields()}
    assert {"Visit.missed_reason", "Query.text", "QueryMessage.text", "Lock.reason",
            "Unblinding.reason", "AdverseEvent.term", "ProtocolDeviation.description"} <= names


def test_the_limits_are_ones_a_person_accepts():
    assert bounds.TERM >= 200 and bounds.REASON >= 500 and bounds.DESCRIPTION >= 2000
    assert Visit._meta.get_field("missed_reason").max_length == bounds.REASON


# --- the database refuses over-long text that skipped validation ----------------------------


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse,
                              randomized_at=timezone.now() - dt.timedelta(days=3))


def test_the_database_refuses_over_long_text_that_skipped_validation(subject):
    visit = subject.visits.get(code="D2")
    visit.missed_reason = "x" * (bounds.REASON + 1)
    with pytest.raises(DatabaseError), transaction.atomic():
        visit.save()  # no full_clean: only the database stands in the way
    visit.refresh_from_db()
    assert visit.missed_reason == ""


# --- services refuse over-long text and NUL with a message -----------------------------------


@pytest.fixture
def data_manager(db):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def vitals(subject, nurse):
    return save(VitalSigns, subject, nurse, {
        "measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
        "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
        "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")},
        visit=subject.visits.get(code="D2"))


@pytest.mark.parametrize(("text", "message"), [
    ("q" * (bounds.DESCRIPTION + 1), f"at most {bounds.DESCRIPTION} characters"),
    ("a\x00b", "Null characters are not allowed."),
])
def test_query_texts_are_bounded(vitals, data_manager, text, message):
    with pytest.raises(ValidationError, match=message):
        queries.query_raise(target=vitals, field_name="heart_rate", text=text,
                            user=data_manager)
    assert not queries.Query.objects.exists()
    query = queries.query_raise(target=vitals, field_name="heart_rate", text="Confirm?",
                                user=data_manager)
    with pytest.raises(ValidationError, match=message):
        queries.query_close(query=query, user=data_manager, text=text)


@pytest.mark.parametrize(("text", "message"), [
    ("r" * (bounds.REASON + 1), f"at most {bounds.REASON} characters"),
    ("why\x00", "Null characters are not allowed."),
])
def test_reasons_are_bounded_in_the_services(subject, nurse, data_manager, vitals, text,
                                             message):
    with pytest.raises(ValidationError, match=message):
        locks.lock_create(user=data_manager, scope=LockScope.SUBJECT, target=subject,
                          reason=text)
    with pytest.raises(ValidationError, match=message):
        services.visit_missed(visit=subject.visits.get(code="D8"), reason=text, user=nurse)
    with pytest.raises(ValidationError, match=message):
        services.crf_save(crf=vitals, values={"heart_rate": 80}, user=nurse,
                          expected_version=vitals.version, complete=True, reason=text)
    vitals.refresh_from_db()
    assert vitals.heart_rate == 78


# --- the pages show the limit and refuse longer input with a message -------------------------


def test_the_crf_page_bounds_its_text_and_refuses_longer(client, subject, nurse):
    scr = subject.visits.get(code="SCR")
    url = reverse("forms:visit_crf", args=[subject.pk, scr.pk, "medical_history"])
    client.force_login(nurse)
    page = client.get(url).content.decode()
    assert f'maxlength="{bounds.DESCRIPTION}"' in page
    response = client.post(url, {"version": 0, "action": "draft",
                                 "other_conditions": "长" * (bounds.DESCRIPTION + 1)})
    assert response.status_code == 400
    assert f"at most {bounds.DESCRIPTION} characters" in response.content.decode()
    assert not MedicalHistory.objects.exists()


def test_the_visit_page_refuses_an_over_long_missed_reason(client, subject, nurse):
    visit = subject.visits.get(code="D8")
    client.force_login(nurse)
    url = reverse("forms:visit_update", args=[subject.pk, visit.pk])
    assert f'maxlength="{bounds.REASON}"' in client.get(url).content.decode()
    response = client.post(url, {"missed_reason": "m" * (bounds.REASON + 1)})
    assert response.status_code == 400
    assert f"at most {bounds.REASON} characters" in response.content.decode()
    visit.refresh_from_db()
    assert not visit.is_missed and visit.missed_reason == ""


def test_the_eligibility_page_refuses_a_reason_with_nul(client, subject, nurse):
    client.force_login(nurse)
    response = client.post(reverse("forms:eligibility", args=[subject.pk]),
                           {"version": "0", "reason": "typo\x00"})
    assert response.status_code == 400
    assert "Null characters are not allowed." in response.content.decode()


def test_the_query_pages_say_why_an_over_long_query_is_refused(client, vitals, subject,
                                                               data_manager):
    client.force_login(data_manager)
    url = reverse("forms:query_new", args=[subject.pk, "vital_signs", vitals.pk])
    page = reverse("forms:visit_crf", args=[subject.pk, vitals.visit_id, "vital_signs"])
    response = client.post(url, {"field": "heart_rate", "text": "q" * (bounds.DESCRIPTION + 1),
                                 "next": page}, follow=True)
    assert response.status_code == 200
    assert f"at most {bounds.DESCRIPTION} characters" in response.content.decode()
    assert f'maxlength="{bounds.DESCRIPTION}"' in response.content.decode()
    assert not queries.Query.objects.exists()


def test_the_lock_page_says_why_a_reason_with_nul_is_refused(client, subject, data_manager):
    client.force_login(data_manager)
    response = client.post(reverse("forms:lock"), {
        "scope": "subject", "subject": subject.pk, "reason": "end\x00"}, follow=True)
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert not locks.Lock.objects.exists()


def test_system_text_is_cut_to_fit():
    text = "é" * (bounds.SYSTEM_TEXT * 2)
    assert len(bounds.cut(text)) == bounds.SYSTEM_TEXT
    assert bounds.cut("short\x00") == "short"


def test_the_longest_accepted_unblinding_reason_is_kept_whole(subject, site):
    from visits.services import subject_unblind

    investigator = UserFactory(username="inv", role=Role.INVESTIGATOR, sites=[site])
    reason = "急" * bounds.REASON
    unblinding = subject_unblind(subject=subject, user=investigator, reason=reason)
    assert unblinding.reason == reason
    with pytest.raises(ValidationError, match=f"at most {bounds.REASON} characters"):
        subject_unblind(subject=subject, user=investigator, reason=reason + "!")
