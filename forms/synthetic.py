"""A synthetic trial for benchmarks and demos (``manage.py seed_trial``).

Complete casebooks for N subjects over several sites, entered the way site staff, monitors and
data managers enter them: every write goes through the service layer (``subject_screen``,
``crf_save``, ``subject_randomize``, ``query_answer``, ...), so the history rows, audit events,
edit checks and system queries are the real ones; no clinical record is written around the
services. Sites, accounts and the sites' laboratory ranges are configuration, saved (with their
history) the way ``seed_demo`` and the administrators save them.

What the trial holds: a screening log with declined consents and screen failures (for every
reason the data show), randomized subjects followed visit by visit up to the as-of date, with
plausible values inside the protocol's ranges and some outside the soft ranges (so the edit
checks raise queries), missed and out-of-window visits with their protocol deviations, adverse
events (some serious, a few fatal, with the death report), concomitant medications, early
terminations, completed subjects, corrections of completed forms with their reasons, and
queries in every state (open, answered, re-queried, closed, cancelled).

Reproducible: every value comes from ``random.Random`` seeded from the seed (one generator
for the trial plan, one per subject), and the clock is set to the moment of each action with
time-machine (a dev dependency), so the same subjects, seed and as-of date give the same trial
whatever day it is generated (:func:`trial_digest` fingerprints it). Each subject is entered in
one transaction.
"""

import dataclasses
import datetime as dt
import hashlib
import heapq
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.hashers import make_password
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models.signals import post_save
from django.test.utils import override_settings

from edc import protocol
from edc.audit import chain_batch
from edc.models import Site, User
from edc.roles import Role
from forms import derivations
from forms.entry import services as form_services
from forms.models import (
    CRF,
    CRF_MODELS,
    MRS,
    NIHSS,
    AdverseEvent,
    Barthel,
    ConcomitantMedication,
    CRFStatus,
    Death,
    Demographics,
    EarlyTermination,
    Infusion,
    LabPanel,
    LabReferenceRange,
    MedicalHistory,
    ProtocolDeviation,
    StrokeEvent,
    VitalSigns,
)
from forms.models.base import SDVStatus
from forms.models.nihss import FIELD_TO_ITEM
from forms.models.signoff import Lock, LockScope, Signature
from forms.quality.queries import (
    ACTIVE_STATUSES,
    MessageKind,
    Query,
    QueryMessage,
    QueryStatus,
    query_answer,
    query_cancel,
    query_close,
    query_raise,
    query_requery,
)
from forms.quality.sdv import crf_verify
from forms.review.locks import lock_create
from forms.review.signatures import casebook_sign
from visits import schedule
from visits import services as visit_services
from visits.models import (
    ConsentSigner,
    KitAssignment,
    RandomizationSlot,
    Subject,
    SubjectIdentity,
    SubjectStatus,
    Visit,
)
from visits.randomization import (
    KIT_NUMBER_MIN,
    RANDOMIZATION_NUMBER_DIGITS,
    RANDOMIZATION_NUMBER_PREFIX,
    ListRow,
    generate_list,
    stratum_for_nihss,
)

# The scheduled visits by target study day, from the protocol (no visit code is typed here).
_VISIT_BY_DAY = {visit.day: visit.code for visit in protocol.VISITS}
DAY1, DAY2, DAY8, DAY15, DAY30, DAY90, DAY180 = (
    _VISIT_BY_DAY[day] for day in (1, 2, 8, 15, 30, 90, 180))

SITE_TIME_ZONE = "Asia/Shanghai"
SITE_CITIES = ("Shenzhen", "Guangzhou", "Wuhan", "Shanghai", "Chengdu", "Hangzhou", "Nanjing",
               "Xi'an", "Changsha", "Tianjin", "Chongqing", "Jinan")
# Every synthetic account shares one password, which meets the password policy.
PASSWORD = "Stroke-Synthetic-2026!"  # noqa: S105 - demo accounts, printed by the command
DATA_MANAGER = "datamanager.trial"
STATISTICIAN = "statistician.trial"
# Subjects are screened over this many days before the as-of date.
ENROLMENT_DAYS = 365
# The snapshot is taken at this local time on the as-of date: nothing later is entered.
SNAPSHOT_TIME = dt.time(21, 0)
CONSENT_FORM_V2_FROM = dt.date(2026, 1, 15)

# Fates of screened patients and randomized subjects.
DECLINED, SCREEN_FAILED, RANDOMIZED = "declined", "screen_failed", "randomized"
COMPLETES, DIES, WITHDRAWS, LOST = "completes", "dies", "withdraws", "lost"
# Why a screen failure fails, with the eligibility criterion it misses.
SCREEN_FAILURES = (
    ("nihss_low", "IN06"), ("nihss_high", "IN06"), ("age", "IN01"), ("liver", "EX06"),
    ("kidney", "EX07"), ("thrombolysis", "EX01"), ("prestroke_mrs", "IN05"),
    ("hemorrhage", "EX03"), ("posterior", "IN04"), ("infection", "EX09"),
)
SCREEN_FAILURE_CRITERION = dict(SCREEN_FAILURES)

# Rates (per subject, visit or form).
DECLINE_RATE = 0.03
SCREEN_FAIL_RATE = 0.13
DEATH_RATE, WITHDRAW_RATE, LOST_RATE = 0.03, 0.03, 0.02
MISSED_VISIT_RATE = 0.04
OUT_OF_WINDOW_RATE = 0.03
VITAL_OUT_OF_RANGE_RATE = 0.08
TYPO_SHARE = 0.5  # of out-of-range values: a transcription error, corrected after the query
LAB_ELEVATED_RATE = 0.02
SAMPLE_DATE_TYPO_RATE = 0.015
KIT_TYPO_RATE = 0.015
INFUSION_NOT_GIVEN_RATE = 0.02
PKPD_NOT_COLLECTED_RATE = 0.03
WORSENING_RATE = 0.04
STEROID_SHARE = 0.3  # of allergic reactions: treated with a steroid above the limit
SAE_CRITERIA_FORGOTTEN_RATE = 0.25
CORRECTION_RATE = 0.04
MANUAL_QUERY_RATE = 0.02
# Sign-off, taken in turn at each site: the investigator signs the casebook of every
# SIGN_EVERY-th subject who completes (the first included; each signature asks for the
# password), and the data manager locks every LOCK_EVERY-th signed casebook.
SIGN_EVERY = 4
LOCK_EVERY = 2
# Actions that ask for a password, so run outside the subject's transaction.
PASSWORD_ACTIONS = frozenset({"sign_casebook"})

# What happens to a query nobody fixes by changing the data, taken in turn so that a small trial
# still has every state: left open, answered and waiting, closed, re-queried (open again), and
# re-queried, answered again and closed; a manual query may also be cancelled by its raiser.
SYSTEM_QUERY_PATHS = ("close", "answer", "requery", "close", "open", "requery_close")
MANUAL_QUERY_PATHS = ("close", "answer", "requery", "cancel", "open", "requery_close")

REASONS_FOR_CHANGE = (
    "Transcription error corrected against the source document",
    "Value re-checked in the hospital record",
    "Corrected after source data review",
)


def _subject_block() -> ExitStack:
    """A transaction of a subject's run whose history rows are linked in the audit chain
    together when it ends (``edc.audit.chain_batch``: per table one locking read of the
    chain's head and one INSERT of the links, not two statements per row). Closed in reverse:
    the links are written before the transaction commits."""
    block = ExitStack()
    block.enter_context(transaction.atomic())
    block.enter_context(chain_batch())
    return block


# --- The plan: who is screened when, and what becomes of them --------------------------------


@dataclasses.dataclass(frozen=True)
class SubjectPlan:
    index: int
    site_code: str
    screened_at: dt.datetime
    fate: str
    # The screen failure's reason (SCREEN_FAILURES), "" otherwise.
    failure: str
    # Screening NIHSS total.
    nihss: int
    # How a randomized subject's participation ends, and on which study day (0: completes).
    ending: str
    ending_day: int


def trial_plan(*, subjects: int, seed: int, as_of: dt.date, site_codes: list[str]
               ) -> list[SubjectPlan]:
    """Who is screened at which site and when, and what becomes of them: pure, from the seed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible on purpose
    zone = ZoneInfo(SITE_TIME_ZONE)
    weights = [rng.uniform(0.6, 1.4) for _code in site_codes]
    first_day = as_of - dt.timedelta(days=ENROLMENT_DAYS)
    days = sorted(rng.randrange(ENROLMENT_DAYS + 1) for _n in range(subjects))
    plans = []
    for index, offset in enumerate(days):
        local = dt.datetime.combine(first_day + dt.timedelta(days=offset), dt.time(7, 30),
                                    tzinfo=zone) + dt.timedelta(minutes=rng.randrange(240))
        site_code = rng.choices(site_codes, weights)[0]
        draw = rng.random()
        fate = (DECLINED if draw < DECLINE_RATE
                else SCREEN_FAILED if draw < DECLINE_RATE + SCREEN_FAIL_RATE else RANDOMIZED)
        failure = rng.choice(SCREEN_FAILURES)[0] if fate == SCREEN_FAILED else ""
        if failure == "nihss_low":
            nihss = rng.randint(4, 7)
        elif failure == "nihss_high":
            nihss = rng.randint(21, 25)
        else:
            nihss = min(20, max(8, round(rng.triangular(8, 20, 11))))
        ending, ending_day = COMPLETES, 0
        if fate == RANDOMIZED:
            draw = rng.random()
            if draw < DEATH_RATE:
                ending, ending_day = DIES, rng.randint(5, 150)
            elif draw < DEATH_RATE + WITHDRAW_RATE:
                ending, ending_day = WITHDRAWS, rng.randint(3, 150)
            elif draw < DEATH_RATE + WITHDRAW_RATE + LOST_RATE:
                ending, ending_day = LOST, rng.randint(20, 150)
        plans.append(SubjectPlan(index=index, site_code=site_code,
                                 screened_at=local.astimezone(dt.UTC), fate=fate,
                                 failure=failure, nihss=nihss, ending=ending,
                                 ending_day=ending_day))
    return plans


# --- Clinical values: pure functions of a random generator -------------------------------------

NIHSS_ITEM_MAX = dict(derivations.NIHSS_ITEMS)
ITEM_FIELD = {code: field for field, code in FIELD_TO_ITEM.items()}


def _nihss_weights(side: str) -> dict[str, float]:
    """How likely each item is to carry a point, for an infarct of the left or right
    hemisphere (the opposite limbs; language for the left, neglect for the right)."""
    arm, leg = ("5b", "6b") if side == "left" else ("5a", "6a")
    other_arm, other_leg = ("5a", "6a") if side == "left" else ("5b", "6b")
    weights = {"1a": 0.3, "1b": 1.0, "1c": 0.6, "2": 1.0, "3": 0.8, "4": 1.6, arm: 3.0,
               leg: 2.5, other_arm: 0.1, other_leg: 0.1, "7": 0.3, "8": 1.2, "9": 0.5,
               "10": 1.0, "11": 0.5}
    weights["9" if side == "left" else "11"] = 1.8
    return weights


def nihss_change(rng: random.Random, items: dict[str, int], target: int, side: str,
                 *, max_1a: int = 1) -> dict[str, int]:
    """``items`` moved point by point towards the total ``target``."""
    items = dict(items)
    weights = _nihss_weights(side)
    while sum(items.values()) != target:
        if sum(items.values()) < target:
            room = [c for c in items
                    if items[c] < (max_1a if c == "1a" else NIHSS_ITEM_MAX[c])]
            if not room:
                break
            code = rng.choices(room, [weights[c] for c in room])[0]
            items[code] += 1
        else:
            scored = [c for c in items if items[c] > 0]
            code = rng.choices(scored, [1 / weights[c] + items[c] for c in scored])[0]
            items[code] -= 1
    return items


def nihss_values(items: dict[str, int]) -> dict[str, str]:
    return {ITEM_FIELD[code]: str(score) for code, score in items.items()}


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def vital_values(rng: random.Random, *, weight: Decimal | None, fever: bool = False,
                 systolic_mean: float = 140) -> dict[str, Any]:
    systolic = round(rng.gauss(systolic_mean, 14))
    systolic = min(180, max(100, systolic))
    values = {
        "systolic_bp": systolic,
        "diastolic_bp": min(systolic - 25, max(55, round(rng.gauss(82, 9)))),
        "heart_rate": min(110, max(52, round(rng.gauss(76, 10)))),
        "temperature": (_dec(rng.uniform(38.1, 38.9), 1) if fever
                        else _dec(min(37.6, max(36.0, rng.gauss(36.7, 0.3))), 1)),
        "respiratory_rate": rng.randint(14, 20),
        "spo2": rng.randint(95, 99),
    }
    if weight is not None:
        values["weight"] = _dec(float(weight) + rng.uniform(-1.5, 1.0), 1)
    return values


# An item outside its soft range (PROTOCOL.md "Vital signs ranges"), inside the hard limits.
OUT_OF_RANGE = {
    "systolic_bp": lambda rng: rng.randint(186, 205),
    "diastolic_bp": lambda rng: rng.randint(111, 120),
    "heart_rate": lambda rng: rng.choice([rng.randint(38, 44), rng.randint(121, 135)]),
    "respiratory_rate": lambda rng: rng.randint(29, 32),
    "spo2": lambda rng: rng.randint(90, 93),
}


def lab_values(rng: random.Random, *, sex: str, diabetic: bool,
               creatinine_range: tuple[int, int] | None = None) -> dict[str, Any]:
    low, high = creatinine_range or ((60, 105) if sex == "M" else (45, 85))
    return {
        "ast": Decimal(rng.randint(13, 38)),
        "alt": Decimal(rng.randint(9, 42)),
        "bilirubin": _dec(rng.uniform(6, 19), 1),
        "creatinine": Decimal(rng.randint(low, high)),
        "hemoglobin": Decimal(rng.randint(128, 162) if sex == "M" else rng.randint(112, 145)),
        "wbc": _dec(rng.uniform(4.5, 10.5), 2),
        "platelets": Decimal(rng.randint(150, 320)),
        "glucose": _dec(rng.uniform(6.5, 10.5) if diabetic else rng.uniform(4.4, 6.4), 1),
        "inr": _dec(rng.uniform(0.90, 1.15), 2),
        "d_dimer": _dec(rng.uniform(0.10, 1.20), 2),
        "fibrinogen": _dec(rng.uniform(2.2, 4.2), 2),
    }


def egfr(creatinine: Decimal, age: int, sex: str) -> int:
    return derivations.round_egfr(derivations.egfr_ckd_epi_2021(
        creatinine_umol_l=creatinine, age_years=age, sex=sex))


def mrs_for(nihss_total: int, rng: random.Random) -> int:
    base = (0 if nihss_total <= 1 else 1 if nihss_total <= 4 else 2 if nihss_total <= 8
            else 3 if nihss_total <= 14 else 4)
    return min(5, max(0, base + rng.choice((-1, 0, 0, 0, 1))))


BARTHEL_ALLOWED = dict(derivations.BARTHEL_ITEMS)


def barthel_values(rng: random.Random, mrs: int) -> dict[str, int]:
    """Barthel items whose total fits the disability an mRS score describes."""
    low, high = {0: (100, 100), 1: (90, 100), 2: (75, 95), 3: (50, 80), 4: (20, 55),
                 5: (0, 20)}[mrs]
    target = rng.randint(low, high)
    items = {code: max(allowed) for code, allowed in derivations.BARTHEL_ITEMS}
    while sum(items.values()) > target:
        reducible = [code for code, value in items.items() if value > 0]
        code = rng.choice(reducible)
        allowed = BARTHEL_ALLOWED[code]
        items[code] = allowed[allowed.index(items[code]) - 1]
    return items


# Adverse events: term, special interest, CTCAE grades, chance of being serious, usual
# relationship to the product, to the infusion procedure, duration in days, weight.
AE_CATALOG = (
    ("Headache", "none", (1, 2), 0.0, "unlikely", "unlikely", (1, 4), 10),
    ("Constipation", "none", (1, 1), 0.0, "not_related", "not_related", (2, 7), 8),
    ("Insomnia", "none", (1, 2), 0.0, "not_related", "not_related", (3, 14), 5),
    ("Nausea", "none", (1, 2), 0.0, "unlikely", "unlikely", (1, 3), 5),
    ("Hypokalaemia", "none", (1, 2), 0.0, "not_related", "not_related", (2, 6), 4),
    ("Urinary tract infection", "none", (2, 2), 0.0, "not_related", "not_related", (5, 10), 6),
    ("Pneumonia", "none", (2, 3), 0.5, "not_related", "not_related", (7, 18), 6),
    ("Rash", "allergic_reaction", (1, 2), 0.0, "possibly", "unlikely", (2, 7), 3),
    ("Deep vein thrombosis", "thromboembolism", (2, 3), 0.3, "unlikely", "not_related",
     (10, 30), 2),
    ("Ischaemic stroke, recurrent", "recurrent_stroke", (3, 4), 1.0, "unlikely", "not_related",
     (10, 40), 1),
    ("Haemorrhagic transformation of stroke", "hemorrhagic_transformation", (2, 3), 0.5,
     "unlikely", "not_related", (7, 21), 1),
)
FEVER_AE = ("Pyrexia", "fever", (1, 1), 0.0, "possibly", "possibly", (1, 2), 0)
INFUSION_REACTION_AE = ("Infusion related reaction", "infusion_reaction", (1, 2), 0.0,
                        "possibly", "probably", (1, 1), 0)
WORSENING_AE = ("Neurological deterioration", "neurological_worsening", (2, 3), 0.3,
                "unlikely", "not_related", (5, 20), 0)
FATAL_TERMS = ("Pneumonia", "Ischaemic stroke, recurrent", "Cerebral oedema with herniation",
               "Myocardial infarction")
FEVER_DAYS = (2, 9, 16)  # the day after an infusion
INFUSION_DAYS = {number: visit.day for visit in protocol.VISITS
                 if (number := visit.infusion_number)}

SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu",
            "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo")
GIVEN_NAMES = ("Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong",
               "Yan", "Jie", "Tao", "Ming", "Chao", "Xiuying", "Guilan", "Jianguo", "Hui",
               "Guirong", "Shulan", "Zhiqiang", "Haiyan")


# --- Running the trial --------------------------------------------------------------------------


class SyntheticTrialError(Exception):
    """The trial cannot be generated here (a database that is not empty, missing tools)."""


class Clock:
    """The time every service sees: moved to the moment of each action (time-machine)."""

    def __init__(self, start: dt.datetime):
        try:
            import time_machine
        except ImportError as missing:  # pragma: no cover
            raise SyntheticTrialError(
                "seed_trial sets the clock with time-machine: install the dev extras "
                "(pip install -e '.[dev]')."
            ) from missing
        self._travel = time_machine.travel(start.timestamp(), tick=False)
        self._traveller = None

    def __enter__(self) -> "Clock":
        self._traveller = self._travel.start()
        return self

    def __exit__(self, *exc) -> None:
        self._travel.stop()

    def move_to(self, moment: dt.datetime) -> None:
        self._traveller.move_to(moment.timestamp())


@dataclasses.dataclass
class Staff:
    nurse: User
    investigator: User
    monitor: User


@dataclasses.dataclass
class Trial:
    """What the subjects share: the seed, the snapshot moment, the staff, the password that
    signs casebooks and the turns taken, site by site, by query outcomes and sign-offs (per
    site, so that a site's subjects depend only on the subjects screened before them there)."""

    seed: int
    snapshot: dt.datetime
    clock: Clock
    sites: dict[str, Site]
    staff: dict[str, Staff]
    data_manager: User
    password: str = PASSWORD
    turns: Counter = dataclasses.field(default_factory=Counter)

    def next_turn(self, site_code: str, kind: str) -> int:
        turn = self.turns[site_code, kind]
        self.turns[site_code, kind] += 1
        return turn

    def next_path(self, site_code: str, kind: str) -> str:
        """The next path of a query at the site; each site starts one path further along
        than the one before, so that a small trial still has every state."""
        paths = SYSTEM_QUERY_PATHS if kind == "system" else MANUAL_QUERY_PATHS
        start = list(self.sites).index(site_code)
        return paths[(start + self.next_turn(site_code, kind)) % len(paths)]


class SubjectRun:
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

    def save(self, model: type[CRF], values: dict[str, Any], *, visit: str | None = None,
             pk: int | None = None, user: User | None = None, reason: str = "",
             missing: dict[str, str] | None = None, slot: str = "") -> CRF:
        # As the data-entry page does: the subject (with its site) was read in this
        # transaction, and a saved form is read locked; crf_save(locked=True) then reads
        # neither again. Every service that changes the subject returns it: self.subject is
        # the current row.
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

    # -- screening --

    def screen(self) -> None:
        rng = self.rng
        sex = "M" if rng.random() < 0.62 else "F"
        self.sex = sex
        age = (rng.randint(76, 82) if self.plan.failure == "age"
               else min(74, max(35, round(rng.gauss(62, 9)))))
        consent_day = self.today()
        birth_date = consent_day - dt.timedelta(days=round((age + rng.random()) * 365.25))
        if self.plan.failure != "age":
            while schedule.age_in_years(birth_date, consent_day) > 74:
                birth_date += dt.timedelta(days=200)
        self.age = schedule.age_in_years(birth_date, consent_day)
        identity = {
            "full_name": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}",
            "birth_date": birth_date,
            "hospital_record_number": f"{self.site.code}{rng.randrange(10**6):06d}",
            "phone": f"13{rng.randrange(10**9):09d}",
        }
        self.subject = visit_services.subject_screen(
            site=self.site, screened_at=self.now, user=self.staff.nurse, identity=identity)
        if self.plan.fate == DECLINED:
            self.at(self.now + dt.timedelta(minutes=rng.randint(30, 90)), self.decline)
            return
        self.at(self.now + dt.timedelta(minutes=rng.randint(15, 45)), self.consent)

    def decline(self) -> None:
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.SCREEN_FAILED, user=self.staff.nurse,
            reason="The patient and family declined to take part", failed_criteria=["IN07"])

    def consent(self) -> None:
        guardian = self.plan.nihss >= 16 and self.rng.random() < 0.5
        version = "v2.0 2026-01-15" if self.today() >= CONSENT_FORM_V2_FROM else "v1.1 2025-06-01"
        self.subject = visit_services.subject_consent(
            subject=self.subject, consented_at=self.now,
            signed_by=ConsentSigner.GUARDIAN if guardian else ConsentSigner.SUBJECT,
            form_version=version, user=self.staff.nurse)
        self.visits = {v.code: v for v in self.subject.visits.all()}
        self.at(self.now + dt.timedelta(minutes=10), self.record_visit,
                protocol.SCREENING_VISIT.code)
        self.at(self.now + dt.timedelta(minutes=self.rng.randint(25, 40)), self.screening_forms)

    def record_visit(self, code: str) -> None:
        form_services.visit_record(visit=self.visits[code], actual_date=self.today(),
                                   user=self.staff.nurse)

    def screening_forms(self) -> None:
        """Demographics, history, the stroke, NIHSS, pre-stroke mRS, vital signs, labs and
        the medications already taken, entered one after the other at screening."""
        rng, failure, visit = self.rng, self.plan.failure, protocol.SCREENING_VISIT.code
        sex = self.sex
        height = rng.randint(160, 182) if sex == "M" else rng.randint(150, 168)
        self.weight = _dec(rng.uniform(20.5, 28.5) * (height / 100) ** 2, 1)
        history = {
            "hypertension": rng.random() < 0.6, "diabetes": rng.random() < 0.25,
            "hyperlipidemia": rng.random() < 0.35, "atrial_fibrillation": rng.random() < 0.1,
            "coronary_heart_disease": rng.random() < 0.12,
            "prior_stroke": rng.random() < 0.15,
            "smoking": rng.choice(("never", "never", "former", "current")),
            "epilepsy": False, "parkinsons": False, "alzheimers": False,
            "severe_depression": False, "malignancy": False, "alcohol_abuse": False,
        }
        self.history = history
        self.side = rng.choice(("left", "right"))
        onset = self.now - dt.timedelta(hours=rng.uniform(6, 44))
        arrival = onset + dt.timedelta(hours=rng.uniform(1, 3.5))
        stroke = {
            "onset_type": rng.choice(("witnessed", "witnessed", "lkw")),
            "onset_at": onset, "arrival_at": arrival,
            "imaging_modality": rng.choice(("ct", "mri", "both")),
            "imaging_at": arrival + dt.timedelta(minutes=rng.randint(20, 90)),
            "territory": "posterior" if failure == "posterior" else "anterior",
            "side": self.side, "large_mca_infarct": False,
            "midline_shift": Decimal("0.0"),
            "hemorrhage": ("transformation" if failure == "hemorrhage"
                           else "petechial" if rng.random() < 0.04 else "none"),
            "thrombolysis": "given" if failure == "thrombolysis" else "no",
            "thrombectomy": "no",
        }
        self.onset = onset
        self.nihss_items = nihss_change(rng, dict.fromkeys(NIHSS_ITEM_MAX, 0), self.plan.nihss,
                                        self.side)
        self.baseline_nihss = sum(self.nihss_items.values())
        diabetic = history["diabetes"]
        creatinine = (180, 260) if failure == "kidney" else None
        labs = lab_values(rng, sex=sex, diabetic=diabetic, creatinine_range=creatinine)
        while failure != "kidney" and egfr(labs["creatinine"], self.age, sex) < 62:
            labs["creatinine"] -= 5
        if failure == "liver":
            labs["ast"] = Decimal(rng.randint(110, 180))
        childbearing = sex == "F" and self.age < 50
        if childbearing:
            labs["pregnancy_test"] = "negative"
        forms: list[tuple[type[CRF], dict[str, Any]]] = [
            (Demographics, {"sex": sex, "ethnicity": "han" if rng.random() < 0.92 else "other",
                            "height": height, "weight": self.weight,
                            "childbearing_potential": childbearing if sex == "F" else None}),
            (MedicalHistory, history),
            (StrokeEvent, stroke),
            (NIHSS, {"assessed_at": self.now - dt.timedelta(minutes=5),
                     **nihss_values(self.nihss_items)}),
            (MRS, {"assessed_on": self.today(),
                   "score": rng.randint(2, 3) if failure == "prestroke_mrs"
                   else (0 if rng.random() < 0.8 else 1)}),
            (VitalSigns, {"measured_at": self.now,
                          **vital_values(rng, weight=self.weight, systolic_mean=150)}),
            (LabPanel, {"sampled_at": self.now - dt.timedelta(minutes=rng.randint(1, 10)),
                        **labs}),
        ]
        step = dt.timedelta(minutes=4)
        moment = self.now
        for model, values in forms:
            moment += step
            self.at(moment, self.save_planned, model, values, visit)
        for medication in self.medications_at_screening():
            moment += step
            self.at(moment, self.save_planned, ConcomitantMedication, medication, None)
        confirm = moment + dt.timedelta(minutes=rng.randint(40, 90))
        self.randomize_at = confirm + dt.timedelta(minutes=rng.randint(20, 45))
        self.at(confirm, self.eligibility)

    def save_planned(self, model: type[CRF], values: dict[str, Any], visit: str | None
                     ) -> None:
        self.save(model, values, visit=visit)

    def medications_at_screening(self) -> list[dict[str, Any]]:
        rng, day = self.rng, self.today()

        def since_years() -> dt.date:
            return day - dt.timedelta(days=rng.randint(200, 3000))

        medications = [
            {"medication": "Aspirin", "indication": "Secondary prevention of ischaemic stroke",
             "dose": Decimal(100), "doses_per_day": Decimal(1), "route": "oral",
             "start_date": day, "ongoing": True},
            {"medication": "Atorvastatin", "indication": "Secondary prevention of ischaemic "
             "stroke", "dose": Decimal(20), "doses_per_day": Decimal(1), "route": "oral",
             "start_date": day, "ongoing": True},
        ]
        if self.history["hypertension"]:
            medications.append({"medication": "Amlodipine", "indication": "Hypertension",
                                 "dose": Decimal(5), "doses_per_day": Decimal(1),
                                 "route": "oral", "start_date": since_years(),
                                 "ongoing": True})
        if self.history["diabetes"]:
            medications.append({"medication": "Metformin", "indication": "Type 2 diabetes",
                                 "dose": Decimal(500), "doses_per_day": Decimal(2),
                                 "route": "oral", "start_date": since_years(),
                                 "ongoing": True})
        if rng.random() < 0.4:
            medications.append({"medication": "Omeprazole", "indication": "Stress ulcer "
                                "prophylaxis", "dose": Decimal(20), "doses_per_day": Decimal(1),
                                "route": "oral", "start_date": day, "ongoing": True})
        return medications

    def eligibility(self) -> None:
        """The investigator confirms every criterion as the data show it; a screen failure is
        recorded with the criteria not met."""
        failing = SCREEN_FAILURE_CRITERION.get(self.plan.failure)
        confirmations = {c.code: c.code != failing for c in protocol.ELIGIBILITY_CRITERIA}
        checklist = form_services.crf_instance(
            model=form_services.EligibilityChecklist, subject=self.subject,
            visit=self.visits[protocol.SCREENING_VISIT.code])
        form_services.eligibility_confirm(
            subject=self.subject, user=self.staff.investigator,
            planned_first_infusion_at=self.randomize_at + dt.timedelta(hours=1),
            confirmations=confirmations, expected_version=checklist.version)
        if self.plan.fate == SCREEN_FAILED:
            self.at(self.now + dt.timedelta(minutes=10), self.screen_fail)
        else:
            self.at(self.randomize_at, self.randomize)

    def screen_fail(self) -> None:
        _checklist, _derived, verdict = form_services.eligibility_review(self.subject)
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.SCREEN_FAILED,
            user=self.staff.investigator, failed_criteria=list(verdict.failed),
            reason="Not eligible: " + ", ".join(verdict.failed))

    # -- randomization and the visits after it --

    def randomize(self) -> None:
        self.subject = form_services.subject_randomize(subject=self.subject,
                                                       user=self.staff.investigator)
        self.visits = {v.code: v for v in self.subject.visits.all()}
        self.day1 = self.subject.day1
        self.kits = dict(KitAssignment.objects.filter(subject=self.subject)
                         .values_list("infusion_number", "kit_number"))
        self.infusions_given = 0
        self.worsening_visit = (self.rng.choice((DAY2, DAY8)) if self.rng.random()
                                < WORSENING_RATE else "")
        plan, rng = self.plan, self.rng
        end_date = self.study_date(plan.ending_day) if plan.ending != COMPLETES else None
        self.plan_adverse_events(end_date)
        self.at(self.later(self.local(self.study_date(15), 9), 0, 14), self.monitor_visit)
        lost_pending = plan.ending == LOST
        for visit_def in protocol.SCHEDULED_AFTER_RANDOMIZATION:
            visit = self.visits[visit_def.code]
            if visit_def.code == DAY1:
                self.at(self.now + dt.timedelta(minutes=5), self.visit_day, visit_def.code)
                continue
            actual = self.visit_date(visit)
            if end_date is not None and actual >= end_date:
                if lost_pending:
                    lost_pending = False
                    missed_at = self.local(visit.window_end + dt.timedelta(days=3), 10)
                    self.at(missed_at, self.miss_visit, visit_def.code,
                            "The subject could not be reached by phone after three attempts")
                    self.at(missed_at + dt.timedelta(minutes=20), self.terminate,
                            "lost_to_follow_up", schedule.local_date(missed_at, self.zone))
                break
            if visit_def.code in (DAY30, DAY90) and rng.random() < MISSED_VISIT_RATE:
                self.at(self.local(visit.window_end + dt.timedelta(days=2), 10),
                        self.miss_visit, visit_def.code,
                        rng.choice(("The subject was admitted to another hospital",
                                    "The subject was travelling and could not attend")))
                continue
            self.at(self.local(actual, rng.randint(8, 10), rng.randrange(60)), self.visit_day,
                    visit_def.code)
        if plan.ending == DIES:
            self.plan_death(end_date)
        elif plan.ending == WITHDRAWS:
            self.at(self.local(end_date, 10, rng.randrange(60)), self.terminate,
                    rng.choice(("withdrew_consent", "withdrew_consent", "investigator_decision")),
                    end_date)

    def visit_date(self, visit: Visit) -> dt.date:
        rng = self.rng
        if rng.random() < OUT_OF_WINDOW_RATE:
            return visit.window_end + dt.timedelta(days=rng.randint(1, 2))
        spread = (visit.window_end - visit.planned_date).days
        if spread and rng.random() < 0.5:
            return visit.planned_date + dt.timedelta(days=rng.randint(-spread, spread))
        return visit.planned_date

    def miss_visit(self, code: str, reason: str) -> None:
        form_services.visit_missed(visit=self.visits[code], reason=reason,
                                   user=self.staff.nurse)
        self.deviation("missed_assessment", self.visits[code],
                       f"{code} visit not done: {reason}.")

    def deviation(self, category: str, visit: Visit | None, description: str,
                  occurred_on: dt.date | None = None) -> None:
        occurred = occurred_on or (visit.actual_date if visit and visit.actual_date
                                   else self.today())
        self.save(ProtocolDeviation, {
            "occurred_on": min(occurred, self.today()), "category": category,
            "description": description, "is_major": category == "prohibited_medication",
            "corrective_action": "Site staff retrained on the visit schedule and the "
                                 "prohibited medications.",
            "reported_on": self.today(),
        })

    def visit_day(self, code: str) -> None:
        """The visit date, then the visit's forms one after the other."""
        self.record_visit(code)
        rng = self.rng
        visit_def = protocol.visit_def(code)
        day = self.today()
        moment = self.now
        if code == self.worsening_visit:
            target = self.baseline_nihss + rng.randint(4, 6)
        else:
            factor = {DAY1: 1.0, DAY2: 0.95, DAY8: 0.8, DAY15: 0.7, DAY30: 0.55, DAY90: 0.4,
                      DAY180: 0.35}[code]
            target = round(self.baseline_nihss * factor + rng.gauss(0, 1))
            if self.worsening_visit and code != DAY1:
                target += 2
        self.nihss_items = nihss_change(rng, self.nihss_items, max(0, min(30, target)),
                                        self.side)
        mrs = mrs_for(sum(self.nihss_items.values()), rng)
        for crf_code, slot in visit_def.expected_forms():
            moment += dt.timedelta(minutes=rng.randint(5, 12))
            if crf_code == "nihss":
                values = {"assessed_at": moment, **nihss_values(self.nihss_items)}
            elif crf_code == "mrs":
                values = {"assessed_on": day, "score": mrs}
            elif crf_code == "barthel":
                values = {"assessed_on": day, **barthel_values(rng, mrs)}
            elif crf_code == "vital_signs":
                values = {"measured_at": moment,
                          **vital_values(rng, weight=self.weight if code in (DAY30, DAY90)
                                         else None, fever=day in self.fever_dates,
                                         systolic_mean=138 if code in (DAY1, DAY2) else 130)}
            elif crf_code == "labs":
                values = {"sampled_at": self.local(day, 7, rng.randrange(50)),
                          **lab_values(rng, sex=self.sex, diabetic=self.history["diabetes"])}
                if rng.random() < LAB_ELEVATED_RATE:
                    values[rng.choice(("ast", "alt"))] = Decimal(rng.randint(105, 160))
            elif crf_code == "infusion":
                moment, values = self.infusion_values(visit_def, moment)
            elif crf_code == "pkpd":
                values = self.pkpd_values(slot, visit_start=self.now, after_dose=moment)
                moment = max(moment, values.get("processed_at") or moment)
                moment += dt.timedelta(minutes=5)
            elif crf_code == "end_of_study":
                values = {"completed": True, "last_contact_date": day,
                          "comments": "Completed the study as planned."}
            else:  # pragma: no cover - every CRF of a scheduled visit is covered above
                raise ValueError(crf_code)
            self.at(moment, self.visit_form, CRF_MODELS[crf_code], values, code, slot)
        if code == self.worsening_visit:
            self.at(moment + dt.timedelta(hours=2), self.adverse_event,
                    self.event_values(WORSENING_AE, day, "worsening"))
        if code == DAY180:
            self.at(moment + dt.timedelta(minutes=30), self.complete)

    def visit_form(self, model: type[CRF], values: dict[str, Any], code: str,
                   slot: str = "") -> None:
        """Save a visit form, sometimes with an error the edit checks catch (corrected once
        the query asks, when it was a slip) and sometimes corrected later with a reason."""
        rng = self.rng
        values = dict(values)
        planted: dict[str, Any] = {}
        if model is VitalSigns and rng.random() < VITAL_OUT_OF_RANGE_RATE:
            item = rng.choice(sorted(OUT_OF_RANGE))
            if rng.random() < TYPO_SHARE:
                planted = {item: values[item]}
            values[item] = OUT_OF_RANGE[item](rng)
            values["systolic_bp"] = max(values["systolic_bp"], values["diastolic_bp"] + 35)
        elif model is LabPanel and rng.random() < SAMPLE_DATE_TYPO_RATE:
            planted = {"sampled_at": values["sampled_at"]}
            values["sampled_at"] -= dt.timedelta(days=1)
        elif model is Infusion and values.get("kit_number") and rng.random() < KIT_TYPO_RATE:
            kit = values["kit_number"]
            planted = {"kit_number": kit}
            values["kit_number"] = kit[:-2] + kit[-1] + kit[-2] if kit[-1] != kit[-2] \
                else kit[:-1] + str((int(kit[-1]) + 1) % 10)
        saved = self.save(model, values, visit=code, slot=slot)
        for item, value in planted.items():
            self.corrections[(model, saved.pk, item)] = {item: value}
        if model in (NIHSS, VitalSigns, LabPanel, Barthel) and rng.random() < CORRECTION_RATE:
            self.at(self.later(self.now, 1, 14), self.amend, model, saved.pk)

    def amend(self, model: type[CRF], pk: int) -> None:
        """A correction of a complete form found on review, with its reason."""
        record = model.objects.get(pk=pk)
        rng = self.rng
        if model is VitalSigns:
            values = {"heart_rate": min(110, max(52, record.heart_rate + rng.choice((-4, -2,
                                                                                    2, 4))))}
        elif model is LabPanel:
            values = {"hemoglobin": record.hemoglobin + rng.choice((-3, -2, 2, 3))}
        elif model is Barthel:
            scored = [c for c, v in record.items().items() if v]
            if not scored:
                return
            code = rng.choice(scored)
            allowed = BARTHEL_ALLOWED[code]
            values = {code: allowed[allowed.index(getattr(record, code)) - 1]}
        else:
            scored = [c for c in NIHSS_ITEM_MAX if c != "1a"
                      and getattr(record, ITEM_FIELD[c]) not in ("", "UN")]
            code = rng.choice(scored)
            score = int(getattr(record, ITEM_FIELD[code]))
            score = score - 1 if score > 0 else score + 1
            values = {ITEM_FIELD[code]: str(score)}
        self.save(model, values, pk=pk, reason=rng.choice(REASONS_FOR_CHANGE))

    def infusion_values(self, visit_def, moment: dt.datetime
                        ) -> tuple[dt.datetime, dict[str, Any]]:
        rng = self.rng
        number = visit_def.infusion_number
        if number > 1 and rng.random() < INFUSION_NOT_GIVEN_RATE:
            return moment, {"given": False, "not_given_reason": rng.choice((
                "The subject declined the infusion on the day",
                "Fever on the infusion day; the investigator postponed and then cancelled it"))}
        self.infusions_given = number
        started = moment + dt.timedelta(minutes=rng.randint(10, 30))
        minutes = rng.randint(55, 80)
        stopped = started + dt.timedelta(minutes=minutes)
        infused = _dec(rng.uniform(96, 100), 1)

        def vitals(prefix: str) -> dict[str, Any]:
            v = vital_values(rng, weight=None, systolic_mean=135)
            return {f"{prefix}_{name}": v[name]
                    for name in ("systolic_bp", "diastolic_bp", "heart_rate", "temperature")}

        values = {
            "given": True, "kit_number": self.kits[number], "weight_for_dosing": self.weight,
            "planned_dose_cells_per_kg": Decimal("1.00"),
            "volume_prepared_ml": Decimal("100.0"), "volume_infused_ml": infused,
            "started_at": started, "stopped_at": stopped,
            "rate_ml_per_hour": _dec(float(infused) * 60 / minutes, 1),
            "interrupted": False, "premedication": "None",
            **vitals("pre"), **vitals("during"), **vitals("post"),
        }
        return stopped + dt.timedelta(minutes=rng.randint(10, 25)), values

    def pkpd_values(self, timepoint: str, *, visit_start: dt.datetime, after_dose: dt.datetime
                    ) -> dict[str, Any]:
        """The 1 h post-dose sample after the infusion, the others (pre-dose, 24 h, follow-up)
        when the subject arrives. The time point is the record's slot, not an item."""
        rng = self.rng
        if rng.random() < PKPD_NOT_COLLECTED_RATE:
            return {"collected": False,
                    "not_collected_reason": "Venous access failed after two attempts"}
        collected = (after_dose if timepoint == "post_dose_1h"
                     else visit_start + dt.timedelta(minutes=rng.randint(2, 8)))
        return {
            "collected": True, "collected_at": collected,
            "tube_type": rng.choice(("edta", "edta", "serum", "paxgene_rna")),
            "processed_at": collected + dt.timedelta(minutes=rng.randint(30, 60)),
            "freezer_id": f"-80 °C freezer {self.site.code}-1",
            "storage_location": f"Rack {rng.randint(1, 6)}, box {rng.randint(1, 20)}, "
                                f"position {rng.randint(1, 81)}",
        }

    # -- adverse events, concomitant medications, the end of participation --

    def plan_adverse_events(self, end_date: dt.date | None) -> None:
        rng = self.rng
        count = rng.choices((0, 1, 2, 3, 4), (35, 30, 20, 10, 5))[0]
        last_day = (end_date - self.day1).days if end_date else 180
        for _n in range(count):
            draw = rng.random()
            if draw < 0.15:
                entry, day, kind = FEVER_AE, rng.choice(FEVER_DAYS), "fever"
            elif draw < 0.25:
                number = rng.randint(1, 3)
                entry, day, kind = INFUSION_REACTION_AE, INFUSION_DAYS[number], "infusion"
            else:
                entry = rng.choices(AE_CATALOG, [e[-1] for e in AE_CATALOG])[0]
                day, kind = rng.randint(2, 180), "other"
            if day >= last_day:
                continue
            start = self.study_date(day)
            if kind == "fever":
                self.fever_dates.add(start)
                entered = self.local(start, rng.randint(15, 18), rng.randrange(60))
            else:
                entered = self.local(start + dt.timedelta(days=rng.randint(0, 2)),
                                     rng.randint(13, 18), rng.randrange(60))
            self.at(entered, self.adverse_event, self.event_values(entry, start, kind))
            if entry[1] == "allergic_reaction" and rng.random() < STEROID_SHARE:
                self.at(entered + dt.timedelta(minutes=15), self.steroid, start)

    def event_values(self, entry: tuple, start: dt.date, kind: str) -> dict[str, Any]:
        rng = self.rng
        term, special, grades, serious_rate, to_product, to_procedure, duration, _w = entry
        serious = rng.random() < serious_rate
        day = schedule.study_day(self.day1, start)
        infusion = next((n for n, d in INFUSION_DAYS.items() if d <= day <= d + 1), None)
        values = {
            "term": term, "start_date": start, "ongoing": True,
            "ctcae_grade": rng.randint(*grades) + (1 if serious and grades[1] < 3 else 0),
            "is_serious": serious, "relationship_to_product": to_product,
            "relationship_to_procedure": to_procedure,
            "action_taken": ("drug_interrupted" if kind == "infusion"
                             else "dose_not_changed" if day < INFUSION_DAYS[3]
                             else "not_applicable"),
            "outcome": "recovering" if rng.random() < 0.6 else "not_recovered",
            "infusion_number": infusion if kind in ("fever", "infusion") else None,
            "special_interest": special,
            "_duration": rng.randint(*duration),
            "_resolves": kind != "fatal" and rng.random() < 0.85,
        }
        if serious:
            values["serious_hospitalization"] = True
            if special in ("recurrent_stroke", "hemorrhagic_transformation"):
                values["serious_important_medical_event"] = True
        return values

    def adverse_event(self, values: dict[str, Any]) -> AdverseEvent | None:
        values = dict(values)
        duration = values.pop("_duration")
        resolves = values.pop("_resolves")
        start = values["start_date"]
        values["site_aware_at"] = max(self.now - dt.timedelta(hours=self.rng.randint(1, 6)),
                                      self.local(start, 8), self.subject.consented_at)
        planted = {}
        if values["is_serious"] and self.rng.random() < SAE_CRITERIA_FORGOTTEN_RATE:
            planted = {name: values.pop(name) for name in list(values)
                       if name.startswith("serious_")}
        event = self.save(AdverseEvent, values, user=self.staff.investigator)
        if planted:
            self.corrections[(AdverseEvent, event.pk, "is_serious")] = planted
        if values["special_interest"] == "fever":
            self.at(self.now + dt.timedelta(minutes=10), self.save_planned,
                    ConcomitantMedication, {
                        "medication": "Paracetamol", "indication": values["term"],
                        "dose": Decimal(500), "doses_per_day": Decimal(2), "route": "oral",
                        "start_date": start, "end_date": start, "ongoing": False}, None)
        elif values["term"] == "Pneumonia":
            self.at(self.now + dt.timedelta(minutes=10), self.medication_course, {
                "medication": "Ceftriaxone", "indication": "Pneumonia", "dose": Decimal(2000),
                "doses_per_day": Decimal(1), "route": "iv", "start_date": start,
                "ongoing": True}, start + dt.timedelta(days=min(duration, 10)))
        if resolves:
            resolved = start + dt.timedelta(days=duration)
            self.at(self.later(self.local(resolved, 9), 1, 6), self.resolve, event.pk, resolved)
        return event

    def resolve(self, pk: int, resolved: dt.date) -> None:
        event = AdverseEvent.objects.get(pk=pk)
        if event.outcome == "fatal" or not event.ongoing:
            return
        sequelae = event.special_interest in ("recurrent_stroke", "hemorrhagic_transformation",
                                              "neurological_worsening")
        self.save(AdverseEvent, {
            "end_date": resolved, "ongoing": False,
            "outcome": "recovered_with_sequelae" if sequelae else "recovered",
        }, pk=pk, user=self.staff.investigator, reason="Event resolved: end date and outcome")

    def medication_course(self, values: dict[str, Any], stop: dt.date) -> None:
        medication = self.save(ConcomitantMedication, values)
        self.at(self.later(self.local(stop, 9), 0, 3), self.stop_medication, medication.pk, stop)

    def stop_medication(self, pk: int, stop: dt.date) -> None:
        self.save(ConcomitantMedication, {"end_date": stop, "ongoing": False}, pk=pk,
                  reason="Course completed: end date entered")

    def steroid(self, start: dt.date) -> None:
        """Methylprednisolone for an allergic reaction: above the protocol's steroid limit, so
        the edit check asks for a protocol deviation, which the site records."""
        medication = self.save(ConcomitantMedication, {
            "medication": "Methylprednisolone", "corticosteroid": "methylprednisolone",
            "indication": "Allergic reaction", "dose": Decimal(40), "doses_per_day": Decimal(1),
            "route": "iv", "start_date": start, "ongoing": True})
        self.follow_ups[(ConcomitantMedication, medication.pk, "dose")] = lambda: self.deviation(
            "prohibited_medication", None, "Methylprednisolone 40 mg IV daily (50 mg/day "
            "prednisone equivalent) given for an allergic reaction.", occurred_on=start)
        self.at(self.later(self.local(start + dt.timedelta(days=3), 9), 0, 2),
                self.stop_medication, medication.pk, start + dt.timedelta(days=3))

    def plan_death(self, died_on: dt.date) -> None:
        rng = self.rng
        start = max(self.day1 + dt.timedelta(days=1), died_on - dt.timedelta(
            days=rng.randint(1, 7)))
        term = rng.choice(FATAL_TERMS)
        entry = (term, "recurrent_stroke" if "stroke" in term else "none", (3, 4), 1.0,
                 "unlikely", "not_related", (1, 1), 0)
        values = self.event_values(entry, start, "fatal")
        values["serious_life_threatening"] = True
        reported = self.local(died_on + dt.timedelta(days=1), rng.randint(9, 11))
        entered = min(self.local(start, rng.randint(13, 18)), reported - dt.timedelta(hours=2))
        self.fatal_event: AdverseEvent | None = None

        def enter() -> None:
            self.fatal_event = self.adverse_event(values)

        self.at(entered, enter)
        self.at(reported, self.death, died_on, term)

    def death(self, died_on: dt.date, cause: str) -> None:
        """The investigator updates the event to fatal, then writes the death report, the
        early termination and the subject's status."""
        event = self.fatal_event
        if event is not None:
            self.save(AdverseEvent, {
                "ctcae_grade": 5, "outcome": "fatal", "ongoing": False, "end_date": died_on,
                "is_serious": True, "serious_death": True,
            }, pk=event.pk, user=self.staff.investigator,
                reason="The subject died: grade, outcome and end date updated")
        self.at(self.now + dt.timedelta(minutes=25), self.death_report, died_on, cause, event)

    def death_report(self, died_on: dt.date, cause: str, event: AdverseEvent | None) -> None:
        self.save(Death, {
            "died_on": died_on, "primary_cause": cause, "related_adverse_event": event,
            "autopsy": False,
            "relationship_to_product": self.rng.choice(("not_related", "unlikely")),
        }, user=self.staff.investigator)
        self.at(self.now + dt.timedelta(minutes=10), self.terminate, "death", died_on)

    def terminate(self, reason: str, on: dt.date) -> None:
        self.save(EarlyTermination, {
            "terminated_on": on, "reason": reason,
            "last_dose_infusion_number": self.infusions_given,
            "comments": {"withdrew_consent": "The subject withdrew consent for further visits.",
                         "investigator_decision": "Stopped by the investigator for safety.",
                         "lost_to_follow_up": "No contact despite repeated calls.",
                         "death": "See the death report."}[reason],
        }, user=self.staff.investigator)
        status = SubjectStatus.DIED if reason == "death" else SubjectStatus.WITHDRAWN
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=status, user=self.staff.investigator,
            reason={"death": "The subject died", "lost_to_follow_up": "Lost to follow-up",
                    "withdrew_consent": "The subject withdrew consent",
                    "investigator_decision": "Terminated by the investigator"}[reason])

    def complete(self) -> None:
        self.subject = visit_services.subject_set_status(
            subject=self.subject, status=SubjectStatus.COMPLETED, user=self.staff.investigator,
            reason="Completed the Day 180 visit")
        if self.trial.next_turn(self.site.code, "sign") % SIGN_EVERY == 0:
            self.at(self.later(self.now, 3, 10), self.sign_casebook)

    # -- source data verification, signature, lock --

    def monitor_visit(self) -> None:
        """The monitor verifies against source what eligibility rests on (the screening
        NIHSS and the stroke's onset and imaging) and every serious adverse event so far."""
        screening = self.visits[protocol.SCREENING_VISIT.code]
        records = [*NIHSS.objects.filter(subject=self.subject, visit=screening),
                   *StrokeEvent.objects.filter(subject=self.subject),
                   *AdverseEvent.objects.filter(subject=self.subject, is_serious=True)
                   .order_by("pk")]
        for record in records:
            if record.status == CRFStatus.COMPLETE and record.sdv_status != SDVStatus.VERIFIED:
                crf_verify(crf=record, user=self.staff.monitor)

    def _pending(self) -> list[dt.datetime]:
        return [moment for moment, *_rest in self._queue if moment <= self.trial.snapshot]

    def sign_casebook(self) -> None:
        """The investigator signs the whole casebook with their password, once nothing else
        is due for the subject (a later change would break the signature)."""
        if pending := self._pending():
            self.at(max(pending) + dt.timedelta(days=1), self.sign_casebook)
            return
        casebook_sign(subject=self.subject, user=self.staff.investigator,
                      password=self.trial.password)
        if self.trial.next_turn(self.site.code, "lock") % LOCK_EVERY == 0:
            self.at(self.later(self.now, 1, 5), self.lock_casebook)

    def lock_casebook(self) -> None:
        """The data manager locks the signed casebook once nothing else is due for the subject
        (a lock refuses every later edit)."""
        if pending := self._pending():
            self.at(max(pending) + dt.timedelta(days=1), self.lock_casebook)
            return
        lock_create(user=self.trial.data_manager, scope=LockScope.SUBJECT,
                    target=self.subject, reason="Casebook complete and signed")


# --- Setting up: sites, accounts, lab ranges, the randomization list --------------------------


def _site(code: str, number: int) -> Site:
    site = Site.objects.filter(code=code).first()
    if site is None:
        city = SITE_CITIES[(number - 1) % len(SITE_CITIES)]
        site = Site(code=code, name=f"{city} Stroke Centre (synthetic)",
                    time_zone=SITE_TIME_ZONE)
        site.full_clean()
        site._change_reason = "Synthetic trial"
        site.save()
    return site


def _user(username: str, role: str, sites: list[Site], password_hash: str,
          first: str, last: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, role=role, first_name=first, last_name=last,
                    email=f"{username}@example.org", password=password_hash)
        user._change_reason = "Synthetic trial"
        user.save()
        user.sites.set(sites)
    return user


def _member(role: str, site: Site | None) -> User | None:
    """The account that already does ``role``'s work (at ``site``), first by username: a trial
    generated beside the demo accounts is entered by them."""
    accounts = User.objects.filter(role=role, is_active=True)
    if site is not None:
        accounts = accounts.filter(sites=site)
    return accounts.order_by("username").first()


# Site lab reference ranges: analyte, sex ("" for both), low, high.
LAB_RANGES = (
    ("ast", "", 0, 40), ("alt", "", 0, 40), ("bilirubin", "", 0, 21),
    ("creatinine", "M", 57, 111), ("creatinine", "F", 41, 81),
    ("hemoglobin", "M", 130, 175), ("hemoglobin", "F", 115, 150),
    ("wbc", "", "3.5", "9.5"), ("platelets", "", 125, 350), ("glucose", "", "3.9", "6.1"),
    ("inr", "", "0.8", "1.2"), ("d_dimer", "", 0, "0.55"), ("fibrinogen", "", 2, 4),
)


def _lab_ranges(site: Site) -> None:
    if LabReferenceRange.objects.filter(site=site).exists():
        return
    for analyte, sex, low, high in LAB_RANGES:
        reference = LabReferenceRange(site=site, analyte=analyte, sex=sex, low=Decimal(low),
                                      high=Decimal(high), effective_from=dt.date(2020, 1, 1))
        reference.full_clean()
        reference._change_reason = "Synthetic trial: site laboratory ranges"
        reference.save()


def _setup(site_codes: list[str], plans: list[SubjectPlan], seed: int, password: str
           ) -> tuple[dict[str, Site], dict[str, Staff], User]:
    """Sites, accounts (the existing ones of each role and site, else new ones with
    ``password``), laboratory ranges and the randomization rows the plan needs."""
    password_hash = make_password(password)
    sites = {code: _site(code, number) for number, code in enumerate(site_codes, start=1)}

    def account(role: str, site: Site | None, username: str, first: str, last: str) -> User:
        return _member(role, site) or _user(username, role, [site] if site else [],
                                            password_hash, first, last)

    staff = {}
    for number, (code, site) in enumerate(sites.items()):
        name = code.lower()
        surname = SURNAMES[number % len(SURNAMES)]
        staff[code] = Staff(
            nurse=account(Role.SITE_STAFF, site, f"nurse.{name}", surname, "Na"),
            investigator=account(Role.INVESTIGATOR, site, f"investigator.{name}", surname,
                                 "Wei"),
            monitor=account(Role.MONITOR, site, f"monitor.{name}", "Zhang", "Min"),
        )
        _lab_ranges(site)
    data_manager = account(Role.DATA_MANAGER, None, DATA_MANAGER, "Liu", "Yang")
    statistician = account(Role.UNBLINDED_STATISTICIAN, None, STATISTICIAN, "Huang", "Fang")
    _randomization_rows(sites, plans, seed, statistician)
    return sites, staff, data_manager


def _randomization_rows(sites: dict[str, Site], plans: list[SubjectPlan], seed: int,
                        statistician: User) -> None:
    """Use the list already loaded for a site if it has a free row for every subject the plan
    randomizes there; load a list (from the seed) for the sites that have none, numbered after
    the rows and kits already loaded."""
    needed = Counter((p.site_code, stratum_for_nihss(p.nihss)) for p in plans
                     if p.fate == RANDOMIZED)
    listed = set(RandomizationSlot.objects.filter(site__in=sites.values())
                 .values_list("site__code", flat=True))
    free = Counter(RandomizationSlot.objects.filter(site__in=sites.values(), subject=None)
                   .values_list("site__code", "stratum"))
    short = sorted(f"{code} {stratum}" for (code, stratum), count in needed.items()
                   if code in listed and free[code, stratum] < count)
    if short:
        raise SyntheticTrialError(
            "The randomization list loaded has too few free rows for this trial at "
            + ", ".join(short) + ": give fewer subjects or other sites.")
    unlisted = [code for code in sites if code not in listed]
    if not unlisted:
        return
    rows = generate_list(site_codes=unlisted, rows_per_stratum=max(
        [6, *(count for (code, _s), count in needed.items() if code in unlisted)]), seed=seed)
    visit_services.randomization_list_import(
        rows=_after_loaded(rows), list_name=f"synthetic list (seed {seed})", user=statistician)


def _after_loaded(rows: list[ListRow]) -> list[ListRow]:
    """``rows`` renumbered after the randomization numbers already loaded, each kit number
    taken by a loaded row replaced by the next free one (nothing changes in an empty
    database)."""
    loaded = RandomizationSlot.objects.values_list("randomization_number", "kit_1", "kit_2",
                                                  "kit_3")
    if not loaded.exists():
        return rows
    numbers, kits = set(), set()
    for number, *row_kits in loaded:
        numbers.add(number)
        kits.update(row_kits)
    offset = max(int(n[len(RANDOMIZATION_NUMBER_PREFIX):]) for n in numbers
                 if n[len(RANDOMIZATION_NUMBER_PREFIX):].isdigit())
    digits = max(RANDOMIZATION_NUMBER_DIGITS, len(str(offset + len(rows))))
    taken = kits | {kit for row in rows for kit in row.kit_numbers}
    spare = (str(n) for n in itertools.count(KIT_NUMBER_MIN) if str(n) not in taken)
    renumbered = []
    for index, row in enumerate(rows, start=1):
        renumbered.append(dataclasses.replace(
            row, randomization_number=f"{RANDOMIZATION_NUMBER_PREFIX}{offset + index:0{digits}d}",
            kit_numbers=tuple(next(spare) if kit in kits else kit for kit in row.kit_numbers)))
    return renumbered


@dataclasses.dataclass
class TrialSummary:
    subjects: Counter
    visits_done: int
    visits_missed: int
    crfs: int
    crf_history_rows: int
    queries: Counter
    requeried: int
    system_queries: int
    manual_queries: int
    adverse_events: int
    serious_adverse_events: int
    medications: int
    deviations: int
    verified_forms: int
    signed_casebooks: int
    locked_subjects: int
    seconds: float = 0.0
    digest: str = ""
    # Who entered the data: "username (role, sites)", the accounts made for it included.
    accounts: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        statuses = ", ".join(f"{SubjectStatus(s).label.lower()} {n}"
                             for s, n in sorted(self.subjects.items()))
        queries = ", ".join(f"{QueryStatus(s).label.lower()} {self.queries[s]}"
                            for s in QueryStatus.values)
        return [
            f"Subjects: {sum(self.subjects.values())} ({statuses})",
            f"Visits: {self.visits_done} done, {self.visits_missed} missed",
            f"CRFs: {self.crfs} ({self.crf_history_rows} history rows)",
            f"Queries: {sum(self.queries.values())} ({queries}; {self.requeried} re-queried; "
            f"{self.system_queries} by edit checks, {self.manual_queries} manual)",
            f"Adverse events: {self.adverse_events} ({self.serious_adverse_events} serious); "
            f"concomitant medications: {self.medications}; protocol deviations: "
            f"{self.deviations}",
            f"Sign-off: {self.verified_forms} forms source-verified, {self.signed_casebooks} "
            f"casebooks signed, {self.locked_subjects} subjects locked",
            f"Seconds: {self.seconds:.1f}",
            f"Digest of the clinical data: {self.digest}",
        ]


def trial_summary() -> TrialSummary:
    return TrialSummary(
        subjects=Counter(Subject.objects.values_list("status", flat=True)),
        visits_done=Visit.objects.filter(actual_date__isnull=False).count(),
        visits_missed=Visit.objects.filter(is_missed=True).count(),
        crfs=sum(model.objects.count() for model in CRF_MODELS.values()),
        crf_history_rows=sum(model.history.count() for model in CRF_MODELS.values()),
        queries=Counter(Query.objects.values_list("status", flat=True)),
        requeried=Query.objects.filter(messages__kind=MessageKind.REQUERIED).distinct().count(),
        system_queries=Query.objects.exclude(check_code="").count(),
        manual_queries=Query.objects.filter(check_code="").count(),
        adverse_events=AdverseEvent.objects.count(),
        serious_adverse_events=AdverseEvent.objects.filter(is_serious=True).count(),
        medications=ConcomitantMedication.objects.count(),
        deviations=ProtocolDeviation.objects.count(),
        verified_forms=sum(model.objects.filter(sdv_status=SDVStatus.VERIFIED).count()
                           for model in CRF_MODELS.values()),
        signed_casebooks=Signature.objects.filter(visit=None, is_broken=False).count(),
        locked_subjects=Lock.objects.filter(scope=LockScope.SUBJECT,
                                            unlocked_at__isnull=True).count(),
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
    with override_settings(DEBUG=False), Clock(opened) as clock:
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


# --- Fingerprint ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return value


def trial_digest() -> str:
    """SHA-256 of the clinical data (subjects, identities, visits, every CRF with the reasons
    and authors of its history, every query with its messages), keyed by screening number,
    visit and order of entry rather than database ids and leaving out when rows were saved:
    the same seed, subjects and as-of date give the same digest in any fresh database."""
    content: dict[str, Any] = {}
    subjects = dict(Subject.objects.values_list("pk", "screening_number"))
    visits = {pk: f"{subjects[subject]}/{code}{sequence or ''}"
              for pk, subject, code, sequence in Visit.objects.values_list(
                  "pk", "subject_id", "code", "sequence")}
    content["subjects"] = [
        [s.screening_number, s.subject_id, s.status, _plain(s.screened_at),
         _plain(s.consented_at), s.consent_signed_by, s.consent_form_version,
         s.age_at_consent, s.screen_failure_criteria, _plain(s.randomized_at),
         s.randomization_number]
        for s in Subject.objects.order_by("screening_number")
    ]
    content["identities"] = sorted(
        [subjects[i.subject_id], i.full_name, str(i.birth_date), i.hospital_record_number,
         i.phone] for i in SubjectIdentity.objects.all())
    content["visits"] = sorted(
        [visits[v.pk], str(v.planned_date), str(v.actual_date), v.is_missed, v.missed_reason]
        for v in Visit.objects.all())
    keys: dict[tuple[int, int], str] = {}
    for code, model in CRF_MODELS.items():
        content_type = ContentType.objects.get_for_model(model)
        history: dict[int, list] = {}
        for pk, kind, reason, author in model.history.order_by("history_id").values_list(
                "id", "history_type", "history_change_reason", "history_user__username"):
            history.setdefault(pk, []).append([kind, reason, author])
        rows = []
        ordinal: Counter = Counter()
        for record in model.objects.order_by("subject__screening_number", "pk"):
            where = (visits[record.visit_id] if record.visit_id
                     else f"{subjects[record.subject_id]}/log")
            ordinal[where] += 1
            key = f"{where}/{code}/{ordinal[where]}"
            keys[(content_type.pk, record.pk)] = key
            rows.append([key, record.status, record.not_done_reason, record.missing_items,
                         [_plain(getattr(record, name)) for name in model.item_names()],
                         history.get(record.pk, [])])
        content[code] = rows
    visit_type = ContentType.objects.get_for_model(Visit).pk
    queries = []
    for query in Query.objects.prefetch_related(models.Prefetch(
            "messages", queryset=QueryMessage.objects.select_related("author"))):
        target = (visits[query.object_id] if query.content_type_id == visit_type
                  else keys[(query.content_type_id, query.object_id)])
        messages = [[m.kind, m.text, m.author.username if m.author else None, _plain(m.at)]
                    for m in query.messages.all()]
        queries.append([target, query.field_name, query.check_code, query.status,
                        query.resolution, query.text, _plain(query.raised_at), messages])
    content["queries"] = sorted(queries, key=json.dumps)
    encoded = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
