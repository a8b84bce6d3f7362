"""The clock every service sees, the staff who enter the data, what the subjects share, and
each subject's transaction."""

import dataclasses
import datetime as dt
from collections import Counter
from contextlib import ExitStack

from django.db import transaction

from edc.audit import chain_batch
from edc.models import Site, User
from forms.synthetic.plan import MANUAL_QUERY_PATHS, PASSWORD, SYSTEM_QUERY_PATHS


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


def _subject_block() -> ExitStack:
    """A transaction of a subject's run whose history rows are linked in the audit chain
    together when it ends (``edc.audit.chain_batch``: per table one locking read of the
    chain's head and one INSERT of the links, not two statements per row). Closed in reverse:
    the links are written before the transaction commits."""
    block = ExitStack()
    block.enter_context(transaction.atomic())
    block.enter_context(chain_batch())
    return block
