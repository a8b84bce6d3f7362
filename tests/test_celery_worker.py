"""The Celery wiring end to end: a real worker consumes a task from Redis and writes to the
database. Skipped only where no REDIS_URL is set outside CI (the embedded demo default);
CI sets REDIS_URL, and there a missing Redis fails the run instead."""

import os

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from edc.celery import app
from edc.history import system_writes
from edc.models import JobRun
from edc.services import last_heartbeat
from edc.tasks import heartbeat
from forms.models import AdverseEvent, VitalSigns
from forms.tasks import edit_checks_rerun

needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL and not os.environ.get("CI"),
    reason="REDIS_URL is not set: tasks run in-process (set it to run a real worker)",
)


@needs_redis
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_heartbeat_through_redis():
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "CI must set REDIS_URL"
    assert not settings.CELERY_TASK_ALWAYS_EAGER
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        result = heartbeat.delay()
        pk = result.get(timeout=30)
        rerun = edit_checks_rerun.delay().get(timeout=60)
    run = JobRun.objects.get(pk=pk)
    assert run.succeeded
    assert run.worker and run.worker != "in-process"
    assert last_heartbeat() == run
    assert rerun == {"subjects": 0, "opened": 0, "closed": 0}


@needs_redis
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_edit_check_rerun_through_a_real_worker_opens_queries(site, nurse):
    from forms.quality.queries import Query
    from tests.factories import randomized_subject

    subject = randomized_subject(site=site, user=nurse)
    # A value saved before a check existed: written directly, as data loaded by an older
    # version would be, so only the re-run can find it.
    with system_writes():  # test data written directly
        VitalSigns.objects.create(subject=subject, visit=subject.visits.get(code="D2"),
                                  status="complete", heart_rate=150)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        counts = edit_checks_rerun.delay().get(timeout=60)
    assert counts["opened"] >= 1
    assert Query.objects.filter(check_code="VS-003", status="open").count() == 1


@pytest.mark.django_db
def test_without_redis_tasks_run_in_process(settings):
    if settings.REDIS_URL:
        app.conf.task_always_eager = True
    try:
        pk = heartbeat.delay().get()
    finally:
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
    assert JobRun.objects.get(pk=pk).worker == "in-process"


@needs_redis
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_reminder_jobs_through_a_real_worker_send_the_mails_once(site, nurse, settings):
    import datetime as dt

    import time_machine
    from django.core import mail

    from edc import protocol
    from edc.roles import Role
    from forms.quality import queries
    from forms.tasks import query_reminders, sae_reminders
    from tests.factories import UserFactory, randomized_subject
    from visits.tasks import visit_reminders

    settings.SPONSOR_CONTACT_EMAIL = "safety@sponsor.example"
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    monitor = UserFactory(username="monitor", role=Role.MONITOR, sites=[site])
    UserFactory(username="dm", role=Role.DATA_MANAGER, email="dm@trial.example")
    start = dt.datetime(2026, 3, 2, 4, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        subject = randomized_subject(site=site, user=nurse, randomized_at=start)
        with system_writes():  # test data written directly
            AdverseEvent.objects.create(subject=subject, term="Pulmonary embolism",
                                        is_serious=True, site_aware_at=start)
        queries.query_raise(target=subject.visits.get(code="D1"), field_name="actual_date",
                            text="Please enter the visit date", user=monitor)
    with (time_machine.travel(start + dt.timedelta(days=8), tick=False),
          start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING")):
        for _ in range(2):  # the second round finds everything sent
            for task in (visit_reminders, sae_reminders, query_reminders):
                task.delay().get(timeout=60)
    sent = sorted((m.to[0], m.subject.split(":")[0]) for m in mail.outbox)
    assert ("nurse@site.example", "Open queries to answer") in sent
    assert ("safety@sponsor.example", "Serious adverse event at SZ01") in sent
    assert ("dm@trial.example", "SAE report overdue") in sent
    assert any(who == "nurse@site.example" and what.startswith("Visits to do")
               for who, what in sent)
    assert len(sent) == len(set(sent)) == 5
    for message in mail.outbox:
        assert not any(str(arm.label) in message.body for arm in protocol.ARMS)
    runs = JobRun.objects.exclude(name="heartbeat")
    assert [(r.succeeded, r.worker) for r in runs
            if not r.succeeded or r.worker == "in-process"] == []
    assert runs.count() == 6


@needs_redis
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_an_export_runs_through_a_real_worker(site, nurse, settings, tmp_path):
    """The exports page queues the export; a worker builds the zip and records it on the run."""
    import zipfile

    from edc.models import ExportRun, ExportStatus
    from edc.roles import Role
    from exports.dictionary import Profile
    from exports.tasks import export_start
    from tests.factories import UserFactory, randomized_subject

    settings.EXPORT_ROOT = tmp_path
    randomized_subject(site=site, user=nurse)
    manager = UserFactory(username="dm", role=Role.DATA_MANAGER)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        run = export_start(user=manager, formats=["csv", "odm"], profile=Profile.BLINDED)
        # Outside a transaction the task is queued at once; wait for the worker to finish it.
        for _ in range(120):
            run.refresh_from_db()
            if not run.is_active:
                break
            import time

            time.sleep(0.5)
    assert run.status == ExportStatus.DONE, run.error
    with zipfile.ZipFile(tmp_path / run.file_name) as archive:
        names = archive.namelist()
    assert "manifest.json" in names and "csv/subjects.csv" in names
    assert ExportRun.objects.get(pk=run.pk).sha256
