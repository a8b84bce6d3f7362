"""Electronic signatures and data locks (issue 6, items 6 and 8)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from edc.history import system_writes
from edc.protocol import visit_def
from edc.roles import Role
from forms.entry import services
from forms.models import CRF_MODELS, VitalSigns
from forms.models.adverse_events import AdverseEvent
from forms.models.signoff import LockScope
from forms.quality import queries
from forms.quality.queries import Query
from forms.review import locks, signatures
from tests.factories import PASSWORD, UserFactory, randomized_subject


@pytest.fixture
def investigator(site):
    return UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site],
                       first_name="Wang", last_name="Wei")


@pytest.fixture
def data_manager():
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse,
                              randomized_at=timezone.now() - dt.timedelta(days=5))


def complete_visit(subject, user, code="D2"):
    visit = subject.visits.get(code=code)
    services.visit_record(visit=visit, actual_date=visit.planned_date, user=user)
    for crf_code, slot in visit_def(code).expected_forms():
        services.crf_save(crf=services.crf_instance(model=CRF_MODELS[crf_code], subject=subject,
                                                    visit=visit, slot=slot),
                          values={}, user=user, expected_version=0, complete=True,
                          not_done_reason="not_done")
    return visit


def test_signing_needs_the_password_and_complete_forms(subject, nurse, investigator):
    visit = subject.visits.get(code="D2")
    with pytest.raises(ValidationError, match="needs complete forms"):
        signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                 password=PASSWORD)
    complete_visit(subject, nurse)
    with pytest.raises(ValidationError, match="password"):
        signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                 password="wrong")
    signature = signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                         password=PASSWORD)
    assert signature.printed_name == "Wang Wei"
    assert "accurate and complete" in signature.meaning
    assert signature.history.first().history_user == investigator


def test_site_staff_cannot_sign(subject, nurse):
    with pytest.raises(PermissionDenied):
        signatures.casebook_sign(subject=subject, user=nurse, password=PASSWORD)


def test_a_change_to_signed_data_breaks_the_signature(client, subject, nurse, investigator):
    visit = complete_visit(subject, nurse)
    signature = signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                         password=PASSWORD)
    vitals = VitalSigns.objects.get(visit=visit)
    services.crf_save(crf=vitals, values={"heart_rate": 70}, user=nurse,
                      expected_version=vitals.version, reason="Measured after all")
    signature.refresh_from_db()
    assert signature.is_broken and "changed by" in signature.broken_reason
    client.force_login(investigator)
    html = client.get(reverse("forms:casebook", args=[subject.pk])).content.decode()
    assert "a new signature is needed" in html


def test_a_new_log_entry_breaks_the_casebook_signature_not_a_visit_signature(
    subject, nurse, investigator
):
    visit = complete_visit(subject, nurse)
    visit_signature = signatures.casebook_sign(subject=subject, visit=visit,
                                               user=investigator, password=PASSWORD)
    with system_writes():  # test data written directly
        casebook_signature = signatures.Signature.objects.create(
            subject=subject, signer=investigator, printed_name="Wang Wei", meaning="m",
            signed_at=timezone.now(), fingerprint="x")
    services.crf_save(crf=AdverseEvent(subject=subject), user=nurse, expected_version=0,
                      values={"term": "Headache", "start_date": timezone.localdate()})
    visit_signature.refresh_from_db()
    casebook_signature.refresh_from_db()
    assert not visit_signature.is_broken
    assert casebook_signature.is_broken


def test_signing_in_the_page_shows_name_time_and_meaning(client, subject, nurse, investigator):
    visit = complete_visit(subject, nurse)
    client.force_login(investigator)
    url = reverse("forms:sign_visit", args=[subject.pk, visit.pk])
    page = client.get(url).content.decode()
    assert "Wang Wei" in page and "accurate and complete" in page
    assert client.post(url, {"password": "nope"}).status_code == 400
    assert client.post(url, {"password": PASSWORD}).status_code == 302
    assert signatures.Signature.objects.filter(subject=subject, visit=visit).exists()


@pytest.mark.parametrize("scope", ["form", "visit", "subject", "site", "trial"])
def test_locked_data_refuse_every_edit(subject, nurse, data_manager, scope):
    visit = subject.visits.get(code="D2")
    vitals = services.crf_save(crf=VitalSigns(subject=subject, visit=visit),
                               values={"heart_rate": 70}, user=nurse, expected_version=0)
    target = {"form": vitals, "visit": visit, "subject": subject, "site": subject.site,
              "trial": None}[scope]
    lock = locks.lock_create(user=data_manager, scope=scope, target=target, reason="Interim")
    with pytest.raises(ValidationError, match="locked"):
        services.crf_save(crf=vitals, values={"heart_rate": 71}, user=nurse,
                          expected_version=vitals.version)
    if scope != "form":
        with pytest.raises(ValidationError, match="locked"):
            services.visit_record(visit=visit, actual_date=visit.planned_date, user=nurse)
    with pytest.raises(ValidationError, match="reason"):
        locks.lock_release(lock=lock, user=data_manager, reason=" ")
    locks.lock_release(lock=lock, user=data_manager, reason="Interim analysis done")
    services.crf_save(crf=vitals, values={"heart_rate": 71}, user=nurse,
                      expected_version=vitals.version)
    assert lock.history.first().history_change_reason == "Interim analysis done"


def test_only_data_managers_lock_and_unlock(subject, nurse, site):
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    for user in (nurse, monitor):
        with pytest.raises(PermissionDenied):
            locks.lock_create(user=user, scope=LockScope.SUBJECT, target=subject)


def test_locked_page_refuses_the_save_with_a_message(client, subject, nurse, data_manager):
    visit = subject.visits.get(code="D2")
    locks.lock_create(user=data_manager, scope=LockScope.VISIT, target=visit)
    client.force_login(nurse)
    url = reverse("forms:visit_crf", args=[subject.pk, visit.pk, "vital_signs"])
    response = client.post(url, {"version": 0, "heart_rate": "70", "action": "draft"})
    assert response.status_code == 400
    assert "locked" in response.content.decode()
    assert not VitalSigns.objects.exists()


def test_locked_forms_take_no_new_system_queries(subject, nurse, data_manager):
    from forms.quality.checks.runner import checks_rerun

    visit = subject.visits.get(code="D2")
    with system_writes():  # test data written directly
        vitals = VitalSigns.objects.create(subject=subject, visit=visit, heart_rate=150,
                                           temperature=Decimal("36.5"))
    locks.lock_create(user=data_manager, scope=LockScope.FORM, target=vitals)
    checks_rerun()
    assert not Query.objects.filter(object_id=vitals.pk).exists()


def test_signing_locking_and_exports_are_audit_events(client, subject, nurse, investigator,
                                                     data_manager):
    from edc.models import AuditEvent

    visit = complete_visit(subject, nurse)
    signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                             password=PASSWORD)
    lock = locks.lock_create(user=data_manager, scope=LockScope.SUBJECT, target=subject)
    locks.lock_release(lock=lock, user=data_manager, reason="Re-opened for a query")
    client.force_login(investigator)
    client.get(reverse("forms:casebook_pdf", args=[subject.pk]))
    events = {e.action: e for e in AuditEvent.objects.filter(subject=subject)}
    assert events["signed"].user == investigator
    assert events["locked"].user == data_manager
    assert events["unlocked"].detail["reason"] == "Re-opened for a query"
    assert len(events["exported"].detail["sha256"]) == 64


def test_locked_forms_take_no_manual_queries(subject, nurse, data_manager, site):
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    visit = subject.visits.get(code="D2")
    vitals = services.crf_save(crf=VitalSigns(subject=subject, visit=visit),
                               values={"heart_rate": 70}, user=nurse, expected_version=0)
    locks.lock_create(user=data_manager, scope=LockScope.VISIT, target=visit)
    with pytest.raises(ValidationError, match="locked"):
        queries.query_raise(target=vitals, field_name="heart_rate", text="Check?",
                            user=monitor)


def test_signing_a_visit_needs_every_pk_pd_time_point(subject, nurse, investigator):
    """Issue 14: Day 1 expects a pre-dose and a 1 h PK/PD sample; one complete is not
    enough to sign, and both complete are."""
    visit = subject.visits.get(code="D1")
    services.visit_record(visit=visit, actual_date=visit.planned_date, user=nurse)
    for crf_code, slot in visit_def("D1").expected_forms():
        if (crf_code, slot) == ("pkpd", "post_dose_1h"):
            continue
        services.crf_save(crf=services.crf_instance(model=CRF_MODELS[crf_code], subject=subject,
                                                    visit=visit, slot=slot),
                          values={}, user=nurse, expected_version=0, complete=True,
                          not_done_reason="not_done")
    assert signatures.incomplete_forms(subject, visit) == [
        f"{visit.label}: PK/PD sample (1 h post-dose)"]
    with pytest.raises(ValidationError, match="1 h post-dose"):
        signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                 password=PASSWORD)
    services.crf_save(crf=services.crf_instance(model=CRF_MODELS["pkpd"], subject=subject,
                                                visit=visit, slot="post_dose_1h"),
                      values={}, user=nurse, expected_version=0, complete=True,
                      not_done_reason="not_done")
    assert signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                                    password=PASSWORD).fingerprint
