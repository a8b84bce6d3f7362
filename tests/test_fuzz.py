"""Fuzz every URL as every role (issue 14): generated query strings and POST bodies built from
the real fields of each page's forms, with wrong types, boundaries, overlong and odd unicode
text, NUL bytes, bytes that are not UTF-8, extreme dates and stale versions, and wrong, foreign
and missing path parameters. Whatever is sent:

- the answer is never a 5xx;
- a refused request (4xx) writes nothing: every table is fingerprinted before and after (the
  session table aside; a failed password may leave its audit event and lockout count);
- a blinded role never sees an arm label.

Besides the generated requests, a fixed list of requests that broke the EDC before is sent as
every role on every run.

Budget: ``FUZZ_EXAMPLES`` examples for each URL × role (default 4: the 700-odd tests of this
module took 3.5 to 7 minutes on PostgreSQL on a 2-core machine, as the load of other runs
varied, the test database, the seeded trial and the reading of its forms included). CI runs
the same examples every time (``derandomize``), so a failure reproduces; Hypothesis prints the
failing request. For a deeper run: ``FUZZ_EXAMPLES=50 pytest tests/test_fuzz.py``;
``FUZZ_SEED=<n>`` draws other examples than CI's.
"""

import copy
import os
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from edc.models import AuditEvent, Notification
from edc.roles import UNBLINDED_ROLES, Role
from tests import fuzzing

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
FUZZ_SEED = os.environ.get("FUZZ_SEED", "")
ROUTES = fuzzing.routes()
# Query-string names worth trying on any page besides the fields of its own forms.
COMMON_PARAMETERS = ["page", "format", "next", "site", "status", "q", "o", "p", "e",
                     "subject", "date_to", "min_age", "_changelist_filters", "all"]
# Roles whose forms are read to learn the fields of every page.
# The database is set up for the marked tests; the trial is seeded once for the module.
pytestmark = pytest.mark.django_db

DISCOVERY_ROLES = [Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER,
                   Role.UNBLINDED_STATISTICIAN, Role.UNBLINDED_PHARMACIST, Role.ADMINISTRATOR]


@dataclass
class Fuzz:
    trial: fuzzing.Trial
    forms: dict
    fingerprint: fuzzing.Fingerprint


def rolled_back():
    """A transaction block the fuzz suite rolls back, marked as a test case's own wrapper (as
    Django's TestCase marks its blocks): the application may check a password inside it, as it
    would at the top of a real request, where it refuses any transaction that may roll back."""
    block = transaction.atomic()
    block._from_testcase = True
    return block


@pytest.fixture(scope="module")
def fuzz(django_db_setup, django_db_blocker):
    """The seeded trial, built once for the module inside a transaction rolled back at the
    end; each example runs in a savepoint rolled back after it, so every example starts from
    the same data."""
    with django_db_blocker.unblock(), rolled_back():
        trial = fuzzing.seed_trial()
        forms = discover(trial)
        yield Fuzz(trial=trial, forms=forms, fingerprint=fuzzing.Fingerprint())
        transaction.set_rollback(True)


def discover(trial: fuzzing.Trial) -> dict:
    """The forms of every page, read as the roles that see them: (method, URL name, CRF code)
    → the fields and the values the page offers."""
    index: dict = {}
    for role in DISCOVERY_ROLES:
        client = Client()
        client.force_login(trial.users[role])
        for route in ROUTES:
            if route.name.startswith("admin:") != (role == Role.ADMINISTRATOR):
                continue
            seen_codes = set()
            for kwargs in fuzzing.real_parameters(route, trial):
                code = str(kwargs.get("crf_code") or kwargs.get("kind") or "")
                if (code, kwargs.get("action")) in seen_codes:
                    continue
                seen_codes.add((code, kwargs.get("action")))
                path = route.path(kwargs)
                with rolled_back():
                    response = client.get(path)
                    transaction.set_rollback(True)
                timezone.deactivate()
                if "html" not in response.get("Content-Type", ""):
                    continue
                for target, form in fuzzing.forms_of(response.content.decode(), path):
                    key = fuzzing.route_key(target)
                    if key is not None:
                        fuzzing.merge(index, (form.method, *key), form)
    return index


# --- Strategies ------------------------------------------------------------------------------

NASTY = st.sampled_from(fuzzing.NASTY)
RAW = st.sampled_from(fuzzing.RAW_BYTES)


def field_value(name: str, known: fuzzing.FormField) -> st.SearchStrategy:
    offered = [v for v in known.values if v is not None]
    choices = [NASTY, NASTY, RAW, st.text(max_size=40),
               st.integers(-(2**70), 2**70).map(str),
               st.floats(allow_nan=True, allow_infinity=True).map(repr)]
    if offered:
        choices += [st.sampled_from(offered)] * 4
    if name == "version" or name.endswith("version"):
        numbers = [int(v) for v in offered if v.lstrip("-").isdigit()] or [0]
        stale = {str(n + d) for n in numbers for d in (-1, 1, 1000)} | {"abc", "", "-1",
                                                                        "1e308", "9" * 30}
        choices += [st.sampled_from(sorted(stale))] * 4
    return st.one_of(*choices)


@st.composite
def fields_for(draw, form: fuzzing.Form | None, extra_names: list[str]) -> list:
    pairs = []
    for name, known in (form.fields.items() if form else ()):
        how = draw(st.integers(0, 9))
        if how == 0:
            continue  # the field is missing
        count = draw(st.integers(0, 3)) if known.multiple or how == 1 else 1
        for _n in range(count):
            pairs.append((name, draw(field_value(name, known))))
    for name in draw(st.lists(st.sampled_from(extra_names), max_size=2, unique=True)):
        pairs.append((name, draw(st.one_of(NASTY, RAW, st.text(max_size=20)))))
    return pairs


@dataclass
class Request:
    method: str
    path: str
    body: str

    def __str__(self) -> str:
        shown = self.body if len(self.body) < 2000 else self.body[:2000] + "…"
        return f"{self.method} {self.path}\n{shown}"


@st.composite
def requests(draw, route: fuzzing.Route, fuzz: Fuzz) -> Request:
    kwargs: dict = {}
    if route.parameters:
        real = fuzzing.real_parameters(route, fuzz.trial)
        kwargs = dict(draw(st.sampled_from(real))) if real else {
            name: draw(st.sampled_from(fuzzing.wrong_values(conv)))
            for name, conv in route.parameters}
        if real and draw(st.integers(0, 3)) == 0:
            name, conv = draw(st.sampled_from(route.parameters))
            kwargs[name] = draw(st.sampled_from(fuzzing.wrong_values(conv)))
    path = route.path(kwargs)
    method = draw(st.sampled_from(["GET", "POST"]))
    code = str(kwargs.get("crf_code") or kwargs.get("kind") or "")
    form = (fuzz.forms.get((method, route.name, code))
            or fuzz.forms.get((method, route.name, "")))
    if form is None and method == "POST":
        # Some forms post to another page than the one they are on (e.g. a log entry's).
        form = next((f for (m, name, _c), f in sorted(fuzz.forms.items(), key=str)
                     if m == "POST" and name == route.name), None)
    names = COMMON_PARAMETERS if method == "GET" else ["next", "action", "reason", "pk"]
    body = fuzzing.encode(draw(fields_for(form, names)))
    return Request(method=method, path=path, body=body)


def send(client: Client, request: Request):
    if request.method == "GET":
        return client.get(request.path + ("?" + request.body if request.body else ""))
    return client.post(request.path, data=request.body,
                       content_type="application/x-www-form-urlencoded")


# --- The test --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_no_request_gives_a_5xx_or_writes_when_refused(fuzz, route, role):
    user = fuzz.trial.users[role]
    blinded = role not in UNBLINDED_ROLES
    arms = fuzzing.arm_texts()
    client = Client()
    with rolled_back():
        client.force_login(user)
        cookies = copy.deepcopy(client.cookies)
        baseline = fuzz.fingerprint.take()
        last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=not FUZZ_SEED, print_blob=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def fuzz_once(data):
            request = data.draw(requests(route, fuzz), label="request")
            note(f"as {role}: {request}")
            client.cookies = copy.deepcopy(cookies)
            with rolled_back():
                try:
                    response = send(client, request)
                    status = response.status_code
                    assert status < 500, f"{status} for {request}"
                    if status >= 400:
                        changed = fuzzing.writes(baseline, fuzz.fingerprint.take(), last_event)
                        assert not changed, f"refused with {status} but wrote {changed}"
                    if blinded and response.get("Content-Type", "").startswith("text/"):
                        text = response.content.decode(errors="replace")
                        leaked = [arm for arm in arms if arm in text]
                        assert not leaked, f"arm label {leaked} shown to {role}"
                finally:
                    timezone.deactivate()
                    transaction.set_rollback(True)

        if FUZZ_SEED:
            fuzz_once = seed(int(FUZZ_SEED))(fuzz_once)
        fuzz_once()
        transaction.set_rollback(True)


def hostile_requests(ids: dict[str, int]) -> list[Request]:
    """Requests that broke the EDC before (issue 14, item 17, and what this suite found), sent
    every run whatever the budget draws."""
    subject, visit = ids["subject"], ids["visit"]
    casebook = f"/casebook/subjects/{subject}"
    get, post = "GET", "POST"
    return [Request(method, path, fuzzing.encode(pairs)) for method, path, pairs in [
        (get, "/casebook/queries/", [("min_age", "²")]),
        (get, "/casebook/queries/", [("min_age", "1000000")]),
        (get, "/casebook/queries/", [("site", "\x00"), ("form", "a\x00"), ("check", "\x00")]),
        (get, "/casebook/audit-trail/", [("form", "nihss"), ("record", "²")]),
        (get, "/casebook/audit-trail/", [("date_to", "9999-12-31")]),
        (get, "/casebook/audit-trail/", [("date_from", "0001-01-01"), ("subject", "\x00"),
                                         ("user", "\x00"), ("field", "\x00")]),
        (get, "/casebook/matrix/", [("site", "\x00"), ("status", "\x00")]),
        (post, "/notifications/", [("pk", "²")]),
        (post, "/casebook/locks/new/", [("scope", "site"), ("pk", "abc")]),
        (post, "/casebook/locks/new/", [("scope", "subject"), ("subject", "²")]),
        (post, "/casebook/locks/new/", [("scope", "form"), ("subject", str(subject)),
                                        ("crf_code", "nihss"), ("pk", "abc")]),
        (post, "/casebook/locks/new/", [("scope", "subject"), ("subject", str(subject)),
                                        ("reason", "a\x00b")]),
        (post, "/casebook/locks/", [("lock", "abc"), ("reason", "x")]),
        (post, "/casebook/locks/", [("lock", str(ids["lock"])), ("reason", "a\x00b")]),
        (post, f"{casebook}/eligibility/", [("version", "abc")]),
        (post, f"{casebook}/eligibility/", [("version", "0"), ("reason", "a\x00b")]),
        (post, f"/casebook/queries/{ids['query']}/answer/", [("text", "a\x00b")]),
        (post, f"{casebook}/queries/visit/{visit}/", [("field", "actual_date"),
                                                      ("text", "a\x00b")]),
        (post, f"{casebook}/queries/visit/{visit}/", [("field", "actual_date"),
                                                      ("text", "Check"), ("next", "0")]),
        (get, f"{casebook}/logs/adverse_event/{ids['away_adverse_event']}/", []),
        (post, f"{casebook}/logs/adverse_event/{ids['away_adverse_event']}/",
         [("version", "1"), ("term", "x")]),
        (get, f"{casebook}/logs/adverse_event/999999999/", []),
        (post, f"{casebook}/visits/{visit}/nihss/", [("version", "1"),
                                                     ("assessed_at", "0001-01-01T00:00")]),
        (post, f"{casebook}/visits/{visit}/stroke_event/", [
            ("version", "1"), ("onset_at", "0001-01-01T00:00"),
            ("imaging_at", "9999-12-31T23:59")]),
        (post, "/exports/", [("formats", "csv"), ("profile", "blinded"),
                             ("as_of", "0001-01-01T00:00")]),
        (get, "/admin/edc/site/abc/history/", []),
        (get, "/admin/edc/user/abc/history/1/", []),
    ]]


@pytest.mark.parametrize("role", list(Role))
def test_requests_that_broke_it_before_give_no_5xx_and_write_nothing_when_refused(fuzz, role):
    client = Client()
    with rolled_back():
        client.force_login(fuzz.trial.users[role])
        cookies = copy.deepcopy(client.cookies)
        baseline = fuzz.fingerprint.take()
        last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        failures = []
        for request in hostile_requests(fuzz.trial.ids):
            client.cookies = copy.deepcopy(cookies)
            with rolled_back():
                try:
                    status = send(client, request).status_code
                    if status >= 500:
                        failures.append(f"{status} for {request}")
                    elif status >= 400:
                        changed = fuzzing.writes(baseline, fuzz.fingerprint.take(), last_event)
                        if changed:
                            failures.append(f"{status} but wrote {changed}: {request}")
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error} for {request}")
                finally:
                    timezone.deactivate()
                    transaction.set_rollback(True)
        assert not failures, "\n".join(failures)
        transaction.set_rollback(True)


def test_the_fingerprint_sees_every_write_and_no_rolled_back_one(db, site, nurse):
    """The fuzz suite's 'nothing written' is only as good as its fingerprint: an update that
    changes neither the row count nor the ids, an insert and a delete are each seen; a write
    rolled back is not."""
    note = Notification.objects.create(user=nurse, title="Visit due")
    fingerprint = fuzzing.Fingerprint()
    before = fingerprint.take()
    for write in (lambda: Notification.objects.filter(pk=note.pk).update(title="Changed"),
                  lambda: Notification.objects.create(user=nurse, title="Another"),
                  lambda: Notification.objects.filter(pk=note.pk).delete()):
        with rolled_back():
            write()
            assert fuzzing.writes(before, fingerprint.take(), 0) == ["edc_notification"]
            transaction.set_rollback(True)
        assert fuzzing.writes(before, fingerprint.take(), 0) == []


def test_the_arm_guard_sees_the_arm_where_an_unblinded_role_may_see_it(fuzz):
    """The blinding guard above looks for text that does appear on an unblinded page."""
    client = Client()
    with rolled_back():
        client.force_login(fuzz.trial.users[Role.UNBLINDED_PHARMACIST])
        text = client.get("/screening/pharmacy/").content.decode()
        assert [arm for arm in fuzzing.arm_texts() if arm in text]
        transaction.set_rollback(True)
