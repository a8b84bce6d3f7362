"""Simulated research nurses for the load test (``benchmarks/load.py`` runs this file).

Each simulated user logs in as the nurse of one site and works only on the subjects the plan
gives it, so two users never edit the same form: it browses (home page, subject matrix,
casebooks, CRF pages, query list) and saves, about four page views to one save. A save either
corrects the heart rate of a completed vital-signs form, giving a reason, or enters and
completes a new concomitant medication. Forms are filled in as a browser would: every field of
the page's form is sent back as rendered (a checked box sends its ``value``), with the user's
changes on top.

Every save the server acknowledges (302 back to the form, or to the casebook for a new log
entry) is written to a JSON-lines file with the values saved, and every attempt before it is
sent, so the caller can check afterwards that the database holds each acknowledged save.

Every request's name, time and outcome is written to another JSON-lines file, from which the
caller computes exact percentiles.

Environment: ``EDC_LOAD_PLAN`` (the JSON plan written by ``load.py``), ``EDC_LOAD_SAVES`` and
``EDC_LOAD_REQUESTS`` (where to append saves and requests), ``EDC_LOAD_PASSWORD``,
``EDC_LOAD_WAIT`` ("min,max" seconds a nurse spends reading or typing between two actions;
default "1,5"; ``benchmarks/load.py`` sets it).
"""

import datetime as dt
import itertools
import json
import os
import random
import re
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

from locust import HttpUser, between, events, task

PLAN = json.loads(Path(os.environ["EDC_LOAD_PLAN"]).read_text())
PASSWORD = os.environ["EDC_LOAD_PASSWORD"]
WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("EDC_LOAD_WAIT", "1,5").split(","))
# Open for the whole run; line-buffered, and one ``write`` per line in one process.
_saves_file = open(os.environ["EDC_LOAD_SAVES"], "a", buffering=1)  # noqa: SIM115
_requests_file = open(os.environ["EDC_LOAD_REQUESTS"], "a", buffering=1)  # noqa: SIM115
_user_numbers = itertools.count()
rng = random.Random()  # noqa: S311 - simulated users' choices, not secrets

# Reasons for change as nurses type them, short and long (the form takes up to 500 characters).
REASONS = (
    "Transcription error",
    "Value re-checked against the source document",
    "Corrected after source data verification by the monitor",
    "Heart rate re-measured after the patient had rested for ten minutes; the first reading was "
    "taken during physiotherapy and is not representative of the resting rate.",
    "Typing error: the nursing chart says otherwise. Corrected against the observation chart "
    "of that morning, countersigned by the ward sister.",
)
MEDICATIONS = (
    ("Paracetamol", "Headache", "500", "3", "oral"),
    ("Omeprazole", "Stress ulcer prophylaxis", "20", "1", "oral"),
    ("Atorvastatin", "Secondary prevention of stroke", "40", "1", "oral"),
    ("Enoxaparin", "Prophylaxis of deep vein thrombosis", "40", "1", "sc"),
    ("Lactulose", "Constipation", "15", "2", "oral"),
)
CRF_LINK = re.compile(r'href="(/casebook/subjects/\d+/(?:visits/\d+/[a-z_]+|logs/[a-z_]+/\d+)/)"')


def named(name: str) -> dict[str, str]:
    """The request's name in a header, so the server's own timing of it (``load.py`` starts
    gunicorn with ``benchmarks/gunicorn_timed.py``) can be put beside the user's."""
    return {"X-Load-Request": name}


def record(entry: dict) -> None:
    if not _saves_file.closed:
        _saves_file.write(json.dumps(entry, sort_keys=True) + "\n")


@events.request.add_listener
def _record_request(*, name: str, response_time: float, exception=None, **_kwargs) -> None:
    if not _requests_file.closed:
        _requests_file.write(json.dumps({"name": name, "ms": response_time, "t": time.time(),
                                         "error": str(exception)[:300] if exception else ""})
                             + "\n")


@events.user_error.add_listener
def _record_exception(*, exception, **_kwargs) -> None:
    if not _requests_file.closed:
        _requests_file.write(json.dumps({"name": "exception in a simulated user", "ms": None,
                                         "error": repr(exception)[:300]}) + "\n")


@events.quitting.add_listener
def _close_files(**_kwargs) -> None:
    _saves_file.close()
    _requests_file.close()


class EntryForm(HTMLParser):
    """The fields of the page's CRF form (``form.crf-form``), as a browser would submit them;
    checkboxes are kept with their value and checked state, buttons are left out."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self.checkboxes: dict[str, tuple[str, bool]] = {}
        self._inside = False
        self._select: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._inside = "crf-form" in a.get("class", "").split()
        if not self._inside or ("name" not in a and tag != "option"):
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind == "checkbox":
                self.checkboxes[a["name"]] = (a.get("value", "on"), "checked" in a)
            elif kind == "radio":
                if "checked" in a:
                    self.values[a["name"]] = a.get("value", "on")
            elif kind not in ("submit", "button", "image", "reset", "file"):
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select, self._select_first = a["name"], None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.values[self._select] = value
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "select" and self._select is not None:
            self.values.setdefault(self._select, self._select_first or "")
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def submission(self, *, ticked: dict[str, bool] | None = None) -> dict[str, str]:
        """What the browser sends, with the checkboxes in ``ticked`` set as given."""
        data = dict(self.values)
        for name, (value, checked) in self.checkboxes.items():
            if (ticked or {}).get(name, checked):
                data[name] = value
        return data


class SiteNurse(HttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.number = next(_user_numbers)
        self.work = PLAN["users"][self.number % len(PLAN["users"])]
        self.username = self.work["username"]
        self.subjects = self.work["subjects"]
        self.logged_in = False

    # -- helpers --

    def page(self, url: str, name: str) -> str | None:
        with self.client.get(url, name=name, catch_response=True, allow_redirects=False,
                             headers=named(name)) as response:
            if response.status_code == 200:
                return response.text
            response.failure(f"HTTP {response.status_code} (expected 200)"
                             + (f" to {response.headers.get('Location')}"
                                if response.is_redirect else ""))
            if response.is_redirect and "/accounts/login/" in response.headers.get("Location", ""):
                self.logged_in = False
            return None

    def on_start(self) -> None:
        self.login()

    def login(self) -> None:
        html = self.page("/accounts/login/", "GET login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html or "")
        if token is None:
            return
        with self.client.post("/accounts/login/", name="POST login", catch_response=True,
                              allow_redirects=False, headers=named("POST login"),
                              data={"csrfmiddlewaretoken": token.group(1),
                                    "username": self.username, "password": PASSWORD}
                              ) as response:
            if response.status_code == 302:
                self.logged_in = True
            else:
                response.failure(f"login as {self.username}: HTTP {response.status_code}")

    def signed_in(self) -> bool:
        if not self.logged_in:
            self.login()
        return self.logged_in

    def subject(self) -> dict:
        return rng.choice(self.subjects)

    # -- page views --

    @task(3)
    def home(self) -> None:
        if self.signed_in():
            self.page("/", "GET home")

    @task(3)
    def matrix(self) -> None:
        if self.signed_in():
            self.page("/casebook/matrix/", "GET subject matrix")

    @task(4)
    def casebook(self) -> None:
        if self.signed_in():
            self.page(f"/casebook/subjects/{self.subject()['subject']}/", "GET casebook")

    @task(4)
    def crf_page(self) -> None:
        """A casebook, then one of its forms, as a nurse reviewing a subject does."""
        if not self.signed_in():
            return
        html = self.page(f"/casebook/subjects/{self.subject()['subject']}/", "GET casebook")
        links = CRF_LINK.findall(html or "")
        if links:
            self.page(rng.choice(links), "GET CRF page")

    @task(2)
    def query_list(self) -> None:
        if self.signed_in():
            self.page("/casebook/queries/", "GET query list")

    # -- saves --

    @task(3)
    def correct_vital_signs(self) -> None:
        """Change the heart rate of a completed vital-signs form, with a reason."""
        if not self.signed_in():
            return
        subject = self.subject()
        form = rng.choice(subject["vital_signs"])
        url = f"/casebook/subjects/{subject['subject']}/visits/{form['visit']}/vital_signs/"
        html = self.page(url, "GET CRF page")
        if html is None:
            return
        entry = EntryForm(html)
        data = entry.submission()
        current = data.get("heart_rate", "")
        heart_rate = rng.choice([n for n in range(56, 105) if str(n) != current])
        reason = rng.choice(REASONS)
        data |= {"heart_rate": str(heart_rate), "reason": reason, "action": "complete"}
        save = {"crf": "vital_signs", "pk": form["pk"], "subject": subject["subject"],
                "user": self.username, "version": int(data["version"]) + 1,
                "values": {"heart_rate": heart_rate}, "reason": reason}
        self._post(url, data, save, expected_location=url, name="POST CRF save (correction)")

    @task(1)
    def new_medication(self) -> None:
        """Enter and complete a new concomitant medication, ongoing or stopped."""
        if not self.signed_in():
            return
        subject = self.subject()
        url = f"/casebook/subjects/{subject['subject']}/logs/concomitant_medication/new/"
        html = self.page(url, "GET CRF page (new log entry)")
        if html is None:
            return
        entry = EntryForm(html)
        name, indication, dose, per_day, route = rng.choice(MEDICATIONS)
        # The name carries a token, so the row can be found again.
        medication = f"{name} (load test {uuid.uuid4().hex[:10]})"
        start = dt.date.fromisoformat(subject["last_visit_date"])
        ongoing = rng.random() < 0.5
        values = {"medication": medication, "indication": indication, "dose": dose,
                  "doses_per_day": per_day, "route": route, "start_date": start.isoformat(),
                  "end_date": "" if ongoing else (start + dt.timedelta(days=1)).isoformat()}
        data = entry.submission(ticked={"ongoing": ongoing}) | values | {"action": "complete"}
        save = {"crf": "concomitant_medication", "pk": None, "subject": subject["subject"],
                "user": self.username, "version": 1, "values": values | {"ongoing": ongoing},
                "reason": ""}
        self._post(url, data, save, expected_location=f"/casebook/subjects/{subject['subject']}/",
                   name="POST CRF save (new log entry)")

    def _post(self, url: str, data: dict, save: dict, *, expected_location: str,
              name: str) -> None:
        save["id"] = uuid.uuid4().hex
        record({"event": "attempt", "t": time.time(), **save})
        with self.client.post(url, data=data, name=name, catch_response=True,
                              allow_redirects=False, headers=named(name)) as response:
            location = response.headers.get("Location", "")
            if response.status_code == 302 and location == expected_location:
                record({"event": "ack", "t": time.time(), **save})
                self.page(location, "GET after save")
            else:
                errors = re.findall(r'class="field-error"[^>]*>([^<]+)<', response.text)[:3]
                response.failure(f"save refused: HTTP {response.status_code} {location} "
                                 f"{' '.join(errors)}".strip())
