"""Seed a demo trial: sites, one user per role, subjects in several states.

Idempotent: what exists is left as it is, so a second run changes nothing.
"""

import datetime as dt

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from edc import protocol
from edc.models import Site, User
from edc.roles import Role
from visits import services
from visits.models import ConsentSigner, RandomizationSlot, Subject, SubjectStatus
from visits.randomization import STRATA, generate_list

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


def demo_password(username: str) -> str:
    """Every demo account shares one password, which meets the password policy."""
    return "Stroke-Demo-2026!"


# The demo leaves the second infusion visit unentered at one site (overdue) and marks the
# first Barthel follow-up missed for recent subjects.
SECOND_INFUSION = next(v.code for v in protocol.VISITS if v.infusion_number == 2)
FIRST_FOLLOW_UP = next(v.code for v in protocol.VISITS if "barthel" in v.crfs)

# Inclusion criterion on the screening NIHSS (see edc.protocol.ELIGIBILITY_CRITERIA).
NIHSS_CRITERION = next(c.code for c in protocol.ELIGIBILITY_CRITERIA if "NIHSS" in str(c.text))

DEMO_PEOPLE = [
    ("Chen Jianguo", dt.date(1958, 3, 14)), ("Li Xiuying", dt.date(1961, 11, 2)),
    ("Zhang Wei", dt.date(1966, 7, 21)), ("Wang Guilan", dt.date(1955, 1, 9)),
    ("Liu Yang", dt.date(1970, 9, 30)), ("Huang Min", dt.date(1963, 5, 5)),
    ("Zhao Lei", dt.date(1959, 12, 24)), ("Wu Fang", dt.date(1968, 2, 11)),
]

# Subjects per site: (days since consent, what happened next)
SUBJECTS = {
    "SZ01": [
        (100, "randomized"),
        (40, "randomized"),
        (9, "randomized"),
        (1, "randomized"),
        (0, "screening"),
        (3, "screen_failed"),
        (60, "withdrawn"),
    ],
    "GZ02": [(35, "randomized"), (12, "randomized"), (0, "screening"), (2, "screen_failed"),
             (0, "unconsented")],
    "WH03": [(5, "randomized")],
}


class Command(BaseCommand):
    help = "Create a demo trial: sites, one user per role (credentials printed), subjects."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        sites = {code: self._site(code, name, tz) for code, name, tz in SITES}
        users = {}
        for username, role, site_codes, first, last in USERS:
            member_of = [sites[c] for c in site_codes]
            users[username] = self._user(username, role, member_of, first, last)
        self._randomization_list(sites, users["statistician"])
        for code, plan in SUBJECTS.items():
            if Subject.objects.filter(site=sites[code]).exists():
                continue
            staff = next(u for u in users.values()
                         if u.role == Role.SITE_STAFF and u.sites.filter(code=code).exists())
            for days_ago, outcome in plan:
                self._subject(sites[code], staff, days_ago, outcome)
        self.stdout.write(self.style.SUCCESS("Demo trial ready. Log in with:"))
        for username, role, site_codes, _first, _last in USERS:
            where = ", ".join(site_codes) or "all sites"
            self.stdout.write(
                f"  {username:<13} {demo_password(username):<26} {role.label} ({where})"
            )

    def _site(self, code: str, name: str, time_zone: str) -> Site:
        site = Site.objects.filter(code=code).first()
        if site is None:
            site = Site(code=code, name=name, time_zone=time_zone)
            site.full_clean()
            site._change_reason = "Demo seed"
            site.save()
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
        )
        user.set_password(demo_password(username))
        user._change_reason = "Demo seed"
        user.save()
        user.sites.set(sites)
        return user

    def _randomization_list(self, sites: dict[str, Site], statistician: User) -> None:
        if RandomizationSlot.objects.exists():
            return
        rows = generate_list(site_codes=sorted(sites), rows_per_stratum=24, seed=20260101)
        services.randomization_list_import(rows=rows, list_name="demo list (seed 20260101)",
                                           user=statistician)

    def _subject(self, site: Site, staff: User, days_ago: int, outcome: str) -> None:
        now = timezone.now()
        consented_at = now - dt.timedelta(days=days_ago, hours=2)
        number = Subject.objects.filter(site=site).count()
        name, born = DEMO_PEOPLE[(number + len(site.code) * 3) % len(DEMO_PEOPLE)]
        subject = services.subject_screen(
            site=site, screened_at=consented_at - dt.timedelta(minutes=40), user=staff,
            identity={"full_name": name, "birth_date": born,
                      "hospital_record_number": f"{site.code}{880000 + number}",
                      "phone": f"1380000{number:04d}"},
        )
        if outcome == "unconsented":
            return
        subject = services.subject_consent(
            subject=subject, consented_at=consented_at, signed_by=ConsentSigner.SUBJECT,
            form_version="v2.0 2026-01-15", user=staff,
        )
        today = timezone.localdate(now, site.zone)
        screening = subject.visits.get()
        if screening.planned_date < today:
            services.visit_record_date(
                visit=screening, actual_date=screening.planned_date, user=staff
            )
        if outcome == "screen_failed":
            services.subject_set_status(
                subject=subject,
                status=SubjectStatus.SCREEN_FAILED,
                user=staff,
                reason="NIHSS 6 at screening",
                failed_criteria=[NIHSS_CRITERION],
            )
            return
        if outcome == "screening":
            return
        subject = services.randomization_allocate(
            subject=subject,
            stratum=STRATA[number % len(STRATA)],
            randomized_at=consented_at + dt.timedelta(hours=1),
            user=staff,
        )
        # Visits planned before today took place on their planned date, with the exceptions
        # above.
        for visit in subject.visits.filter(actual_date__isnull=True).order_by("planned_date"):
            if visit.planned_date >= today:
                continue
            if visit.code == SECOND_INFUSION and site.code == "GZ02":
                continue
            if visit.code == FIRST_FOLLOW_UP and days_ago < 50:
                services.visit_mark_missed(
                    visit=visit, reason="Subject unreachable by phone", user=staff
                )
                continue
            services.visit_record_date(visit=visit, actual_date=visit.planned_date, user=staff)
        if outcome == "withdrawn":
            services.subject_set_status(
                subject=subject,
                status=SubjectStatus.WITHDRAWN,
                user=staff,
                reason="Consent withdrawn by the subject",
            )
