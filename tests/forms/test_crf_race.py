"""Two first saves of the same new CRF: the second is an edit conflict (409, input kept), never
an IntegrityError 500 (issue 14, item 16)."""

import datetime as dt
import os
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from edc.roles import Role
from forms.entry import saving, services
from forms.models import VitalSigns
from tests.factories import UserFactory, randomized_subject


def vitals(heart_rate: int) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 142,
            "diastolic_bp": 85, "heart_rate": heart_rate, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")}


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def colleague(site):
    return UserFactory(username="nurse2", role=Role.SITE_STAFF, sites=[site])


def test_the_second_first_save_is_an_edit_conflict(subject, nurse, colleague):
    d2 = subject.visits.get(code="D2")
    mine = services.crf_instance(model=VitalSigns, subject=subject, visit=d2)
    theirs = services.crf_instance(model=VitalSigns, subject=subject, visit=d2)
    assert mine.pk is None and theirs.pk is None  # both opened the empty form
    services.crf_save(crf=theirs, values=vitals(90), user=colleague, expected_version=0)
    with pytest.raises(services.EditConflict) as clash:
        services.crf_save(crf=mine, values=vitals(66), user=nurse, expected_version=0)
    assert clash.value.current.heart_rate == 90 and clash.value.current.version == 1
    saved = VitalSigns.objects.get()
    assert saved.heart_rate == 90
    assert saved.history.count() == 1


def test_losing_the_first_save_in_the_browser_is_a_409_that_keeps_the_input(
        client, subject, nurse, colleague, monkeypatch):
    d2 = subject.visits.get(code="D2")
    real_instance = services.crf_instance

    def opened_then_overtaken(**kwargs):
        # The page found no saved form; the colleague's first save commits just after.
        crf = real_instance(**kwargs)
        assert crf.pk is None
        other = real_instance(**kwargs)
        services.crf_save(crf=other, values=vitals(90), user=colleague, expected_version=0)
        return crf

    monkeypatch.setattr(services, "crf_instance", opened_then_overtaken)
    client.force_login(nurse)
    posted = {k: (v.strftime("%Y-%m-%dT%H:%M") if isinstance(v, dt.datetime) else v)
              for k, v in vitals(66).items()}
    response = client.post(reverse("forms:visit_crf", args=[subject.pk, d2.pk, "vital_signs"]),
                           posted | {"version": 0, "action": "draft"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "Someone else saved this form" in html
    assert 'value="66"' in html
    assert "Saved meanwhile: 90" in html
    assert VitalSigns.objects.get().heart_rate == 90


on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql" and not os.environ.get("CI"),
    reason="two writers at once are tested on PostgreSQL (CI); SQLite has one writer",
)


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_saves_give_one_record_and_one_conflict(
        site, nurse, colleague, monkeypatch):
    assert connection.vendor == "postgresql", "CI runs this on PostgreSQL"
    subject = randomized_subject(site=site, user=nurse)
    d2 = subject.visits.get(code="D2")
    real_derive = services.crf_derive

    def slow_derive(crf):
        # Widen the race: both transactions have checked "no saved form" before either inserts.
        time.sleep(0.3)
        real_derive(crf)

    monkeypatch.setattr(saving, "crf_derive", slow_derive)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def first_save(user, heart_rate):
        try:
            crf = services.crf_instance(model=VitalSigns, subject=subject, visit=d2)
            barrier.wait()
            services.crf_save(crf=crf, values=vitals(heart_rate), user=user,
                              expected_version=0)
            outcomes.append("saved")
        except BaseException as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_save, args=(nurse, 66)),
               threading.Thread(target=first_save, args=(colleague, 90))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("saved") == 1, outcomes
    conflicts = [o for o in outcomes if isinstance(o, services.EditConflict)]
    assert len(conflicts) == 1, outcomes
    saved = VitalSigns.objects.get()
    assert conflicts[0].current.pk == saved.pk
    assert saved.history.count() == 1
