"""The SQL statements of a save through the pages (issue 15, items 1 and 8): each save path is
pinned to a budget, whose parts are named beside it, so that a change that adds a read to the
save path fails here rather than in production. The audit hash chain's statements
(``edc.audit.chain_append``, per history row) are counted apart: their number is the chain's
own budget. The kinds of save the benchmark makes (benchmarks/measure.py: a complete form
changed, with or without a signature to break) are also held to issue 15's 20 statements in
all.

Every budget below includes the request around the save: the session read, the user, the
user's sites (with their time zones: ``SiteTimezoneMiddleware``, also answering every
permission check), BEGIN and COMMIT of the request's transaction: 5 statements. The session
is written only when its renewal is due (``SessionRenewalMiddleware``, at most once a
minute): not in these requests, made just after the sign-in renewed it.
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

from edc.history import system_writes
from edc.roles import Role
from forms.entry import services
from forms.models import CRF_MODELS, Infusion, VitalSigns
from forms.models.adverse_events import AdverseEvent
from forms.models.signoff import Signature
from forms.quality.queries import Query, QueryStatus
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject
from visits.models import Visit

REQUEST = 5  # see the module's docstring
AUDIT_MODULE = os.path.join("edc", "audit.py")
# Statements of edc.audit.chain_append per history row, at most.
CHAIN_PER_ROW = 2
# Issue 15: at most this many statements per CRF save, the request included.
SAVE_LIMIT = 20
# The subject's row held by a save (visits.services.subject_hold): PostgreSQL; SQLite has one
# writer at a time and no row locks.
HOLD = 1 if connection.features.has_select_for_update else 0


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
        self.chain_starts = 0
        self.total = 0
        self.listing = ""

    def __call__(self, execute, sql, params, many, context):
        frame = sys._getframe(1)
        while frame is not None and not frame.f_code.co_filename.endswith(AUDIT_MODULE):
            frame = frame.f_back
        if frame is not None and not sql.startswith('INSERT INTO "edc_auditevent"'):
            self.chain += 1
            # A table's first row (its chain head) or a new column layout: 2 more each.
            into = sql.split("(")[0]
            self.chain_starts += sql.startswith("INSERT") and (
                '"edc_auditrowlayout"' in into or '"edc_auditchainhead"' in into)
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
    seen.total = len(captured)
    rest = len(captured) - seen.chain
    listing = "\n".join(query["sql"][:160] for query in captured)
    seen.listing = listing
    assert rest == budget_without_chain, f"{rest} statements besides the chain's:\n{listing}"
    # The chain's own count is its own budget (edc/audit.py, chain_append); the first row
    # of a table also starts its chain and records its column layout (once in a trial's life).
    assert seen.chain <= CHAIN_PER_ROW * seen.chained_rows + 2 * seen.chain_starts, listing


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


@pytest.fixture
def signed_in(client, nurse):
    """Signed in, which renews the session: the next requests do not write it."""
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
    # The request (5); the subject with its site, its visits (2); the subject's row held FOR
    # SHARE, so that a signature being recorded is waited for and then seen (1,
    # ``visits.services.subject_hold``); the form read FOR UPDATE with whether a lock, a
    # signature or a system query concerns it (none: their tables are not read again) (1);
    # the UPDATE and its history row (2): 11, and the chain's statements for the history
    # row. (No fever: VS-008 reads no adverse event.)
    with statements(REQUEST + 5 + HOLD) as seen:
        response = signed_in.post(url, data)
    assert response.status_code == 302
    assert seen.total <= SAVE_LIMIT, seen.listing
    crf.refresh_from_db()
    assert crf.heart_rate == 91
    assert crf.history.first().history_change_reason == "Re-checked in the hospital record"


def test_editing_a_signed_form_breaks_the_signature(signed_in, subject, nurse, site):
    """The benchmark's costliest save: the change breaks the casebook's signature, which
    records the signature's history row and an audit event, each chained."""
    crf = save(VitalSigns, subject, nurse, vitals(), visit=at(subject, "D2"))
    investigator = UserFactory(username="investigator", role=Role.INVESTIGATOR, sites=[site])
    with system_writes():  # test data written directly
        signature = Signature.objects.create(
            subject=subject, visit=None, signer=investigator, printed_name="Wang Wei",
            meaning="I confirm", signed_at=timezone.now(), fingerprint="0" * 64)
    url = reverse("forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])
    data = posted(vitals(heart_rate=91)) | {"version": crf.version, "action": "complete",
                                             "reason": "Re-checked in the hospital record"}
    # The hot path (11); the signatures covering the form, FOR UPDATE (1); the signature's
    # UPDATE and history row (2); the audit event, its subject and site those of the form
    # (1): 15, and the chain's statements for two history rows and the event.
    with statements(REQUEST + 9 + HOLD) as seen:
        response = signed_in.post(url, data)
    assert response.status_code == 302
    # The three rows are linked together at the end of the save (edc.audit.chain_batch): the
    # head of each of their three tables read with its row, then one INSERT of the links.
    assert (seen.chained_rows, seen.chain) == (3, 4), seen.listing
    assert seen.total <= SAVE_LIMIT, seen.listing
    signature.refresh_from_db()
    assert signature.is_broken


def test_editing_a_locked_form_is_still_refused(signed_in, subject, nurse, site):
    """The lock is known from the form's own read: a locked form is refused all the same."""
    from forms.models.signoff import LockScope
    from forms.review.locks import lock_create

    crf = save(VitalSigns, subject, nurse, vitals(), visit=at(subject, "D2"))
    manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    lock_create(user=manager, scope=LockScope.SUBJECT, target=subject, reason="Reviewed")
    url = reverse("forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])
    data = posted(vitals(heart_rate=91)) | {"version": crf.version, "action": "complete",
                                             "reason": "Re-checked in the hospital record"}
    response = signed_in.post(url, data)
    assert response.status_code == 400
    assert "locked" in response.content.decode()
    crf.refresh_from_db()
    assert crf.heart_rate == 80


def test_an_edit_that_closes_a_query(signed_in, subject, nurse):
    """The data change resolves the system query a check raised: it closes itself, with its
    message and audit event."""
    crf = save(VitalSigns, subject, nurse, vitals(systolic_bp=200), visit=at(subject, "D2"))
    [query] = Query.objects.filter(check_code="VS-001", status=QueryStatus.OPEN)
    url = reverse("forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])
    data = posted(vitals(systolic_bp=120)) | {"version": crf.version, "action": "complete",
                                              "reason": "Typing error"}
    # The hot path (11); the subject's system queries (1); the query read again FOR UPDATE
    # (1); its UPDATE and history row (2); its message and that message's history row (2);
    # the audit event (1): 18, and the chain's statements for three history rows and the
    # event. (The constraints over the fields its closing changes are judged in Python:
    # edc.validation.condition_holds.)
    with statements(REQUEST + 12 + HOLD) as seen:
        response = signed_in.post(url, data)
    assert response.status_code == 302
    assert (seen.chained_rows, seen.chain) == (4, 5), seen.listing  # 4 tables, 1 INSERT
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED
    assert query.messages.filter(kind="auto_closed").exists()


def test_a_first_save_opening_a_query(signed_in, subject):
    """A new form through the page, out of range: one system query opened."""
    visit = at(subject, "D1")
    url = reverse("forms:visit_crf", args=[subject.pk, visit.pk, "vital_signs"])
    data = posted(vitals(systolic_bp=200)) | {"version": 0, "action": "complete"}
    # The request (5); subject, visits (2); the subject's row held FOR SHARE (1); the form
    # looked for (1); whether a lock, a signature or a system query concerns the new form,
    # in one statement (none: their tables are not read) (1); SAVEPOINT, INSERT, history
    # row, RELEASE (4); the visit's form counts (``forms.tally``: 1); the new query:
    # SAVEPOINT of the insert, INSERT, history row, RELEASE, its first message and that
    # message's history row, the audit event (7): 22, and the chain's statements for the
    # three history rows and the audit event.
    with statements(REQUEST + 16 + HOLD):
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
    # The request (5); subject, visits, the subject's row held FOR SHARE, the event FOR
    # UPDATE with its guards (4); the forms the checks of an adverse event read: adverse
    # events, deaths, NIHSS, vital signs, infusions (5); the UPDATE and its history row (2):
    # 16, and the chain's statements for one history row.
    with statements(REQUEST + 10 + HOLD) as seen:
        response = signed_in.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert seen.total <= SAVE_LIMIT, seen.listing
    event.refresh_from_db()
    assert event.term == "Tension headache"


def test_recording_a_visit_date(signed_in, subject):
    """A visit date runs the checks that read visit dates (window, sample, infusion)."""
    visit = at(subject, "D1")  # planned on Day 1, today or before: inside its window
    url = reverse("forms:visit_update", args=[subject.pk, visit.pk])
    day = visit.planned_date
    # The request (5); subject and visits (2); whether a lock or a system query concerns the
    # subject's data, in one statement (none: neither table is read) (1); the visit FOR
    # UPDATE (1); UPDATE and history row (2); the forms whose checks read visit dates: labs,
    # infusions (2; no fever at an infusion: INF-008 reads no adverse event): 13, and the
    # chain's statements for the history row. The check constraint over the fields written
    # is judged in Python (edc.validation.condition_holds). No savepoint of the services'
    # own: a refusal comes before the first write (see the test below).
    with statements(REQUEST + 8) as seen:
        response = signed_in.post(url, {"actual_date": day.isoformat(), "reason": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert seen.total <= SAVE_LIMIT, seen.listing
    visit.refresh_from_db()
    assert visit.actual_date == day


def test_a_refused_visit_date_shows_the_form_and_writes_nothing(signed_in, subject):
    """Without a savepoint of its own, a refusal still leaves the request's transaction
    usable: the page is shown again with the error, and the visit is unchanged."""
    visit = at(subject, "D1")
    url = reverse("forms:visit_update", args=[subject.pk, visit.pk])
    future = timezone.localdate(timezone.now(), subject.site.zone) + dt.timedelta(days=3)
    response = signed_in.post(url, {"actual_date": future.isoformat(), "reason": ""})
    assert response.status_code == 400
    assert "cannot be in the future" in response.content.decode()
    visit.refresh_from_db()
    assert visit.actual_date is None
    assert visit.history.count() == 1
