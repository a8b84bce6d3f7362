"""Seed a demo trial: sites, one user per role, and a synthetic trial of about 30 subjects at
those sites (``forms.synthetic``, what ``seed_trial`` builds) entered by these users through the
service layer: visits done, missed, due and upcoming, adverse events (serious ones among them),
queries in every state, source-verified forms, signed and locked casebooks.

Idempotent: what exists is left as it is, so a second run changes nothing (the trial is only
generated while the demo sites hold no subject).
"""

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from edc.history import SYSTEM, audited_save, system_writes
from edc.models import Site, User
from edc.roles import Role
from forms import synthetic
from visits import services
from visits.models import RandomizationSlot, Subject
from visits.randomization import generate_list

SITES = [
    ("SZ01", "Shenzhen Second People's Hospital (demo)", "Asia/Shanghai"),
    ("GZ02", "Guangzhou First People's Hospital (demo)", "Asia/Shanghai"),
    ("WH03", "Wuhan Union Hospital (demo)", "Asia/Shanghai"),
]

# username, role, sites, first name, last name
USERS = [
    ("nurse", Role.SITE_STAFF, ["SZ01"], "Li", "Na"),
    ("investigator", Role.INVESTIGATOR, ["SZ01"], "Wang", "Wei"),
    ("nurse.gz", Role.SITE_STAFF, ["GZ02"], "Chen", "Jing"),
    ("nurse.wh", Role.SITE_STAFF, ["WH03"], "Xu", "Hui"),
    ("monitor", Role.MONITOR, ["SZ01", "GZ02"], "Zhang", "Min"),
    ("datamanager", Role.DATA_MANAGER, [], "Liu", "Yang"),
    ("pharmacist", Role.UNBLINDED_PHARMACIST, ["SZ01"], "Zhao", "Lei"),
    ("statistician", Role.UNBLINDED_STATISTICIAN, [], "Huang", "Fang"),
    ("admin", Role.ADMINISTRATOR, [], "Sun", "Qiang"),
]


# The people at the Chinese sites (nurses, investigators) read the demo in Simplified Chinese;
# monitors, data managers, the pharmacist, the statistician and the administrator in English.
# Each can switch in the header or on "My settings".
CHINESE_READERS = (Role.SITE_STAFF, Role.INVESTIGATOR)


def demo_language(role: str) -> str:
    return "zh-hans" if role in CHINESE_READERS else "en"


def demo_password(username: str) -> str:
    """Every demo account shares one password, which meets the password policy."""
    return "Stroke-Demo-2026!"


# The demo trial: a synthetic trial (forms.synthetic, as ``seed_trial`` builds) at the demo's
# sites, entered by the demo accounts through the service layer, up to yesterday.
DEMO_SUBJECTS = 30
DEMO_TRIAL_SEED = 7


class Command(BaseCommand):
    help = ("Create a demo trial: sites, one user per role (credentials printed), and about 30 "
            "subjects entered by them up to yesterday.")

    def handle(self, *args, **options) -> None:
        # The seeding is the system's work: the demo's sites and accounts have no author, and
        # the synthetic trial's own set-up writes are made in system_writes().
        with system_writes():
            self._seed()

    def _seed(self) -> None:
        with transaction.atomic():
            sites = {code: self._site(code, name, tz) for code, name, tz in SITES}
            users = {}
            for username, role, site_codes, first, last in USERS:
                member_of = [sites[c] for c in site_codes]
                users[username] = self._user(username, role, member_of, first, last)
            self._randomization_list(sites, users["statistician"])
        accounts = []
        if not Subject.objects.filter(site__in=sites.values()).exists():
            today = timezone.localdate(timezone.now(), ZoneInfo(synthetic.SITE_TIME_ZONE))
            with override_settings(
                    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                summary = synthetic.trial_generate(
                    subjects=DEMO_SUBJECTS, seed=DEMO_TRIAL_SEED,
                    as_of=today - dt.timedelta(days=1), site_codes=list(sites),
                    password=demo_password(""))
            self.stdout.write(f"Demo trial entered up to {today - dt.timedelta(days=1)}:")
            for line in summary.lines():
                self.stdout.write(f"  {line}")
            demo_names = {username for username, *_rest in USERS}
            accounts = [line for line in summary.accounts
                        if line.split(" ", 1)[0] not in demo_names]
            self._synthetic_accounts_language()
        self.stdout.write(self.style.SUCCESS("Demo trial ready. Log in with:"))
        for username, role, site_codes, _first, _last in USERS:
            where = ", ".join(site_codes) or "all sites"
            self.stdout.write(
                f"  {username:<13} {demo_password(username):<26} {role.label} ({where}), "
                f"{dict(settings.LANGUAGES)[demo_language(role)]}"
            )
        for line in accounts:
            self.stdout.write(f"  also {line}, same password")

    def _site(self, code: str, name: str, time_zone: str) -> Site:
        site = Site.objects.filter(code=code).first()
        if site is None:
            site = Site(code=code, name=name, time_zone=time_zone)
            audited_save(site, user=SYSTEM, reason="Demo seed")
        return site

    def _user(self, username, role, sites, first, last) -> User:
        user = User.objects.filter(username=username).first()
        if user is not None:
            return user
        user = User(
            username=username,
            role=role,
            first_name=first,
            last_name=last,
            email=f"{username}@example.org",
            is_staff=role == Role.ADMINISTRATOR,
            is_superuser=role == Role.ADMINISTRATOR,
            language=demo_language(role),
        )
        user.set_password(demo_password(username))
        audited_save(user, user=SYSTEM, reason="Demo seed", clean=False)
        user.sites.set(sites)
        return user

    def _synthetic_accounts_language(self) -> None:
        """The synthetic trial's further accounts read as the demo's own (``demo_language``):
        site people Chinese, the others English."""
        for user in User.objects.filter(language=""):
            user.language = demo_language(user.role)
            audited_save(user, user=SYSTEM, reason="Demo seed", clean=False,
                         update_fields=["language"])

    def _randomization_list(self, sites: dict[str, Site], statistician: User) -> None:
        if RandomizationSlot.objects.exists():
            return
        rows = generate_list(site_codes=sorted(sites), rows_per_stratum=24, seed=20260101)
        services.randomization_list_import(rows=rows, list_name="demo list (seed 20260101)",
                                           user=statistician)
