"""One patient's way through the trial, as a queue of timed actions run in order, every write
through the services."""

import datetime as dt
import heapq
import itertools
import random
import sys
from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models.signals import post_save

from edc.models import User
from forms.entry import services as form_services
from forms.models import (
    CRF,
    Death,
    EarlyTermination,
    ProtocolDeviation,
)
from forms.quality.queries import (
    ACTIVE_STATUSES,
    Query,
    QueryStatus,
    query_answer,
    query_cancel,
    query_close,
    query_raise,
    query_requery,
)
from forms.synthetic.clock import Trial, _subject_block
from forms.synthetic.events import EventActions
from forms.synthetic.plan import MANUAL_QUERY_RATE, PASSWORD_ACTIONS, SubjectPlan
from forms.synthetic.screening import ScreeningActions
from forms.synthetic.visits import VisitActions
from visits import schedule
from visits.models import (
    Subject,
    Visit,
)


class SubjectRun(ScreeningActions, VisitActions, EventActions):
    """One patient's way through the trial, as a queue of timed actions run in order."""

    def __init__(self, trial: Trial, plan: SubjectPlan):
        self.trial = trial
        self.plan = plan
        self.rng = random.Random(f"{trial.seed}:{plan.index}")  # noqa: S311
        self.site = trial.sites[plan.site_code]
        self.zone = self.site.zone
        self.staff = trial.staff[plan.site_code]
        self._queue: list[tuple[dt.datetime, int, Callable, tuple]] = []
        self._order = itertools.count()
        self.now = plan.screened_at - dt.timedelta(minutes=1)
        self.subject: Subject | None = None
        self.visits: dict[str, Visit] = {}
        # The subject's visits in the order the page reads them (``_share_visits``).
        self.visit_list: list[Visit] = []
        self.last_query_pk = 0
        # Set when a query of this subject is created (post_save): only then does
        # _watch_queries read the new queries, instead of once after every action.
        self.queries_raised = False
        # (model, pk, item) → values that correct a planted error once a query asks.
        self.corrections: dict[tuple[type[CRF], int, str], dict[str, Any]] = {}
        # Work the site does when a query asks (a deviation to record), by the same key.
        self.follow_ups: dict[tuple[type[CRF], int, str], Callable[[], None]] = {}
        self.fever_dates: set[dt.date] = set()

    # -- the queue --

    def at(self, moment: dt.datetime, action: Callable, *args) -> None:
        """Queue ``action`` at ``moment``, or just after the present: time only runs forward."""
        moment = max(moment, self.now + dt.timedelta(minutes=1))
        heapq.heappush(self._queue, (moment, next(self._order), action, args))

    def run(self) -> None:
        """Run the subject's actions in one transaction; an action that asks for a password
        (a signature) runs between two, as in the signing page (``password_confirms`` keeps
        its attempt outside any transaction that may roll back)."""
        self.at(self.plan.screened_at, self.screen)
        post_save.connect(self._query_saved, sender=Query, weak=False,
                          dispatch_uid=self._QUERY_WATCH)
        try:
            self._run_queue()
        finally:
            post_save.disconnect(sender=Query, dispatch_uid=self._QUERY_WATCH)

    _QUERY_WATCH = "forms.synthetic.SubjectRun.query_watch"

    def _query_saved(self, sender, instance: Query, created: bool, **kwargs) -> None:
        if created and self.subject is not None and instance.subject_id == self.subject.pk:
            self.queries_raised = True

    def _run_queue(self) -> None:
        block = _subject_block()
        try:
            while self._queue:
                moment, _n, action, args = heapq.heappop(self._queue)
                if moment > self.trial.snapshot:
                    break
                self.now = moment
                self.trial.clock.move_to(moment)
                if action.__name__ in PASSWORD_ACTIONS:
                    block.__exit__(None, None, None)
                    block = None
                try:
                    action(*args)
                except Exception as error:
                    error.add_note(f"Synthetic subject {self.plan.index} at {self.site.code}: "
                                   f"{action.__name__} at {moment.isoformat()}")
                    raise
                if block is None:
                    block = _subject_block()
                    # The subject as this new transaction reads it (see save()).
                    self.subject = Subject.objects.select_related("site").get(
                        pk=self.subject.pk)
                self._watch_queries()
        except BaseException:
            if block is not None:
                block.__exit__(*sys.exc_info())
            raise
        block.__exit__(None, None, None)

    def local(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.zone).astimezone(
            dt.UTC)

    def today(self) -> dt.date:
        return schedule.local_date(self.now, self.zone)

    def later(self, start: dt.datetime, low_days: int, high_days: int) -> dt.datetime:
        """A moment in working hours some days after ``start`` (what falls after the
        snapshot does not happen)."""
        day = schedule.local_date(start, self.zone) + dt.timedelta(
            days=self.rng.randint(low_days, high_days))
        moment = self.local(day, self.rng.randint(9, 16), self.rng.randrange(60))
        if moment <= start:
            moment = start + dt.timedelta(minutes=self.rng.randint(20, 90))
        return moment

    def study_date(self, day: int) -> dt.date:
        return schedule.date_of_study_day(self.day1, day)

    # -- writes, all through the services --

    def _visits_read(self) -> None:
        """The subject's visits, read when the schedule made them (consent, randomization)."""
        self.visit_list = list(self.subject.visits.all())
        self.visits = {v.code: v for v in self.visit_list}

    def _visit_saved(self, visit: Visit) -> None:
        """A visit changed through the services takes the place of the one read before."""
        self.visit_list = [visit if v.pk == visit.pk else v for v in self.visit_list]
        self.visits[visit.code] = visit
        getattr(self.subject, "_prefetched_objects_cache", {}).pop("visits", None)

    def _share_visits(self) -> None:
        """The subject as the data-entry page reads it: with its visits (prefetched), which
        the edit checks then use instead of reading them again; they are current, since
        every change of a visit goes through ``_visit_saved``."""
        cache = getattr(self.subject, "_prefetched_objects_cache", None)
        if cache is None:
            cache = self.subject._prefetched_objects_cache = {}
        if "visits" not in cache and self.visit_list:
            visits = self.subject.visits.all()
            visits._result_cache = list(self.visit_list)
            visits._prefetch_done = True
            cache["visits"] = visits

    def save(self, model: type[CRF], values: dict[str, Any], *, visit: str | None = None,
             pk: int | None = None, user: User | None = None, reason: str = "",
             missing: dict[str, str] | None = None, slot: str = "") -> CRF:
        # As the data-entry page does: the subject (with its site and visits) was read in
        # this transaction, and a saved form is read locked; crf_save(locked=True) then
        # reads neither again. Every service that changes the subject returns it:
        # self.subject is the current row.
        self._share_visits()
        if pk is None:
            # Each visit form is entered once, so it opens empty (crf_instance would look).
            crf = model(subject=self.subject, visit=self.visits.get(visit) if visit else None,
                        **({model.slot_item: slot} if model.slot_item else {}))
        else:
            crf = form_services.crf_instance(model=model, subject=self.subject, pk=pk,
                                             for_update=True)
        saved = form_services.crf_save(
            crf=crf, values=values, user=user or self.staff.nurse,
            expected_version=crf.version, complete=True, missing_items=missing, reason=reason,
            locked=True)
        if (pk is None and model not in (ProtocolDeviation, EarlyTermination, Death)
                and self.rng.random() < MANUAL_QUERY_RATE):
            self.at(self.later(self.now, 3, 30), self.manual_query, model, saved.pk)
        return saved

    def _watch_queries(self) -> None:
        """Plan the site's and the monitor's work on every query the last action opened
        (read only when the action created one: most actions raise none)."""
        if self.subject is None or not self.queries_raised:
            return
        self.queries_raised = False
        for query in (Query.objects.filter(subject=self.subject, pk__gt=self.last_query_pk)
                      .select_related("content_type").order_by("pk")):
            self.last_query_pk = query.pk
            if not query.check_code or query.status != QueryStatus.OPEN:
                continue  # a manual query has its path from the start
            model = query.content_type.model_class()
            key = (model, query.object_id, query.field_name)
            if key in self.corrections:
                self.at(self.later(self.now, 1, 5), self.correct, key,
                        self.corrections.pop(key))
            elif key in self.follow_ups:
                self.at(self.later(self.now, 1, 4), self.follow_ups.pop(key))
            elif query.check_code in ("VS-008", "NIHSS-002", "AE-003", "DTH-001"):
                # The adverse event or death report the check asks for is on its way; if it
                # does not come, the query takes the usual path.
                self.at(self.later(self.now, 3, 6), self.query_path, query.pk, "system")
            else:
                self.query_path(query.pk, "system")

    def correct(self, key: tuple[type[CRF], int, str], values: dict[str, Any]) -> None:
        model, pk, _item = key
        self.save(model, values, pk=pk, reason="Transcription error corrected (query)")

    # -- queries: the site answers, the monitor closes or asks again --

    def query_path(self, query_pk: int, kind: str) -> None:
        query = Query.objects.get(pk=query_pk)
        if query.status not in ACTIVE_STATUSES:
            return
        path = self.trial.next_path(self.site.code, kind)
        if path == "open":
            return
        if path == "cancel":
            self.at(self.later(self.now, 0, 2), self.query_cancel, query_pk)
            return
        answered = self.later(self.now, 1, 6)
        self.at(answered, self.query_answer, query_pk, self.answer_text(query))
        if path == "answer":
            return
        reviewed = self.later(answered, 1, 10)
        if path == "close":
            self.at(reviewed, self.query_close, query_pk)
            return
        self.at(reviewed, self.query_requery, query_pk)
        if path == "requery_close":
            again = self.later(reviewed, 1, 4)
            self.at(again, self.query_answer, query_pk,
                    "Checked again in the hospital record (nursing chart): the value stands.")
            self.at(self.later(again, 1, 7), self.query_close, query_pk)

    def answer_text(self, query: Query) -> str:
        texts = {
            "VIS-001": "The visit took place outside its window because of the subject's "
                       "availability; a protocol deviation is recorded.",
            "LAB-001": "Confirmed with the laboratory report; the investigator judged it not "
                       "clinically significant.",
            "LAB-002": "Confirmed with the laboratory report; the investigator judged it not "
                       "clinically significant.",
            "LAB-003": "The sample was drawn the day before the visit; date confirmed.",
            "INF-001": "The infusion started after midnight; time confirmed.",
            "NIHSS-002": "Worsening reviewed by the investigator; see the adverse event log.",
        }
        return texts.get(query.check_code, "Confirmed against the source document.")

    def _active(self, query_pk: int, *statuses: str) -> Query | None:
        query = Query.objects.get(pk=query_pk)
        return query if query.status in (statuses or ACTIVE_STATUSES) else None

    def query_answer(self, query_pk: int, text: str) -> None:
        query = self._active(query_pk, QueryStatus.OPEN)
        if query is not None:
            user = self.staff.investigator if query.crf_code == "adverse_event" else \
                self.staff.nurse
            query_answer(query=query, text=text, user=user)
            if query.check_code == "VIS-001":
                self.deviation("visit_out_of_window", query.visit,
                               f"{query.visit.code} visit on {query.visit.actual_date} "
                               f"outside its window ({query.visit.window_start} to "
                               f"{query.visit.window_end}).")

    def query_close(self, query_pk: int) -> None:
        query = self._active(query_pk)
        if query is not None:
            user = query.raised_by or (self.trial.data_manager if self.rng.random() < 0.2
                                       else self.staff.monitor)
            query_close(query=query, user=user, text="Answer accepted.")

    def query_requery(self, query_pk: int) -> None:
        query = self._active(query_pk, QueryStatus.ANSWERED)
        if query is not None:
            query_requery(query=query, user=query.raised_by or self.staff.monitor,
                          text="Please give the source document and page you checked.")

    def query_cancel(self, query_pk: int) -> None:
        query = self._active(query_pk)
        if query is not None:
            query_cancel(query=query, user=query.raised_by,
                         text="Raised in error: the value was already verified.")

    def manual_query(self, model: type[CRF], pk: int) -> None:
        record = model.objects.get(pk=pk)
        items = [name for name in model.entry_items()
                 if getattr(record, name) not in (None, "", {}, [], False)
                 and not isinstance(model._meta.get_field(name), models.ForeignKey)]
        if not items:
            return
        item = self.rng.choice(items)
        user = self.trial.data_manager if self.rng.random() < 0.15 else self.staff.monitor
        label = model._meta.get_field(item).verbose_name
        query = query_raise(target=record, field_name=item, user=user,
                            text=f"Please confirm the {label} against the source document.")
        self.query_path(query.pk, "manual")


    # -- visits, as the data-entry page reads them --

    def _visit_of_subject(self, code: str) -> Visit:
        """The visit with the current subject (read with its visits, as the page does)."""
        self._share_visits()
        visit = self.visits[code]
        visit.subject = self.subject
        return visit

    def record_visit(self, code: str) -> None:
        self._visit_saved(form_services.visit_record(
            visit=self._visit_of_subject(code), actual_date=self.today(),
            user=self.staff.nurse))
