import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from tests.factories import SiteFactory, UserFactory, randomized_subject, screened_subject
from visits import services
from visits.models import Subject, SubjectStatus, Visit
from visits.schedule import VisitStatus, age_in_years

SHANGHAI_EVENING = dt.datetime(2026, 3, 10, 17, 30, tzinfo=dt.UTC)  # 01:30 on 11 March local


@time_machine.travel(SHANGHAI_EVENING + dt.timedelta(hours=2), tick=False)
def test_screening_creates_the_screening_visit_dated_in_site_time(site, nurse):
    subject = screened_subject(site=site, user=nurse, consented_at=SHANGHAI_EVENING)
    assert subject.screening_number == "SZ01-S001"
    assert subject.status == SubjectStatus.SCREENING
    visit = subject.visits.get()
    assert visit.code == protocol.SCREENING_VISIT.code
    # Consent at 17:30 UTC is 01:30 on 11 March in Shenzhen: the window opens on the 11th.
    assert (visit.window_start, visit.window_end) == (dt.date(2026, 3, 11), dt.date(2026, 3, 13))
    screened, consented = subject.history.order_by("history_id")
    assert (screened.history_change_reason, consented.history_change_reason) == (
        "Screened", "Informed consent")
    assert consented.history_user == nurse
    assert consented.consented_at == SHANGHAI_EVENING and screened.consented_at is None


def test_screening_numbers_count_up_per_site(site, other_site):
    staff = UserFactory(role=Role.SITE_STAFF, sites=[site, other_site])
    numbers = [screened_subject(site=site, user=staff).screening_number for _ in range(3)]
    numbers.append(screened_subject(site=other_site, user=staff).screening_number)
    assert numbers == ["SZ01-S001", "SZ01-S002", "SZ01-S003", "GZ02-S001"]


def test_staff_cannot_screen_at_another_site(other_site, nurse):
    with pytest.raises(PermissionDenied):
        screened_subject(site=other_site, user=nurse)
    assert not Subject.objects.exists()


def test_no_visit_exists_before_consent_and_age_is_derived_at_consent(site, nurse):
    subject = screened_subject(site=site, user=nurse, consent=False,
                               birth_date=dt.date(1970, 6, 1))
    assert not subject.visits.exists()
    assert subject.age_at_consent is None
    services.subject_consent(subject=subject, consented_at=timezone.now(), signed_by="guardian",
                             form_version="v2.0", user=nurse)
    subject.refresh_from_db()
    assert subject.visits.count() == 1
    today = timezone.localdate(timezone.now(), site.zone)
    assert subject.age_at_consent == age_in_years(dt.date(1970, 6, 1), today)
    assert not any(f.name == "birth_date" for f in Subject._meta.get_fields())


def test_consent_in_the_future_is_refused(site, nurse):
    with pytest.raises(ValidationError, match="future"):
        screened_subject(site=site, user=nurse, consented_at=timezone.now() + dt.timedelta(hours=1))
    assert not Subject.objects.exists()


@time_machine.travel(dt.datetime(2026, 3, 10, 20, 0, tzinfo=dt.UTC), tick=False)
def test_randomization_creates_every_scheduled_visit_from_day_1(site, nurse):
    # 18:00 UTC on 10 March is 02:00 on 11 March in Shenzhen: Day 1 is 11 March.
    subject = randomized_subject(
        site=site, user=nurse, randomized_at=dt.datetime(2026, 3, 10, 18, 0, tzinfo=dt.UTC)
    )
    assert subject.status == SubjectStatus.RANDOMIZED
    assert subject.day1 == dt.date(2026, 3, 11)
    visits = {v.code: v for v in subject.visits.all()}
    assert set(visits) == {v.code for v in protocol.VISITS}
    assert visits["D8"].planned_date == dt.date(2026, 3, 18)
    assert (visits["D90"].window_start, visits["D90"].window_end) == (
        dt.date(2026, 6, 1), dt.date(2026, 6, 15)
    )
    assert all(v.history.get().history_user == nurse for v in visits.values())


def test_randomizing_twice_is_refused(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    with pytest.raises(ValidationError, match="Only a subject in screening"):
        services.randomization_allocate(
            subject=subject, stratum="8-14", randomized_at=timezone.now(), user=nurse
        )
    assert subject.visits.count() == len(protocol.VISITS)
    assert subject.kits.count() == 3


def test_status_changes_follow_the_allowed_transitions(site, nurse):
    subject = screened_subject(site=site, user=nurse)
    with pytest.raises(ValidationError, match="reason"):
        services.subject_set_status(
            subject=subject, status=SubjectStatus.SCREEN_FAILED, user=nurse, reason=" ",
            failed_criteria=["IN06"],
        )
    with pytest.raises(ValidationError, match="criteria"):
        services.subject_set_status(
            subject=subject, status=SubjectStatus.SCREEN_FAILED, user=nurse, reason="NIHSS 6"
        )
    services.subject_set_status(
        subject=subject, status=SubjectStatus.SCREEN_FAILED, user=nurse, reason="NIHSS 6",
        failed_criteria=["IN06", "IN06", "EX07"],
    )
    assert Subject.objects.get(pk=subject.pk).screen_failure_criteria == ["EX07", "IN06"]
    with pytest.raises(ValidationError, match="cannot become"):
        services.subject_set_status(
            subject=subject, status=SubjectStatus.COMPLETED, user=nurse, reason="x"
        )
    latest = Subject.objects.get(pk=subject.pk).history.first()
    assert (latest.status, latest.history_change_reason) == ("screen_failed", "NIHSS 6")


def test_database_refuses_a_randomized_subject_without_subject_id(site, nurse):
    subject = screened_subject(site=site, user=nurse)
    subject.status = SubjectStatus.RANDOMIZED
    with pytest.raises(IntegrityError), transaction.atomic():
        subject.save()


def test_visit_date_rules(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    visit = subject.visits.get(code="D1")
    today = timezone.localdate(timezone.now(), site.zone)
    with pytest.raises(ValidationError, match="future"):
        services.visit_record_date(visit=visit, actual_date=today + dt.timedelta(days=1),
                                   user=nurse)
    with pytest.raises(ValidationError, match="before informed consent"):
        services.visit_record_date(visit=visit, actual_date=today - dt.timedelta(days=30),
                                   user=nurse)
    services.visit_record_date(visit=visit, actual_date=today, user=nurse)
    visit.refresh_from_db()
    assert visit.status_on(today) == VisitStatus.DONE


def test_changing_a_recorded_visit_date_needs_a_reason(site, nurse):
    consented = timezone.now() - dt.timedelta(days=3)
    subject = screened_subject(site=site, user=nurse, consented_at=consented)
    visit = subject.visits.get()
    first = timezone.localdate(consented, site.zone)
    services.visit_record_date(visit=visit, actual_date=first, user=nurse)
    with pytest.raises(ValidationError, match="reason"):
        services.visit_record_date(visit=visit, actual_date=first + dt.timedelta(days=1),
                                   user=nurse)
    services.visit_record_date(visit=visit, actual_date=first + dt.timedelta(days=1),
                               user=nurse, reason="Transcription error")
    old, new = visit.history.all()[1], visit.history.all()[0]
    assert (old.actual_date, new.actual_date) == (first, first + dt.timedelta(days=1))
    assert new.history_change_reason == "Transcription error"


def test_missed_visit_needs_a_reason_and_no_date(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    visit = subject.visits.get(code="D8")
    with pytest.raises(ValidationError, match="reason"):
        services.visit_mark_missed(visit=visit, reason="", user=nurse)
    services.visit_mark_missed(visit=visit, reason="Subject in ICU", user=nurse)
    visit.refresh_from_db()
    assert visit.status_on(visit.window_end + dt.timedelta(days=1)) == VisitStatus.MISSED


def test_unscheduled_visits_are_numbered(site, nurse):
    subject = randomized_subject(site=site, user=nurse)
    today = timezone.localdate(timezone.now(), site.zone)
    first = services.visit_add_unscheduled(subject=subject, actual_date=today, user=nurse)
    second = services.visit_add_unscheduled(subject=subject, actual_date=today, user=nurse)
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.label == "Unscheduled 2"
    assert Visit.objects.filter(subject=subject).count() == len(protocol.VISITS) + 2


def test_site_time_zone_must_be_known(db):
    site = SiteFactory.build(code="BAD", time_zone="Mars/Olympus")
    with pytest.raises(ValidationError, match="time zone"):
        site.full_clean()
