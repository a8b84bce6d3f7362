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

    times, queries = [], []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = call()
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"unexpected status {response.status_code}")
        queries.append(len(captured))
    return {"median_ms": statistics.median(times), "p95_ms": percentile(times, 0.95),
            "queries": max(queries)}


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


def measure_saves(count: int) -> dict:
    """Edit ``count`` completed vital-signs forms through the browser's path: the view, form
    validation, the service, history, edit checks and queries."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from edc.models import User
    from forms.locks import active_lock
    from forms.models import VitalSigns

    forms = list(VitalSigns.objects.filter(status="complete", visit__isnull=False)
                 .select_related("subject__site").order_by("pk"))
    clients: dict[int, Client] = {}
    times, queries, done = [], [], 0
    for crf in forms:
        if done >= count:
            break
        if active_lock(subject=crf.subject, visit=crf.visit, record=crf):
            continue
        site = crf.subject.site
        if site.pk not in clients:
            nurse = User.objects.get(username=f"nurse.{site.code.lower()}")
            clients[site.pk] = Client()
            clients[site.pk].force_login(nurse)
        posted = _posted(crf)
        posted["heart_rate"] = 70 + done % 20 if crf.heart_rate != 70 + done % 20 else 91
        posted |= {"version": crf.version, "action": "complete",
                   "reason": "Benchmark: value re-checked in the hospital record"}
        url = reverse("forms:visit_crf", args=[crf.subject_id, crf.visit_id, "vital_signs"])
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = clients[site.pk].post(url, posted)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 302:
            raise SystemExit(f"save refused ({response.status_code}) for {url}")
        times.append(elapsed)
        queries.append(len(captured))
        done += 1
    return {"saves": done, "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95), "queries_median": statistics.median(queries),
            "queries_max": max(queries)}


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
    from forms.queries import Query, QueryMessage
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


def counts() -> dict:
    from forms.models import CRF_MODELS
    from forms.queries import Query
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
                  "save": measure_saves(options.saves), "copy": measure_copy()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
