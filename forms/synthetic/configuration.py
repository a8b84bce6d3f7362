"""Setting up: sites, accounts, the sites' laboratory ranges, the randomization list (configuration,
saved with its history the way ``seed_demo`` and the administrators save it)."""

import dataclasses
import datetime as dt
import itertools
from collections import Counter
from decimal import Decimal

from django.contrib.auth.hashers import make_password

from edc.history import SYSTEM, audited_save
from edc.models import Site, User
from edc.roles import Role
from forms.models import (
    LabReferenceRange,
)
from forms.synthetic.clock import Staff, SyntheticTrialError
from forms.synthetic.plan import (
    DATA_MANAGER,
    RANDOMIZED,
    SITE_CITIES,
    SITE_TIME_ZONE,
    STATISTICIAN,
    SubjectPlan,
)
from forms.synthetic.values import SURNAMES
from visits import services as visit_services
from visits.models import (
    RandomizationSlot,
)
from visits.randomization import (
    KIT_NUMBER_MIN,
    RANDOMIZATION_NUMBER_DIGITS,
    RANDOMIZATION_NUMBER_PREFIX,
    ListRow,
    generate_list,
    stratum_for_nihss,
)


def _site(code: str, number: int) -> Site:
    site = Site.objects.filter(code=code).first()
    if site is None:
        city = SITE_CITIES[(number - 1) % len(SITE_CITIES)]
        site = Site(code=code, name=f"{city} Stroke Centre (synthetic)",
                    time_zone=SITE_TIME_ZONE)
        audited_save(site, user=SYSTEM, reason="Synthetic trial")
    return site


def _user(username: str, role: str, sites: list[Site], password_hash: str,
          first: str, last: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, role=role, first_name=first, last_name=last,
                    email=f"{username}@example.org", password=password_hash)
        audited_save(user, user=SYSTEM, reason="Synthetic trial", clean=False)
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
        audited_save(reference, user=SYSTEM, reason="Synthetic trial: site laboratory ranges")


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
