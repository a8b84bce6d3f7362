"""Measurements inside one Django process against one seeded database (``DATABASE_URL``):
CRF saves through the whole stack, the hot pages, and PostgreSQL's ``COPY`` of the tables an
export reads. Prints one JSON object; ``benchmarks/run.py`` runs it and prints the table.

    DATABASE_URL=postgres://... python benchmarks/measure.py [--saves 60] [--repeat 15]
"""

import argparse
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edc.settings")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def timed_requests(call, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, cpu, queries = [], [], []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = call()
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"unexpected status {response.status_code}")
        queries.append(len(captured))
    return {"median_ms": statistics.median(times), "p95_ms": percentile(times, 0.95),
            "cpu_median_ms": statistics.median(cpu), "queries": max(queries)}


def _posted(crf) -> dict:
    import datetime as dt

    values = {}
    for name in type(crf).entry_items():
        value = getattr(crf, name)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            from django.utils import timezone

            value = timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
        elif isinstance(value, Decimal):
            value = str(value)
        values[name] = value
    return values


def chain_tables() -> set[str]:
    """The audit hash chain's own tables (heads, links, row layouts)."""
    from django.apps import apps

    return {m._meta.db_table for m in apps.get_app_config("edc").get_models()
            if m.__name__.startswith(("AuditChain", "AuditRow"))}


def chained_rows() -> int:
    """Rows that each get a link in the audit hash chain: history rows and audit events."""
    from edc.audit import chained_models

    return sum(m.objects.count() for m in chained_models())


def statements_on(captured, tables: set[str]) -> int:
    """Statements of a ``CaptureQueriesContext`` that read or write one of ``tables``."""
    quoted = tuple(f'"{t}"' for t in tables)
    return sum(1 for q in captured.captured_queries if any(t in q["sql"] for t in quoted))


def measure_saves(count: int) -> dict:
    """Edit ``count`` completed vital-signs forms through the browser's path: the view, form
    validation, the service, history, edit checks and queries; count the statements on the
    audit chain's tables per chained row (history row or audit event) the saves wrote."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from edc.models import User
    from forms.models import VitalSigns
    from forms.review.locks import active_lock

    forms = list(VitalSigns.objects.filter(status="complete", visit__isnull=False)
                 .select_related("subject__site").order_by("pk"))
    chosen = []
    for crf in forms:
        if len(chosen) >= count:
            break
        if not active_lock(subject=crf.subject, visit=crf.visit, record=crf):
            chosen.append(crf)
    # Logged in before counting: a log-in writes an audit event (a chained row) of its own.
    clients: dict[int, Client] = {}
    for site in {crf.subject.site for crf in chosen}:
        clients[site.pk] = Client()
        clients[site.pk].force_login(User.objects.get(username=f"nurse.{site.code.lower()}"))
    times, cpu, queries, done, chain_statements = [], [], [], 0, 0
    tables = chain_tables()
    rows_before = chained_rows()
    for crf in chosen:
        site = crf.subject.site
        posted = _posted(crf)
        posted["heart_rate"] = 70 + done % 20 if crf.heart_rate != 70 + done % 20 else 91
        posted |= {"version": crf.version, "action": "complete",
                   "reason": "Benchmark: value re-checked in the hospital record"}
        url = reverse("forms:visit_crf", args=[crf.subject_id, crf.visit_id, "vital_signs"])
        with CaptureQueriesContext(connection) as captured:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = clients[site.pk].post(url, posted)
            elapsed = (time.perf_counter() - started) * 1000
            cpu.append((time.process_time() - started_cpu) * 1000)
        if response.status_code != 302:
            raise SystemExit(f"save refused ({response.status_code}) for {url}")
        times.append(elapsed)
        queries.append(len(captured))
        chain_statements += statements_on(captured, tables)
        done += 1
    rows = chained_rows() - rows_before
    return {"saves": done, "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95), "cpu_median_ms": statistics.median(cpu),
            "queries_median": statistics.median(queries),
            "queries_max": max(queries), "chained_rows": rows,
            "chain_statements": chain_statements,
            "chain_statements_per_row": chain_statements / rows if rows else None}


def measure_pages(repeat: int) -> dict:
    from django.db.models import Count
    from django.test import Client
    from django.urls import reverse

    from edc.models import User
    from forms.models import VitalSigns
    from visits.models import Subject

    manager = Client()
    manager.force_login(User.objects.get(username="datamanager.trial"))
    subject = (Subject.objects.filter(subject_id__isnull=False)
               .annotate(n=Count("visits")).order_by("-n", "pk").first())
    nurse = Client()
    nurse.force_login(User.objects.get(username=f"nurse.{subject.site.code.lower()}"))
    crf = VitalSigns.objects.filter(subject=subject, visit__isnull=False).first()
    results = {
        "matrix (all sites)": timed_requests(
            lambda: manager.get(reverse("forms:matrix")), repeat),
        "matrix (one site)": timed_requests(lambda: nurse.get(reverse("forms:matrix")), repeat),
        "casebook": timed_requests(
            lambda: nurse.get(reverse("forms:casebook", args=[subject.pk])), repeat),
        "dashboard": timed_requests(lambda: manager.get(reverse("dashboard")), repeat),
        "query list": timed_requests(lambda: manager.get(reverse("forms:query_list")), repeat),
    }
    if crf is not None:
        results["CRF form"] = timed_requests(lambda: nurse.get(reverse(
            "forms:visit_crf", args=[subject.pk, crf.visit_id, "vital_signs"])), repeat)
    return results


def export_tables() -> list[str]:
    """The tables an export reads: subjects, visits, allocation, every CRF, queries and their
    messages, and the history tables the audit trail and as-of cuts come from."""
    from forms.models import CRF_MODELS
    from forms.quality.queries import Query, QueryMessage
    from visits.models import RandomizationSlot, Subject, Visit

    models = [Subject, Visit, RandomizationSlot, Query, QueryMessage, *CRF_MODELS.values()]
    return sorted({t for m in models for t in (m._meta.db_table, m.history.model._meta.db_table)})


def measure_copy() -> dict:
    """PostgreSQL's ``COPY (…) TO STDOUT`` of every table an export reads, read to the end:
    the floor an export is compared with."""
    from django.db import connection

    tables = export_tables()
    started = time.perf_counter()
    size = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3
        for table in tables:
            # Table names come from the models' metadata, not from input.
            with raw.copy(f'COPY (SELECT * FROM "{table}") TO STDOUT') as copy:  # noqa: S608
                for block in copy:
                    size += len(block)
    return {"seconds": time.perf_counter() - started, "bytes": size, "tables": len(tables)}


def dataset_files() -> dict[str, str]:
    """XPORT file name (8 characters) → dataset name, so the harness can put each dataset's
    binary file beside its CSV file."""
    from exports.dictionary import datasets

    return {d.sas_name: d.name for d in datasets()}


def counts() -> dict:
    from forms.models import CRF_MODELS
    from forms.quality.queries import Query
    from visits.models import Subject, Visit

    return {"subjects": Subject.objects.count(), "visits": Visit.objects.count(),
            "forms": sum(m.objects.count() for m in CRF_MODELS.values()),
            "queries": Query.objects.count()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--saves", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    import django

    django.setup()
    from django.test.utils import override_settings

    with override_settings(ALLOWED_HOSTS=["testserver"],
                           EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        result = {"counts": counts(), "pages": measure_pages(options.repeat),
                  "save": measure_saves(options.saves), "copy": measure_copy(),
                  "xpt_names": dataset_files()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
