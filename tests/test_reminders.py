"""Reminders (issue 7): visit windows across time zones, the 24-hour SAE clock, query ageing,
exactly-once delivery (also under two racing runs on PostgreSQL), SMTP and broker failures,
in-app notifications and ``manage.py run_job``."""

import datetime as dt
import smtplib
import threading
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from kombu.exceptions import OperationalError

from edc import protocol
from edc.celery import app
from edc.history import system_writes
from edc.models import JobRun, Notification, NotificationLog
from edc.notifications import Outcome, job_run
from edc.roles import Role
from forms import reminders
from forms.entry.services import crf_save
from forms.models import AdverseEvent
from forms.quality import queries as q
from forms.tasks import sae_notify
from tests.factories import SiteFactory, UserFactory, randomized_subject
from visits import services as visit_services
from visits.reminders import visit_reminders_send, visits_to_remind
from visits.selectors import subject_rows
from visits.tasks import visit_reminders

UTC = dt.UTC
DAY1 = dt.date(2026, 3, 2)  # D30 window: 2026-03-28 .. 2026-04-03
ARM_LABELS = [str(arm.label) for arm in protocol.ARMS]


@pytest.fixture(autouse=True)
def _eager_tasks(settings):
    """Tasks run in-process here, also when REDIS_URL is set (tests/test_celery_worker.py runs
    them through a real worker)."""
    settings.SPONSOR_CONTACT_EMAIL = "safety@sponsor.example"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.fixture
def west(db):
    return SiteFactory(code="LA03", name="Los Angeles", time_zone="America/Los_Angeles")


@pytest.fixture
def west_nurse(west):
    return UserFactory(username="west_nurse", role=Role.SITE_STAFF, sites=[west])


@pytest.fixture
def data_manager(db):
    return UserFactory(username="dm", role=Role.DATA_MANAGER, email="dm@trial.example")


@pytest.fixture
def monitor(site):
    return UserFactory(username="monitor", role=Role.MONITOR, sites=[site],
                       email="monitor@trial.example")


def local(site, day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(site.time_zone))


def subject_at(site, user, day1: dt.date = DAY1):
    """A subject randomized at local noon on ``day1``, created with the clock at that time."""
    randomized_at = local(site, day1)
    with time_machine.travel(randomized_at + dt.timedelta(hours=1), tick=False):
        return randomized_subject(site=site, user=user, randomized_at=randomized_at)


def label_of(visit, now) -> str | None:
    found = [r for r in visits_to_remind(now=now) if r.visit.pk == visit.pk]
    return found[0].label if found else None


def no_arm_in_outbox() -> None:
    for message in mail.outbox:
        text = message.subject + message.body
        assert not any(label in text for label in ARM_LABELS), text
        assert "arm" not in text.lower().split()


# --- Visit reminders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2026, 3, 27), None),  # the day before the window opens: upcoming
        (dt.date(2026, 3, 28), "due"),  # window start
        (dt.date(2026, 3, 31), "due"),
        (dt.date(2026, 4, 1), "window closing"),  # two days before the window ends
        (dt.date(2026, 4, 2), "window closing"),
        (dt.date(2026, 4, 3), "last day"),  # window end
        (dt.date(2026, 4, 4), "overdue"),  # the day after
    ],
)
def test_each_window_edge_on_the_site_local_date(site, nurse, day, expected):
    subject = subject_at(site, nurse)
    d30 = subject.visits.get(code="D30")
    assert (d30.window_start, d30.window_end) == (dt.date(2026, 3, 28), dt.date(2026, 4, 3))
    # Just after local midnight and just before the next: the site's date decides.
    assert label_of(d30, local(site, day, 0) + dt.timedelta(minutes=1)) == expected
    assert label_of(d30, local(site, day, 23) + dt.timedelta(minutes=59)) == expected


def test_the_same_moment_is_overdue_in_china_and_the_last_day_in_california(
    site, nurse, west, west_nurse
):
    east_d30 = subject_at(site, nurse).visits.get(code="D30")
    west_d30 = subject_at(west, west_nurse).visits.get(code="D30")
    assert east_d30.window_end == west_d30.window_end == dt.date(2026, 4, 3)
    moment = dt.datetime(2026, 4, 3, 20, 0, tzinfo=UTC)  # Shenzhen 4 April 04:00, LA 3 April
    assert label_of(east_d30, moment) == "overdue"
    assert label_of(west_d30, moment) == "last day"


def test_missed_and_done_visits_and_subjects_off_study_remind_nobody(site, nurse):
    subject = subject_at(site, nurse)
    now = local(site, dt.date(2026, 4, 10))
    with time_machine.travel(now, tick=False):
        missed = visit_services.visit_mark_missed(
            visit=subject.visits.get(code="D30"), reason="Subject unreachable", user=nurse)
        done = visit_services.visit_record_date(
            visit=subject.visits.get(code="D15"), actual_date=dt.date(2026, 3, 16), user=nurse)
    assert label_of(missed, now) is None
    assert label_of(done, now) is None
    assert label_of(subject.visits.get(code="D8"), now) == "overdue"


def test_one_digest_per_user_per_local_day_with_only_their_sites(
    site, nurse, west, west_nurse, data_manager
):
    colleague = UserFactory(username="nurse2", role=Role.SITE_STAFF, sites=[site],
                            email="nurse2@site.example")
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    first, second = subject_at(site, nurse), subject_at(site, nurse)
    subject_at(west, west_nurse)  # west_nurse has no e-mail address: in-app only
    now = local(site, dt.date(2026, 4, 3), 7)

    outcome = visit_reminders_send(now=now)

    assert sorted(m.to[0] for m in mail.outbox) == ["nurse2@site.example", "nurse@site.example"]
    body = mail.outbox[0].body
    assert str(first) in body and str(second) in body
    assert "LA03" not in body
    assert outcome.sent == 3  # two mails and west_nurse's in-app notification
    assert Notification.objects.filter(user=west_nurse).count() == 1
    assert Notification.objects.filter(user=data_manager).count() == 0
    no_arm_in_outbox()

    # Later the same local day: nothing again. The next local day: a new digest.
    assert visit_reminders_send(now=now + dt.timedelta(hours=6)).sent == 0
    assert len(mail.outbox) == 2
    visit_reminders_send(now=now + dt.timedelta(days=1))
    assert len(mail.outbox) == 4
    assert Notification.objects.filter(user=colleague).count() == 2


def test_reminders_read_visits_in_a_fixed_number_of_queries(site, nurse):
    now = local(site, dt.date(2026, 4, 3), 7)
    subject_at(site, nurse)
    with CaptureQueriesContext(connection) as one:
        visits_to_remind(now=now)
    for _ in range(3):
        subject_at(site, nurse)
    with CaptureQueriesContext(connection) as four:
        assert len({r.visit.subject_id for r in visits_to_remind(now=now)}) == 4
    assert len(four) == len(one) == 2


def test_reminders_and_the_home_page_agree(site, nurse):
    subject = subject_at(site, nurse)
    now = local(site, dt.date(2026, 4, 4), 9)
    overdue = [r for r in visits_to_remind(now=now) if r.status == "overdue"]
    row = subject_rows([subject], now=now)[0]
    assert row.overdue_visits == len(overdue)


# --- Serious adverse events --------------------------------------------------------------------


def save_ae(subject, user, *, aware: dt.datetime, complete: bool = False, ae=None, **values):
    values = {"term": "Pulmonary embolism", "start_date": aware.date(), "ctcae_grade": 3,
              "is_serious": True, "serious_hospitalization": True, "site_aware_at": aware,
              "relationship_to_product": "possibly", "relationship_to_procedure": "unlikely",
              "action_taken": "not_applicable", "outcome": "recovering",
              "special_interest": "thromboembolism"} | values
    ae = ae or AdverseEvent(subject=subject)
    return crf_save(crf=ae, values=values, user=user, expected_version=ae.version,
                    complete=complete, reason="Report completed" if ae.pk else "")


@pytest.fixture
def sae_subject(site, nurse):
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    return subject_at(site, nurse)


def test_a_serious_event_tells_the_sponsor_and_data_manager_at_once(
    sae_subject, nurse, data_manager, django_capture_on_commit_callbacks
):
    aware = local(sae_subject.site, dt.date(2026, 3, 5), 9)
    with time_machine.travel(aware + dt.timedelta(hours=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            ae = save_ae(sae_subject, nurse, aware=aware)
        assert len(callbacks) == 1
        assert sorted(m.to[0] for m in mail.outbox) == ["dm@trial.example",
                                                         "safety@sponsor.example"]
        assert "Pulmonary embolism" in mail.outbox[0].body
        assert "2026-03-06 09:00" in mail.outbox[0].body  # the deadline, in the site's time
        no_arm_in_outbox()
        with django_capture_on_commit_callbacks(execute=True):
            save_ae(sae_subject, nurse, aware=aware, ae=ae, term="Pulmonary embolism, left")
    assert len(mail.outbox) == 2
    assert JobRun.objects.filter(name="sae-notify", succeeded=True).count() == 2


def test_sae_reminders_before_the_deadline_and_escalation_after(
    sae_subject, nurse, data_manager, django_capture_on_commit_callbacks
):
    aware = dt.datetime(2026, 3, 5, 1, 0, tzinfo=UTC)
    with (time_machine.travel(aware + dt.timedelta(hours=1), tick=False),
          django_capture_on_commit_callbacks(execute=True)):
        ae = save_ae(sae_subject, nurse, aware=aware)
    mail.outbox.clear()

    def run(hours: float) -> list[tuple[str, str]]:
        mail.outbox.clear()
        reminders.sae_reminders_send(now=aware + dt.timedelta(hours=hours))
        return sorted((m.to[0], m.subject.split(":")[0]) for m in mail.outbox)

    assert run(11.9) == []  # 12.1 hours left
    assert run(12.1) == [("nurse@site.example", "SAE report due in less than 12 hours")]
    assert run(13) == []
    assert run(20.5) == [("nurse@site.example", "SAE report due in less than 4 hours")]
    assert run(23.9) == []
    assert run(24.1) == [("dm@trial.example", "SAE report overdue")]
    assert run(47) == []
    assert run(48.5) == [("dm@trial.example", "SAE report overdue")]
    no_arm_in_outbox()
    with time_machine.travel(aware + dt.timedelta(hours=49), tick=False):
        save_ae(sae_subject, nurse, aware=aware, ae=ae, complete=True)
    assert run(80) == []


def test_with_the_broker_down_data_entry_works_and_the_job_catches_up(
    sae_subject, nurse, data_manager, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(sae_notify, "delay", broker_down)
    aware = local(sae_subject.site, dt.date(2026, 3, 5), 9)
    with time_machine.travel(aware + dt.timedelta(hours=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            ae = save_ae(sae_subject, nurse, aware=aware)
        assert AdverseEvent.objects.filter(pk=ae.pk, is_serious=True).exists()
        assert "the broker is unavailable" in caplog.text
        assert mail.outbox == []
        reminders.sae_reminders_send(now=aware + dt.timedelta(hours=2))
    assert sorted(m.to[0] for m in mail.outbox) == ["dm@trial.example", "safety@sponsor.example"]


def test_with_the_broker_down_saving_a_serious_event_on_the_page_is_not_an_error(
    client, sae_subject, nurse, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(sae_notify, "delay", broker_down)
    client.force_login(nurse)
    url = reverse("forms:log_new", args=[sae_subject.pk, "adverse_event"])
    aware = local(sae_subject.site, dt.date(2026, 3, 5), 9)
    with (time_machine.travel(aware + dt.timedelta(hours=1), tick=False),
          django_capture_on_commit_callbacks(execute=True)):
        response = client.post(url, {
            "term": "Stroke recurrence", "start_date": "2026-03-05", "is_serious": "True",
            "site_aware_at": "2026-03-05 09:00", "version": "0", "expected_version": "0",
        })
    assert response.status_code == 302
    assert AdverseEvent.objects.filter(subject=sae_subject, is_serious=True).exists()
    assert "the broker is unavailable" in caplog.text


# --- Query ageing ------------------------------------------------------------------------------


def test_open_queries_remind_the_site_and_answered_ones_the_raiser(site, nurse, monitor):
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    subject = subject_at(site, nurse)
    raised = dt.datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    with time_machine.travel(raised, tick=False):
        visit = subject.visits.get(code="D2")
        visit = visit_services.visit_record_date(visit=visit, actual_date=dt.date(2026, 3, 3),
                                                 user=nurse)
        query = q.query_raise(target=visit, field_name="actual_date", text="Source says 4 March",
                              user=monitor)

    def run(days: float) -> list[str]:
        mail.outbox.clear()
        reminders.query_reminders_send(now=raised + dt.timedelta(days=days))
        return [m.to[0] for m in mail.outbox]

    assert run(6.9) == []
    assert run(7.1) == ["nurse@site.example"]
    assert run(8) == []
    assert run(14.1) == ["nurse@site.example"]

    answered = raised + dt.timedelta(days=15)
    with time_machine.travel(answered, tick=False):
        q.query_answer(query=query, text="Corrected", user=nurse)
    assert run(15 + 4.9) == []
    assert run(15 + 5.1) == ["monitor@trial.example"]
    assert run(15 + 6) == []
    assert "Answered queries to review" in mail.outbox[0].subject if mail.outbox else True
    no_arm_in_outbox()


# --- Exactly once, failures, job log ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_each_reminder_once(site, nurse):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are tested on PostgreSQL (CI); SQLite locks the file")
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    for _ in range(3):
        subject_at(site, nurse)
    now = local(site, dt.date(2026, 4, 4), 7)
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait(timeout=10)
            outcomes.append(visit_reminders_send(now=now))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(mail.outbox) == 1
    assert sorted(o.sent for o in outcomes) == [0, 1]
    assert NotificationLog.objects.count() == 1


def test_an_smtp_failure_fails_the_run_for_a_retry_and_then_sends_once(site, nurse,
                                                                      monkeypatch):
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    subject_at(site, nurse)
    calls = {"n": 0}
    real_send = mail.send_mail

    def flaky_send(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send(*args, **kwargs)

    monkeypatch.setattr("edc.notifications.send_mail", flaky_send)
    now = local(site, dt.date(2026, 4, 4), 7)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        job_run("visit-reminders", visit_reminders_send, worker="test", now=now)
    assert mail.outbox == [] and NotificationLog.objects.count() == 0  # the claim was released
    assert Notification.objects.count() == 0
    job_run("visit-reminders", visit_reminders_send, worker="test", now=now)
    job_run("visit-reminders", visit_reminders_send, worker="test", now=now)
    assert len(mail.outbox) == 1 and NotificationLog.objects.count() == 1
    runs = JobRun.objects.filter(name="visit-reminders").order_by("pk")
    assert [r.succeeded for r in runs] == [False, True, True]
    # The Celery tasks retry such failures with exponential backoff.
    for task in (visit_reminders, sae_notify):
        assert smtplib.SMTPException in task.autoretry_for and task.retry_backoff
        assert task.max_retries == 5


def test_a_job_that_sends_nothing_still_records_its_run(db):
    now = dt.datetime(2026, 4, 4, tzinfo=UTC)
    outcome = job_run("query-reminders", reminders.query_reminders_send, worker="test", now=now)
    assert outcome.sent == 0
    run = JobRun.objects.get(name="query-reminders")
    assert run.succeeded and run.finished_at and run.detail.startswith("sent 0")


def test_run_job_dry_run_prints_and_sends_nothing(site, nurse):
    nurse.email = "nurse@site.example"
    with system_writes():  # test data written directly
        nurse.save()
    subject = subject_at(site, nurse)
    with time_machine.travel(local(site, dt.date(2026, 4, 4), 7), tick=False):
        out = StringIO()
        call_command("run_job", "visit-reminders", "--dry-run", stdout=out)
        assert "would send to user:" in out.getvalue()
        assert str(subject) in out.getvalue()
        assert mail.outbox == [] and NotificationLog.objects.count() == 0
        call_command("run_job", "visit-reminders", stdout=StringIO())
        assert len(mail.outbox) == 1
        out = StringIO()
        call_command("run_job", "visit-reminders", "--dry-run", stdout=out)
    assert "already sent 1" in out.getvalue()
    assert JobRun.objects.filter(name="visit-reminders").count() == 3


# --- In the web application --------------------------------------------------------------------


def test_users_see_their_own_notifications_and_mark_them_read(client, site, nurse, west,
                                                              west_nurse):
    subject_at(site, nurse)
    subject_at(west, west_nurse)
    visit_reminders_send(now=dt.datetime(2026, 4, 4, 20, tzinfo=UTC))
    mine = Notification.objects.get(user=nurse)
    theirs = Notification.objects.get(user=west_nurse)

    client.force_login(nurse)
    page = client.get(reverse("notifications")).content.decode()
    assert mine.title in page and "SZ01" in page and "LA03" not in page
    assert reverse("notifications") in client.get(reverse("home")).content.decode()
    assert "Mark all read" in page

    client.post(reverse("notifications"), {"pk": theirs.pk})
    theirs.refresh_from_db()
    assert theirs.read_at is None
    client.post(reverse("notifications"), {"pk": mine.pk})
    mine.refresh_from_db()
    assert mine.read_at is not None
    assert "Mark read" not in client.get(reverse("notifications")).content.decode()


def test_links_in_mails_are_absolute(settings):
    from edc.notifications import message_body

    settings.SITE_URL = "https://edc.example.org/"
    body = message_body(intro="Hello", lines=["one"], link="/casebook/queries/")
    assert "Open: https://edc.example.org/casebook/queries/" in body
