"""The pieces of the fuzz suite (``tests/test_fuzz.py``): a seeded trial, every URL of the URL
configuration with its path parameters filled, the fields of the forms the pages show, the
generated values, and a fingerprint of every table to prove that a refused request wrote
nothing."""

import datetime as dt
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.utils import timezone

from edc import protocol
from edc.models import AuditAction, AuditEvent, Notification
from edc.roles import Role
from exports.dictionary import Profile
from exports.tasks import export_start
from forms.entry import services as form_services
from forms.models import CRF_MODELS, AdverseEvent, ConcomitantMedication, ProtocolDeviation
from forms.models.signoff import LockScope
from forms.quality import queries as query_services
from forms.review import locks
from forms.selectors import expected_crfs
from tests.eligible import confirm_all, enter_screening_data, lab_ranges
from tests.factories import (
    SiteFactory,
    UserFactory,
    randomization_list,
    randomized_subject,
    screened_subject,
)
from visits.models import Subject, Visit

# --- The seeded trial ------------------------------------------------------------------------


@dataclass
class Trial:
    users: dict[str, object]
    # Real path parameters by the set of their names, e.g. {"subject_pk", "visit_pk"}.
    real: dict[frozenset, list[dict[str, str]]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # Ids of the records the fixed hostile requests aim at.
    ids: dict[str, int] = field(default_factory=dict)


def seed_trial() -> Trial:
    """Two sites; one user per role at the first (all-site roles see both); at the first site a
    randomized subject with every screening form, log entries of every log form, a query, a
    lock, an export and a notification, plus a subject in screening and one not consented; at
    the second site a randomized subject the site-bound roles must not reach."""
    home = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    away = SiteFactory(code="GZ02", name="Guangzhou", time_zone="Asia/Shanghai")
    users = {role: UserFactory(username=f"fuzz.{role}", role=role, sites=[home],
                               is_staff=role == Role.ADMINISTRATOR,
                               is_superuser=role == Role.ADMINISTRATOR)
             for role in Role.values}
    nurse, investigator = users[Role.SITE_STAFF], users[Role.INVESTIGATOR]
    away_nurse = UserFactory(username="fuzz.away", role=Role.SITE_STAFF, sites=[away])
    lab_ranges(home)
    randomization_list(home)

    randomized = screened_subject(site=home, user=nurse,
                                  consented_at=timezone.now() - dt.timedelta(hours=5))
    enter_screening_data(randomized, nurse)
    confirm_all(randomized, investigator)
    randomized = form_services.subject_randomize(subject=randomized, user=nurse)
    screening = screened_subject(site=home, user=nurse)
    enter_screening_data(screening, nurse)
    unconsented = screened_subject(site=home, user=nurse, consent=False)
    elsewhere = randomized_subject(site=away, user=away_nurse)

    start = timezone.localdate()
    logs = {
        AdverseEvent: {"term": "Headache", "start_date": start, "ongoing": True},
        ConcomitantMedication: {"medication": "Aspirin", "start_date": start,
                                "ongoing": True, "dose": Decimal(100)},
        ProtocolDeviation: {"description": "Visit late"},
    }
    for model, values in logs.items():
        for subject, user in ((randomized, nurse), (elsewhere, away_nurse)):
            crf = form_services.crf_instance(model=model, subject=subject)
            form_services.crf_save(crf=crf, values={
                k: v for k, v in values.items() if k in model.entry_items()},
                user=user, expected_version=0)

    nihss = CRF_MODELS["nihss"].objects.get(subject=randomized)
    query = query_services.query_raise(target=nihss, field_name="loc", text="Please check",
                                       user=users[Role.MONITOR])
    query_services.query_answer(query=query, text="Checked", user=nurse)
    elsewhere_visit = elsewhere.visits.order_by("pk").first()
    query_services.query_raise(target=elsewhere_visit, field_name="actual_date",
                               text="Date?", user=users[Role.DATA_MANAGER])
    mrs = CRF_MODELS["mrs"].objects.get(subject=randomized)
    locks.lock_create(user=users[Role.DATA_MANAGER], scope=LockScope.FORM, target=mrs,
                      reason="Reviewed")
    locks.lock_create(user=users[Role.DATA_MANAGER], scope=LockScope.SUBJECT, target=elsewhere,
                      reason="Reviewed")
    export_start(user=users[Role.DATA_MANAGER], formats=["csv"], profile=Profile.BLINDED)
    for user in users.values():
        Notification.objects.create(user=user, title="Visit due", body="A visit is due.")

    trial = Trial(users=users)
    screening_visit = randomized.visits.order_by("pk").first()
    trial.ids = {
        "subject": randomized.pk, "screening_subject": screening.pk,
        "visit": screening_visit.pk, "nihss": nihss.pk, "mrs": mrs.pk, "query": query.pk,
        "lock": locks.active_lock(subject=randomized, record=mrs).pk,
        "away_adverse_event": AdverseEvent.objects.get(subject=elsewhere).pk,
        "site": home.pk,
    }
    subjects = [randomized, screening, unconsented, elsewhere]
    visits = list(Visit.objects.filter(subject__in=subjects).order_by("pk"))
    real = trial.real
    real[frozenset({"subject_pk"})] = [{"subject_pk": s.pk} for s in subjects]
    real[frozenset({"subject_pk", "visit_pk"})] = [
        {"subject_pk": v.subject_id, "visit_pk": v.pk} for v in visits]
    real[frozenset({"subject_pk", "visit_pk", "crf_code"})] = [
        {"subject_pk": v.subject_id, "visit_pk": v.pk, "crf_code": code}
        for v in visits for code in expected_crfs(v)]
    log_codes = [c.code for c in protocol.CRFS if c.is_log]
    real[frozenset({"subject_pk", "crf_code"})] = [
        {"subject_pk": s.pk, "crf_code": code} for s in subjects for code in log_codes]
    records = [{"subject_pk": row.subject_id, "crf_code": code, "pk": row.pk}
               for code, model in CRF_MODELS.items()
               for row in model.objects.filter(subject__in=subjects)]
    real[frozenset({"subject_pk", "crf_code", "pk"})] = records
    real[frozenset({"subject_pk", "kind", "pk"})] = [
        {"subject_pk": r["subject_pk"], "kind": r["crf_code"], "pk": r["pk"]} for r in records
    ] + [{"subject_pk": v.subject_id, "kind": "visit", "pk": v.pk} for v in visits]
    real[frozenset({"query_pk", "action"})] = [
        {"query_pk": q.pk, "action": action}
        for q in query_services.Query.objects.order_by("pk")
        for action in ("answer", "requery", "close", "cancel")]
    real[frozenset({"pk"})] = [{"pk": run.pk} for run in
                               apps.get_model("edc", "ExportRun").objects.all()]
    trial.versions = {f"{r['crf_code']}:{r['pk']}": CRF_MODELS[r["crf_code"]].objects.get(
        pk=r["pk"]).version for r in records}
    return trial


# --- Every URL of the URL configuration ------------------------------------------------------

PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>|\(\?P<(?P<rname>\w+)>"
                       r"(?P<regex>[^)]*)\)|\((?P<unnamed>[^?)][^)]*)\)")


@dataclass(frozen=True)
class Route:
    """One URL pattern: its name and its path, parameters left as ``{name}``."""

    name: str
    template: str
    # name -> converter ("int", "str", "path") or the alternatives of a regex group
    parameters: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return self.name or self.template

    def path(self, values: dict[str, object]) -> str:
        return "/" + self.template.format(**{k: str(v) for k, v in values.items()})


def _route_text(pattern) -> str:
    text = str(pattern.pattern)
    return text.removeprefix("^").removesuffix("$").replace("\\Z", "")


def routes() -> list[Route]:
    """Every URL pattern reachable from the root URL configuration (Django admin included),
    from ``get_resolver()``, so a view added tomorrow is fuzzed without touching this file."""
    found: list[Route] = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            text = prefix + _route_text(pattern)
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, text, inner)
            elif isinstance(pattern, URLPattern):
                parameters = []

                def placeholder(match: re.Match, parameters=parameters) -> str:
                    name = match["name"] or match["rname"] or f"arg{len(parameters)}"
                    parameters.append((name, match["converter"] or match["regex"] or "str"))
                    return "{" + name + "}"

                template = PARAMETER.sub(placeholder, text.replace("{", "{{").replace("}", "}}"))
                name = f"{namespace}{pattern.name}" if pattern.name else ""
                found.append(Route(name=name or template, template=template,
                                   parameters=tuple(parameters)))

    walk(get_resolver().url_patterns, "", "")
    return found


# Wrong path parameters: another type, out of range, not there, encodings that decode to
# something odd. (The int converter only lets ASCII digits through.)
WRONG_INT = ["0", "999999999", "2147483648", "9223372036854775808", "9" * 40]
WRONG_STR = ["nope", "0", "-1", "1.5", quote("²"), quote("١٢"), "%00", quote("a\x00b"),
             quote("界" * 300), "x" * 2000, "..", "%2e%2e", quote("'\";--"), "NIHSS",
             "eligibility", "consent", "visit", "1e308", "NaN"]


def real_parameters(route: Route, trial: Trial) -> list[dict[str, object]]:
    names = frozenset(name for name, _conv in route.parameters)
    if not names:
        return [{}]
    if route.name.startswith("admin:"):
        return _admin_parameters(route, names)
    return trial.real.get(names, [])


def _admin_parameters(route: Route, names: frozenset) -> list[dict[str, object]]:
    if names == {"app_label"}:
        regex = dict(route.parameters)["app_label"]
        return [{"app_label": label} for label in regex.split("|")]
    if names == {"object_id"}:
        parts = route.template.split("/")
        try:
            model = apps.get_model(parts[1], parts[2])
        except (LookupError, IndexError):
            return []
        return [{"object_id": quote(str(pk))}
                for pk in model._default_manager.order_by("pk").values_list("pk", flat=True)[:3]]
    if names == {"id"}:
        return [{"id": pk} for pk in apps.get_model("edc", "User").objects.values_list(
            "pk", flat=True)[:3]]
    if names == {"arg0", "arg1"}:  # simple-history: one historical version of a record
        model = apps.get_model(*route.template.split("/")[1:3])
        return [{"arg0": row.id, "arg1": row.history_id}
                for row in model.history.order_by("history_id")[:3]]
    if names == {"url"}:
        return [{"url": "nope/"}, {"url": "edc/"}, {"url": "edc/site/1"}]
    if names == {"content_type_id", "object_id"}:
        ct = ContentType.objects.get_for_model(apps.get_model("edc", "Site"))
        return [{"content_type_id": ct.pk, "object_id": pk} for pk in
                apps.get_model("edc", "Site").objects.values_list("pk", flat=True)]
    return []


def wrong_values(converter: str) -> list[str]:
    return WRONG_INT if converter == "int" else WRONG_STR


# --- The forms the pages show ----------------------------------------------------------------


@dataclass
class FormField:
    kind: str  # "text", "select", "checkbox", "radio", "hidden", "textarea", "password", ...
    values: list[str] = field(default_factory=list)  # the value shown, or the options offered
    multiple: bool = False


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, FormField] = field(default_factory=dict)


class FormParser(HTMLParser):
    """The forms of a page: method, action and each field with its offered values."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._select: FormField | None = None
        self._textarea: FormField | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(Form(method=(attrs.get("method") or "get").upper(),
                                   action=attrs.get("action") or ""))
            return
        if not self.forms or not attrs.get("name"):
            if tag == "option" and self._select is not None:
                self._select.values.append(attrs.get("value") or "")
            return
        fields = self.forms[-1].fields
        name = attrs["name"]
        if tag == "input":
            kind = (attrs.get("type") or "text").lower()
            if kind in ("submit", "button") and name != "action":
                return
            known = fields.setdefault(name, FormField(kind=kind))
            known.multiple = known.multiple or (kind == "checkbox" and len(known.values) > 0)
            if attrs.get("value") is not None:
                known.values.append(attrs["value"])
        elif tag == "select":
            self._select = fields.setdefault(name, FormField(
                kind="select", multiple="multiple" in attrs))
        elif tag == "textarea":
            self._textarea = fields.setdefault(name, FormField(kind="textarea"))
        elif tag == "button" and attrs.get("value") is not None:
            fields.setdefault(name, FormField(kind="button")).values.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None and data.strip():
            self._textarea.values.append(data.strip())


def forms_of(html: str, page_path: str) -> list[tuple[str, Form]]:
    """The forms of a page, each with the path it submits to."""
    parser = FormParser()
    parser.feed(html)
    found = []
    for form in parser.forms:
        target = urlsplit(form.action).path or page_path
        found.append((target, form))
    return found


def route_key(path: str) -> tuple[str, str] | None:
    """Forms are filed by URL name and CRF code (every CRF shares the entry view)."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    kwargs = match.kwargs
    return match.view_name, str(kwargs.get("crf_code") or kwargs.get("kind") or "")


def merge(index: dict, key, form: Form) -> None:
    known: Form = index.setdefault(key, Form(method=form.method, action=form.action))
    for name, found in form.fields.items():
        mine = known.fields.setdefault(name, FormField(kind=found.kind, multiple=found.multiple))
        mine.values.extend(v for v in found.values if v not in mine.values)
        mine.multiple = mine.multiple or found.multiple


# --- Values a person (or a script) could send ------------------------------------------------

NASTY = [
    "", " ", "0", "-0", "-1", "1", "2", "7", "255", "32767", "32768", "2147483648",
    "9223372036854775808", "9" * 400, "1e308", "-1e308", "1e-400", "NaN", "nan", "inf",
    "-Infinity", "0x10", "1_000", "1,5", "1.5", "0.0000000000001", "²", "³", "١٢٣", "½",
    "Ⅻ", "𝟗", "abc", "true", "on", "None", "null", "[]", "{}",
    "\x00", "a\x00b", "0\x00", "\x7f", "\u200b", "\u202e", "\ufeff", "\r\n", "\t",
    "0001-01-01", "9999-12-31", "0000-00-00", "2026-02-30", "1900-01-01", "2100-01-01",
    "0001-01-01T00:00", "0001-01-01 00:00:00", "9999-12-31T23:59", "9999-12-31 23:59:59",
    "2026-13-01T25:61", "1-1-1", "2026-06-01T10:00:00+14:00", "10:00", "24:00",
    "x" * 100_000, "界" * 5_000, "e\u0301" * 1000, "=1+1", "+1", "-2+3", "@SUM(A1)",
    "<script>alert(1)</script>", "'; DROP TABLE edc_user; --", "../../etc/passwd",
    "%00", "%s%s%s", "{0}", "{{ 7*7 }}", "\\", "😀" * 50,
]
# Bytes that are not UTF-8 at all (a lone surrogate, a cut sequence, Latin-1): a browser never
# sends them, a script can.
RAW_BYTES = [b"\xed\xa0\x80", b"\xff\xfe", b"\xe4\xb8", b"caf\xe9", b"\xc0\x80"]


def encode(pairs: list[tuple[str, str | bytes]]) -> str:
    """application/x-www-form-urlencoded, bytes passed through as they are."""
    def q(value: str | bytes) -> str:
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        return quote(raw, safe="")

    return "&".join(f"{q(name)}={q(value)}" for name, value in pairs)


# --- Nothing written: a fingerprint of every table -------------------------------------------

# Tables a request may write whatever its answer: the session (its expiry is renewed once a
# minute by any request, refused or not: edc.middleware.SessionRenewalMiddleware).
UNWATCHED_TABLES = {"django_session"}
# A refused password is recorded even though the request is refused (issue 14, item 7): the
# failed-attempt event with its tamper-evident chain link, and django-axes' lockout counter.
FAILED_PASSWORD_TABLES = {"edc_auditevent", "edc_auditchainlink", "edc_auditchainhead",
                          "axes_accessattempt", "axes_accessfailurelog"}
FAILED_PASSWORD_ACTIONS = {AuditAction.LOGIN_FAILED}


class Fingerprint:
    """Per table: the row count and a value that changes when any row is inserted, updated or
    deleted. PostgreSQL: the newest transaction id among the visible rows (``xmin``), which every
    insert or update raises and a rolled-back write leaves as it was. SQLite: a sum of CRC32s of
    every row's values."""

    def __init__(self):
        self.tables = sorted(set(connection.introspection.table_names()) - UNWATCHED_TABLES)
        # Table and column names come from the database's own catalogue.
        if connection.vendor == "postgresql":
            parts = [f"SELECT '{t}', count(*), coalesce(max(xmin::text::bigint), 0) "  # noqa: S608
                     f"FROM {connection.ops.quote_name(t)}" for t in self.tables]
        else:
            parts = []
            with connection.cursor() as cursor:
                for table in self.tables:
                    columns = [c.name for c in connection.introspection.get_table_description(
                        cursor, table)]
                    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
                    parts.append(f"SELECT '{table}', count(*), total(fuzz_crc({cols})) "  # noqa: S608
                                 f"FROM {connection.ops.quote_name(table)}")
        self.sql = " UNION ALL ".join(parts)

    def take(self) -> dict[str, tuple]:
        connection.ensure_connection()
        if connection.vendor == "sqlite":
            connection.connection.create_function("fuzz_crc", -1, _crc, deterministic=True)
        with connection.cursor() as cursor:
            cursor.execute(self.sql)
            return {table: tuple(rest) for table, *rest in cursor.fetchall()}


def _crc(*values) -> int:
    return zlib.crc32(repr(values).encode("utf-8", "surrogatepass"))


def writes(before: dict, after: dict, first_event_pk: int) -> list[str]:
    """The tables a request changed, less a failed password's own records."""
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    if changed and set(changed) <= FAILED_PASSWORD_TABLES:
        actions = set(AuditEvent.objects.filter(pk__gt=first_event_pk)
                      .values_list("action", flat=True))
        if actions <= FAILED_PASSWORD_ACTIONS:
            return []
    return changed


def arm_texts() -> list[str]:
    return [str(arm.label) for arm in protocol.ARMS] + ["placebo", "PLACEBO"]


def subject_count() -> int:
    return Subject.objects.count()
