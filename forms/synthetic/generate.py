"""Generating the trial: the plan, the set-up, then each subject's run."""

import datetime as dt
import time
from collections.abc import Callable
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test.utils import override_settings

from forms.synthetic.clock import Clock, SyntheticTrialError, Trial
from forms.synthetic.configuration import _setup
from forms.synthetic.plan import ENROLMENT_DAYS, PASSWORD, SITE_TIME_ZONE, SNAPSHOT_TIME, trial_plan
from forms.synthetic.run import SubjectRun
from forms.synthetic.summary import TrialSummary, trial_digest, trial_summary
from visits.models import (
    Subject,
)


def site_codes_for(site_count: int) -> list[str]:
    """The synthetic trial's own sites: S01 to Sk."""
    return [f"S{number:02d}" for number in range(1, site_count + 1)]


def trial_generate(*, subjects: int, seed: int, as_of: dt.date, site_count: int = 3,
                   site_codes: list[str] | None = None, password: str = PASSWORD,
                   progress: Callable[[int], None] | None = None) -> TrialSummary:
    """Generate the trial at sites without subjects (S01 to Sk by default, or ``site_codes``,
    created when missing). Other sites' subjects, accounts and randomization lists may exist
    (the demo's, say): the accounts of each role at these sites enter the data, new ones are
    made (with ``password``) where a role has none; ``password`` also signs the casebooks."""
    site_codes = list(site_codes or site_codes_for(site_count))
    if subjects < 1 or not 1 <= len(site_codes) <= 99 or len(set(site_codes)) < len(site_codes):
        raise SyntheticTrialError("Give at least one subject and between 1 and 99 sites.")
    taken = sorted(set(Subject.objects.filter(site__code__in=site_codes)
                       .values_list("site__code", flat=True)))
    if taken:
        raise SyntheticTrialError(
            f"Sites {', '.join(taken)} already hold subjects: generate the synthetic trial at "
            f"sites without subjects (or into a fresh database).")
    started = time.perf_counter()
    zone = ZoneInfo(SITE_TIME_ZONE)
    snapshot = dt.datetime.combine(as_of, SNAPSHOT_TIME, tzinfo=zone).astimezone(dt.UTC)
    plans = trial_plan(subjects=subjects, seed=seed, as_of=as_of, site_codes=site_codes)
    opened = dt.datetime.combine(as_of - dt.timedelta(days=ENROLMENT_DAYS + 30),
                                 dt.time(9, 0), tzinfo=zone)
    # Django's debug cursor (DEBUG is on in development, as for ``make demo``) formats and
    # keeps every statement for the debug page; the trial runs tens of thousands and no page
    # shows them.
    with override_settings(DEBUG=False), Clock(opened) as clock, _unflushed_commits():
        with transaction.atomic():
            sites, staff, data_manager = _setup(site_codes, plans, seed, password)
        trial = Trial(seed=seed, snapshot=snapshot, clock=clock, sites=sites, staff=staff,
                      data_manager=data_manager, password=password)
        for done, plan in enumerate(plans, start=1):
            SubjectRun(trial, plan).run()
            if progress is not None:
                progress(done)
    summary = trial_summary()
    summary.seconds = time.perf_counter() - started
    summary.digest = trial_digest()
    people = {user.pk: user for team in staff.values()
              for user in (team.nurse, team.investigator, team.monitor)}
    people[data_manager.pk] = data_manager
    for user in sorted(people.values(), key=lambda u: u.username):
        codes = ", ".join(user.sites.order_by("code").values_list("code", flat=True))
        summary.accounts.append(
            f"{user.username} ({user.get_role_display()}, {codes or 'all sites'})")
    return summary


@contextmanager
def _unflushed_commits():
    """On PostgreSQL, this session's commits return before their WAL is flushed to disk
    (``synchronous_commit = off``) while the trial is generated: each subject's transaction
    stops waiting for an fsync. A crash of the server may lose the last transactions
    committed (never corrupts one, nor commits half of one); the generator is then run
    again into a fresh database. Other sessions keep the server's setting."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
