"""Source data verification (issue 7): monitors verify complete forms or single critical items;
any later change turns the form to "changed since verified", on its audited history row;
progress per site and subject."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from edc.roles import Role
from forms.entry import services
from forms.models import CRF_MODELS, MRS, VitalSigns
from forms.models.base import SDVStatus
from forms.quality.sdv import (
    SDVProgress,
    crf_verify,
    sdv_progress_by_site,
    sdv_progress_for_subject,
)
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject


@pytest.fixture
def monitor(site):
    return UserFactory(username="monitor", role=Role.MONITOR, sites=[site])


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def vitals_values(**changes):
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


def enter_vitals(subject, user, *, visit="D2", complete=True):
    return save(VitalSigns, subject, user, vitals_values(),
                visit=subject.visits.get(code=visit), complete=complete)


def resave(crf, user, values, reason="Corrected from source"):
    return services.crf_save(crf=crf, values=values, user=user,
                             expected_version=crf.version, complete=True, reason=reason)


def test_a_monitor_verifies_a_complete_form(subject, nurse, monitor):
    vitals = enter_vitals(subject, nurse)
    assert vitals.sdv_status == SDVStatus.NOT_VERIFIED
    verified = crf_verify(crf=vitals, user=monitor)
    verified.refresh_from_db()
    assert verified.sdv_status == SDVStatus.VERIFIED
    assert verified.verified_by == monitor
    assert verified.verified_at is not None
    assert verified.version == vitals.version  # the site's open form stays saveable
    row = verified.history.latest()
    assert (row.history_user, row.history_change_reason) == (monitor, "Source data verified")
    assert row.sdv_status == SDVStatus.VERIFIED


def test_an_incomplete_form_cannot_be_verified(subject, nurse, monitor):
    vitals = enter_vitals(subject, nurse, complete=False)
    with pytest.raises(ValidationError, match="complete"):
        crf_verify(crf=vitals, user=monitor)
    vitals.refresh_from_db()
    assert vitals.sdv_status == SDVStatus.NOT_VERIFIED


@pytest.mark.parametrize("role", [Role.SITE_STAFF, Role.INVESTIGATOR, Role.DATA_MANAGER])
def test_only_monitors_verify(subject, nurse, site, role):
    vitals = enter_vitals(subject, nurse)
    user = UserFactory(role=role, sites=[site])
    with pytest.raises(PermissionDenied):
        crf_verify(crf=vitals, user=user)


def test_a_monitor_of_another_site_cannot_verify(subject, nurse, other_site):
    vitals = enter_vitals(subject, nurse)
    with pytest.raises(PermissionDenied):
        crf_verify(crf=vitals, user=UserFactory(role=Role.MONITOR, sites=[other_site]))


def test_a_later_change_turns_the_form_to_changed_since_verified(subject, nurse, monitor):
    vitals = crf_verify(crf=enter_vitals(subject, nurse), user=monitor)
    changed = resave(vitals, nurse, {"systolic_bp": 124})
    changed.refresh_from_db()
    assert changed.sdv_status == SDVStatus.CHANGED == "changed_since_verified"
    row = changed.history.latest()
    assert (row.sdv_status, row.systolic_bp, row.history_user) == (SDVStatus.CHANGED, 124, nurse)
    assert row.history_change_reason == "Corrected from source"
    # Verified again by the monitor.
    again = crf_verify(crf=changed, user=monitor)
    assert again.sdv_status == SDVStatus.VERIFIED


def test_a_save_without_changes_keeps_it_verified(subject, nurse, monitor):
    vitals = crf_verify(crf=enter_vitals(subject, nurse), user=monitor)
    same = resave(vitals, nurse, {"systolic_bp": 142}, reason="")
    same.refresh_from_db()
    assert same.sdv_status == SDVStatus.VERIFIED
    assert same.verified_by == monitor


def test_single_critical_items_are_verified(subject, nurse, monitor):
    vitals = enter_vitals(subject, nurse)
    vitals = crf_verify(crf=vitals, user=monitor, fields=["systolic_bp", "diastolic_bp"])
    vitals.refresh_from_db()
    assert vitals.sdv_status == SDVStatus.NOT_VERIFIED
    assert set(vitals.verified_fields) == {"systolic_bp", "diastolic_bp"}
    stamp = vitals.verified_fields["systolic_bp"]
    assert stamp["by"] == monitor.pk
    assert dt.datetime.fromisoformat(stamp["at"]) <= timezone.now()
    assert vitals.history.latest().history_change_reason == "Source data verified"

    changed = resave(vitals, nurse, {"systolic_bp": 124})
    changed.refresh_from_db()
    assert changed.sdv_status == SDVStatus.CHANGED


def test_single_items_must_be_items_of_the_form(subject, nurse, monitor):
    vitals = enter_vitals(subject, nurse)
    for fields in (["no_such_item"], ["status"], []):
        with pytest.raises(ValidationError):
            crf_verify(crf=vitals, user=monitor, fields=fields)
    vitals.refresh_from_db()
    assert vitals.verified_fields == {}


def test_verifying_a_form_changed_since_it_was_read_is_refused(subject, nurse, monitor):
    seen = enter_vitals(subject, nurse)
    resave(VitalSigns.objects.get(pk=seen.pk), nurse, {"systolic_bp": 124})
    with pytest.raises(services.EditConflict):
        crf_verify(crf=seen, user=monitor)


def test_progress_per_site_and_subject(site, other_site, nurse, monitor,
                                       django_assert_max_num_queries):
    first = randomized_subject(site=site, user=nurse)
    second = randomized_subject(site=site, user=nurse)
    other_nurse = UserFactory(role=Role.SITE_STAFF, sites=[other_site])
    elsewhere = randomized_subject(site=other_site, user=other_nurse)

    crf_verify(crf=enter_vitals(first, nurse, visit="D2"), user=monitor)
    changed = crf_verify(crf=enter_vitals(first, nurse, visit="D1"), user=monitor)
    resave(changed, nurse, {"heart_rate": 80})
    enter_vitals(first, nurse, visit="D8", complete=False)
    crf_verify(crf=enter_vitals(second, nurse), user=monitor)
    save(MRS, second, nurse, {"assessed_on": timezone.localdate(), "score": 2},
         visit=second.visits.get(code="D90"))
    enter_vitals(elsewhere, other_nurse)

    with django_assert_max_num_queries(len(CRF_MODELS) + 1):
        by_site = sdv_progress_by_site(monitor)
    assert by_site == {site: SDVProgress(complete=4, verified=2, changed=1)}
    assert by_site[site].to_verify == 2
    assert by_site[site].percent == 50

    data_manager = UserFactory(role=Role.DATA_MANAGER)
    assert sdv_progress_by_site(data_manager) == {
        site: SDVProgress(complete=4, verified=2, changed=1),
        other_site: SDVProgress(complete=1, verified=0, changed=0),
    }

    with django_assert_max_num_queries(len(CRF_MODELS)):
        assert sdv_progress_for_subject(first) == SDVProgress(complete=2, verified=1,
                                                              changed=1)
    assert sdv_progress_for_subject(second) == SDVProgress(complete=2, verified=1, changed=0)
    assert sdv_progress_for_subject(elsewhere).percent == 0
