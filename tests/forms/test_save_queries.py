"""The SQL statements of a save through the pages (issue 15, item 8): each save path is pinned
to a budget, whose parts are named beside it, so that a change that adds a read to the save
path fails here rather than in production. The audit hash chain's statements
(``edc.audit.chain_append``, per history row) are counted apart: their number is the chain's
own budget.

Every budget below includes the request around the save: the session read, the user, the
user's sites (with their time zones: ``SiteTimezoneMiddleware``, also answering every
permission check), BEGIN and COMMIT of the request's transaction, and the session's
BEGIN/UPDATE/COMMIT after the response (``SESSION_SAVE_EVERY_REQUEST``): 8 statements.
"""

import datetime as dt
import os
import sys
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from forms import services
from forms.models import CRF_MODELS, Infusion, VitalSigns
from forms.models.adverse_events import AdverseEvent
from forms.queries import Query
from tests.eligible import save
from tests.factories import randomized_subject
from visits.models import Visit

REQUEST = 8  # see the module's docstring
AUDIT_MODULE = os.path.join("edc", "audit.py")
# Statements of edc.audit.chain_append per history row, at most (being cut to 2).
CHAIN_PER_ROW = 4


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 140,
            "diastolic_bp": 70, "heart_rate": 80, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


def posted(values: dict) -> dict:
    return {name: (timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
                   if isinstance(value, dt.datetime) else value)
            for name, value in values.items()}


class Statements:
    """Every statement of a block (``CaptureQueriesContext``, which also lists BEGIN, COMMIT
    and savepoints), and which of them the audit hash chain ran: those run from
    ``edc/audit.py`` other than the audit event's own INSERT."""

    def __init__(self):
        self.chain = 0
        self.chained_rows = 0

    def __call__(self, execute, sql, params, many, context):
        frame = sys._getframe(1)
        while frame is not None and not frame.f_code.co_filename.endswith(AUDIT_MODULE):
            frame = frame.f_back
        if frame is not None and not sql.startswith('INSERT INTO "edc_auditevent"'):
            self.chain += 1
        elif sql.startswith("INSERT INTO") and ("_historical" in sql.split("(")[0]
                                                or '"edc_auditevent"' in sql.split("(")[0]):
            self.chained_rows += 1  # a history row or an audit event: each has its link
        return execute(sql, params, many, context)


@contextmanager
def statements(budget_without_chain: int):
    """Pin the statements other than the chain's to ``budget_without_chain`` exactly; the
    chain's are counted apart, per history row or audit event."""
    # A running server has every content type cached after its first save.
    ContentType.objects.get_for_models(*CRF_MODELS.values(), Visit, Query)
    seen = Statements()
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(seen):
        yield seen
    rest = len(captured) - seen.chain
    listing = "\n".join(query["sql"][:160] for query in captured)
    assert rest == budget_without_chain, f"{rest} statements besides the chain's:\n{listing}"
    # The chain's own count is its own budget (edc/audit.py, chain_append); the first row
    # of a table also records the table's column layout.
    assert seen.chain <= (CHAIN_PER_ROW + 3) * seen.chained_rows, listing


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def signed_in(client, nurse):
    client.force_login(nurse)
    return client


def at(subject, code):
    return subject.visits.get(code=code)


def test_editing_a_complete_vital_signs_form_with_a_reason(
        signed_in, subject, nurse):
    """The hot path (benchmarks/measure.py): a complete form changed, with the reason."""
    crf = save(VitalSigns, subject, nurse, vitals(), visit=at(subject, "D2"))
    url = reverse("forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])
    data = posted(vitals(heart_rate=91)) | {"version": crf.version, "action": "complete",
                                             "reason": "Re-checked in the hospital record"}
    # The request (8); the subject with its site, its visits, the form read FOR UPDATE (3);
    # the locks over the subject's data (1); the UPDATE and its history row (2); the
    # signatures to break (1); the subject's system queries of the checks run (1): 16, and the
    # chain's statements for one history row. (No fever: VS-008 reads no adverse event.)
    with statements(REQUEST + 8):
        response = signed_in.post(url, data)
    assert response.status_code == 302
    crf.refresh_from_db()
    assert crf.heart_rate == 91


def test_a_first_save_opening_a_query(signed_in, subject):
    """A new form through the page, out of range: one system query opened."""
    visit = at(subject, "D1")
    url = reverse("forms:visit_crf", args=[subject.pk, visit.pk, "vital_signs"])
    data = posted(vitals(systolic_bp=200)) | {"version": 0, "action": "complete"}
    # The request (8); subject, visits, the form looked for (3); the locks (1); the twin
    # looked for again in the service (1); SAVEPOINT, INSERT, history row, RELEASE (4); the
    # signatures (1); the system queries (1); the new query: its own look-up, SAVEPOINT of
    # query_open_system, SAVEPOINT of the insert, INSERT, history row, RELEASE, its first
    # message and that message's history row, the audit event, RELEASE (10): 29, and the
    # chain's statements for the three history rows and the audit event.
    with statements(REQUEST + 21):
        response = signed_in.post(url, data)
    assert response.status_code == 302
    [query] = Query.objects.filter(check_code="VS-001", status="open")
    assert query.object_id == VitalSigns.objects.get(visit=visit).pk


def test_editing_an_adverse_event(signed_in, subject, nurse):
    """The adverse-event checks read other forms: the save reads those forms once each."""
    save(VitalSigns, subject, nurse, vitals(), visit=at(subject, "D2"))
    save(Infusion, subject, nurse, {}, visit=at(subject, "D1"), complete=False)
    event = services.crf_save(crf=AdverseEvent(subject=subject), user=nurse,
                              expected_version=0, complete=False,
                              values={"term": "Headache",
                                      "start_date": timezone.localdate(
                                          timezone.now(), subject.site.zone)})
    url = reverse("forms:log_edit", args=[subject.pk, "adverse_event", event.pk])
    data = {"version": event.version, "term": "Tension headache",
            "start_date": event.start_date.isoformat(), "reason": ""}
    # The request (8); subject, visits, the event FOR UPDATE (3); the locks (1); the
    # forms the checks of an adverse event read: adverse events, deaths, NIHSS, vital signs,
    # infusions (5); the UPDATE and its history row (2); the signatures (1); the system
    # queries (1): 21, and the chain's statements for one history row.
    with statements(REQUEST + 13):
        response = signed_in.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event.refresh_from_db()
    assert event.term == "Tension headache"


def test_recording_a_visit_date(signed_in, subject):
    """A visit date runs the checks that read visit dates (window, sample, infusion)."""
    visit = at(subject, "D1")  # planned on Day 1, today or before: inside its window
    url = reverse("forms:visit_update", args=[subject.pk, visit.pk])
    day = visit.planned_date
    # The request (8); subject and visits (2); SAVEPOINT of visit_record (1); the locks over
    # the subject's data (1); SAVEPOINT of visit_record_date, the visit FOR UPDATE (2); the
    # check constraint over the fields written (SAVEPOINT, SELECT, RELEASE: 3); UPDATE,
    # history row, RELEASE (3); the forms whose checks read visit dates: labs, infusions (2;
    # no fever at an infusion: INF-008 reads no adverse event); the system queries (1);
    # RELEASE of visit_record (1): 24, and the chain's statements for the history row.
    with statements(REQUEST + 16):
        response = signed_in.post(url, {"actual_date": day.isoformat(), "reason": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    visit.refresh_from_db()
    assert visit.actual_date == day
