"""The trial's parameters (rates, turns, sites' time zone) and its plan: who is screened when,
and what becomes of them (pure, from the seed)."""

import dataclasses
import datetime as dt
import random
from zoneinfo import ZoneInfo

from edc import protocol

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
