"""Hot paths read a fixed number of SQL queries, whatever the size of the trial (issue 9, item 4).

Each page and the CRF save are measured in a small trial and again after more subjects, with
data in their forms and queries, have joined: the count must not change. Time is measured by
the benchmarks (``make bench``), not here.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from forms.models import VitalSigns
from tests.eligible import save
from tests.factories import randomization_list, randomized_subject


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 190,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


@pytest.fixture
def grow(site, nurse):
    """Add ``n`` randomized subjects, each with vital signs out of range (an open query)."""
    randomization_list(site, rows_per_stratum=40)
    made = []

    def grow(n: int) -> list:
        for _ in range(n):
            subject = randomized_subject(site=site, user=nurse)
            save(VitalSigns, subject, nurse, vitals(), visit=subject.visits.get(code="D2"))
            made.append(subject)
        return made

    return grow


def count(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code in (200, 302), response.status_code
    return len(captured)


PAGES = [
    ("nurse", "home", lambda s: reverse("home")),
    ("nurse", "screening log", lambda s: reverse("visits:screening_log")),
    ("nurse", "subject matrix", lambda s: reverse("forms:matrix")),
    ("nurse", "casebook", lambda s: reverse("forms:casebook", args=[s.pk])),
    ("nurse", "CRF form", lambda s: reverse(
        "forms:visit_crf", args=[s.pk, s.visits.get(code="D2").pk, "vital_signs"])),
    ("monitor", "query list", lambda s: reverse("forms:query_list")),
    ("monitor", "SDV progress", lambda s: reverse("forms:sdv_progress")),
    ("data_manager", "dashboard", lambda s: reverse("dashboard")),
]


@pytest.mark.parametrize(("role", "name", "url"), PAGES, ids=[p[1] for p in PAGES])
def test_hot_pages_read_the_same_number_of_queries_as_the_trial_grows(
    client, grow, users, role, name, url
):
    subjects = grow(2)
    client.force_login(users[role])
    target = url(subjects[0])
    small = count(lambda: client.get(target))
    grow(6)
    assert count(lambda: client.get(target)) == small, f"{name}: queries grew with subjects"


def test_a_crf_save_reads_the_same_number_of_queries_as_the_trial_grows(
    client, grow, users
):
    """The whole save path: form validation, the service, history, the edit checks over the
    subject's data and the queries they open."""
    client.force_login(users["nurse"])

    def save_new_vitals() -> int:
        subject = grow(1)[-1]
        d1 = subject.visits.get(code="D1")
        posted = {k: (v.strftime("%Y-%m-%dT%H:%M") if isinstance(v, dt.datetime) else v)
                  for k, v in vitals(systolic_bp=200).items()}
        url = reverse("forms:visit_crf", args=[subject.pk, d1.pk, "vital_signs"])
        return count(lambda: client.post(url, posted | {"version": 0, "action": "complete"}))

    first = save_new_vitals()
    grow(6)
    assert save_new_vitals() == first
    assert VitalSigns.objects.filter(systolic_bp=200).count() == 2
