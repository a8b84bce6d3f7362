"""The reminder jobs over many visits: grows the database's schedule to each target number of
visits, then runs the visit, SAE and query reminder jobs as the scheduler would (mail kept in
memory) and times them. Prints one JSON object.

Subjects and visits are written one by one through the models' ``save`` (their history rows
and audit chain included), never by bulk writes, as everywhere else. Subjects are randomized
over the past 400 days; as in a running trial, most visits whose window has closed took place
(a few were missed, a few are overdue), those in their window are due, later ones are planned.

    DATABASE_URL=postgres://... python benchmarks/reminders.py --visits 10000 100000
    DATABASE_URL=postgres://... python benchmarks/reminders.py --build 100000   # only grow
    DATABASE_URL=postgres://... python benchmarks/reminders.py --jobs           # only run the jobs

``benchmarks/run.py`` grows a database once with ``--build``, keeps a copy of it for later runs
and times the jobs with ``--jobs`` on a fresh copy, so a rerun does not rebuild the schedule;
``--jobs`` runs them as of the time the schedule was built, so the copy stays valid whatever
day it is.
"""

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edc.settings")


def grow_to(visits: int, rng: random.Random) -> float:
    """Grow the database to ``visits`` visits, written directly (fast): a seeding, the
    system's writes, whose history rows name no author (``edc.history.system_writes``)."""
    from edc.history import system_writes

    with system_writes():
        return _grow_to(visits, rng)


def _grow_to(visits: int, rng: random.Random) -> float:
    from django.db import transaction
    from django.utils import timezone

    from edc import protocol
    from edc.audit import chain_batch
    from edc.models import Site, User
    from edc.roles import Role
    from visits import schedule
    from visits.models import Subject, SubjectStatus, Visit

    started = time.perf_counter()
    sites = list(Site.objects.order_by("code"))
    if not sites:
        for number in (1, 2, 3):
            site = Site(code=f"R{number:02d}", name=f"Reminder site {number}",
                        time_zone="Asia/Shanghai")
            site.save()
            nurse = User(username=f"nurse.r{number:02d}", role=Role.SITE_STAFF,
                         email=f"nurse.r{number:02d}@example.org")
            nurse.set_unusable_password()
            nurse.save()
            nurse.sites.add(site)
            sites.append(site)
    now = timezone.now()
    today = timezone.localdate(now)
    made = Visit.objects.count()
    number = Subject.objects.count()
    while made < visits:
        # Each transaction's history rows are linked in the audit chain together when it
        # ends (per table one read of the chain's head and one INSERT of the links), as the
        # services' writes are, instead of two statements per row.
        with transaction.atomic(), chain_batch():
            for _ in range(500):
                if made >= visits:
                    break
                number += 1
                site = sites[number % len(sites)]
                randomized_at = now - dt.timedelta(days=rng.uniform(1, 400))
                subject = Subject(
                    screening_number=f"{site.code}-B{number:06d}", site=site,
                    subject_id=f"{site.code}-{number:06d}", status=SubjectStatus.RANDOMIZED,
                    screened_at=randomized_at - dt.timedelta(hours=3),
                    consented_at=randomized_at - dt.timedelta(hours=2),
                    consent_signed_by="subject", consent_form_version="v2.0 2026-01-15",
                    age_at_consent=60, randomized_at=randomized_at,
                    randomization_number=f"B{number:07d}",
                )
                subject.save()
                day1 = schedule.local_date(randomized_at, site.zone)
                for visit_def in protocol.VISITS:
                    window = schedule.visit_window(visit_def, day1)
                    visit = Visit(subject=subject, code=visit_def.code,
                                  planned_date=window.planned, window_start=window.start,
                                  window_end=window.end)
                    if window.end < today:
                        fate = rng.random()
                        if fate < 0.02:
                            visit.is_missed, visit.missed_reason = True, "Patient unreachable"
                        elif fate >= 0.05:
                            visit.actual_date = window.planned
                    visit.save()
                    made += 1
    return time.perf_counter() - started


def build_clock() -> dt.datetime | None:
    """When the schedule was built: the time of its last visit's history row. The jobs run as
    of then, so a copy of the schedule kept for weeks gives the figures a fresh build gives
    (its visits are due, closing and overdue as they were when it was built)."""
    from django.db.models import Max

    from visits.models import Visit

    return Visit.history.aggregate(last=Max("history_date"))["last"]


def run_jobs(now: dt.datetime) -> dict:
    from django.core import mail

    from edc.notifications import job_run
    from wiring.management.commands.run_job import JOBS

    timings = {}
    for name, job in JOBS.items():
        mail.outbox = []
        started = time.perf_counter()
        outcome = job_run(name, job, worker="benchmark", now=now)
        timings[name] = {"seconds": time.perf_counter() - started,
                         "mails": len(mail.outbox), "summary": outcome.summary()}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--build", type=int, metavar="VISITS",
                        help="only grow the schedule to VISITS visits")
    parser.add_argument("--jobs", action="store_true",
                        help="only run the jobs over the visits there are")
    options = parser.parse_args()
    import django

    django.setup()
    from django.test.utils import override_settings
    from django.utils import timezone

    from visits.models import Visit

    if options.build:
        rng = random.Random(20261126 + options.build)  # noqa: S311 - benchmark data
        building = grow_to(options.build, rng)
        print(json.dumps({"visits": Visit.objects.count(), "build_seconds": building}))
        return
    if options.jobs:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            jobs = run_jobs(build_clock() or timezone.now())
        print(json.dumps({"visits": Visit.objects.count(), "jobs": jobs}))
        return
    rng = random.Random(20261126)  # noqa: S311 - benchmark data, not security
    results = []
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        for day, target in enumerate(sorted(options.visits)):
            building = grow_to(target, rng)
            # A new day for each size, so the once-a-day digests have not been sent yet.
            now = timezone.now() + dt.timedelta(days=day)
            results.append({"visits": Visit.objects.count(), "build_seconds": building,
                            "jobs": run_jobs(now)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
