"""Visit reminders (issue 7.1): a daily digest to each site staff member of the visits at their
sites that are due, that close their window soon, or that are overdue.

Statuses come from ``visits.schedule.visit_status`` on each site's local date, as on the home
page and the subject matrix, so a reminder never disagrees with what the pages show. A visit
the site marked missed, one that happened, and the visits of a subject off study need nobody.
Reads are set-based: one query for the open visits, one for the recipients.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Prefetch, Q
from django.urls import reverse
from django.utils.translation import gettext_noop

from edc.i18n import Joined, Text
from edc.models import Site, User
from edc.notifications import Item, Outcome, notify
from edc.roles import Role
from visits import schedule
from visits.models import ON_STUDY_STATUSES, Visit

VISIT_DIGEST = "visit-digest"
# Who receives the digest: the people who enter the visits at the site.
DIGEST_ROLES = (Role.SITE_STAFF, Role.INVESTIGATOR)


@dataclass(frozen=True)
class VisitReminder:
    visit: Visit
    status: schedule.VisitStatus
    today: dt.date

    @property
    def closing(self) -> bool:
        """Due, and the window ends within the reminder horizon (last day included)."""
        return (self.status == schedule.VisitStatus.DUE and self.visit.window_end is not None
                and (self.visit.window_end - self.today).days
                <= settings.VISIT_REMINDER_DAYS_BEFORE_WINDOW_END)

    @property
    def label(self) -> str:
        """The reminder's word for the visit's state (a message id: ``line`` renders it in
        the reader's language)."""
        if self.status == schedule.VisitStatus.OVERDUE:
            return gettext_noop("overdue")
        if self.closing:
            return (gettext_noop("last day") if self.visit.window_end == self.today
                    else gettext_noop("window closing"))
        return gettext_noop("due")

    def line(self) -> Text:
        """The visit in the reader's language (``edc.i18n.Text``)."""
        visit = self.visit
        window = (Text(gettext_noop("window %(start)s to %(end)s"),
                       start=f"{visit.window_start:%Y-%m-%d}", end=f"{visit.window_end:%Y-%m-%d}")
                  if visit.window_end else Text(gettext_noop("no window")))
        return Text(gettext_noop("%(site)s %(subject)s: %(visit)s %(status)s (%(window)s)"),
                    site=visit.subject.site.code, subject=visit.subject,
                    visit=lambda: visit.label,
                    status=Text(self.label), window=window)


def visits_to_remind(*, now: dt.datetime) -> list[VisitReminder]:
    """Open visits of subjects on study, with their status on each site's local date; visits
    not yet in their window are left out."""
    todays = {site.pk: schedule.local_date(now, site.zone) for site in Site.objects.all()}
    if not todays:
        return []
    latest = max(todays.values())
    visits = (
        Visit.objects.filter(actual_date__isnull=True, is_missed=False,
                             subject__status__in=ON_STUDY_STATUSES)
        .filter(Q(window_start__isnull=True) | Q(window_start__lte=latest))
        .select_related("subject__site")
        # Only what a reminder line and the status need: loading whole rows of thousands of
        # visits, subjects and sites was most of the job's time.
        .only("code", "sequence", "window_start", "window_end", "actual_date", "is_missed",
              "subject__status", "subject__subject_id", "subject__screening_number",
              "subject__site__code", "subject__site__time_zone")
        .order_by("subject__site__code", "subject__screening_number", "window_end", "pk")
    )
    found = []
    for visit in visits:
        today = todays[visit.subject.site_id]
        status = visit.status_on(today)
        if status in (schedule.VisitStatus.DUE, schedule.VisitStatus.OVERDUE):
            found.append(VisitReminder(visit=visit, status=status, today=today))
    return found


def visit_reminders_send(*, now: dt.datetime, dry_run: bool = False) -> Outcome:
    """One digest per site staff member per site-local day, listing every visit at their sites
    that needs them today."""
    outcome = Outcome()
    reminders = visits_to_remind(now=now)
    by_site: dict[int, list[VisitReminder]] = {}
    for reminder in reminders:
        by_site.setdefault(reminder.visit.subject.site_id, []).append(reminder)
    if not by_site:
        return outcome
    users = (
        User.objects.filter(is_active=True, role__in=DIGEST_ROLES, sites__in=list(by_site))
        .distinct().order_by("pk")
        .prefetch_related(Prefetch("sites", queryset=Site.objects.order_by("code")))
    )
    for user in users:
        sites = list(user.sites.all())
        mine = [r for site in sites for r in by_site.get(site.pk, [])]
        if not mine:
            continue
        local_day = schedule.local_date(now, sites[0].zone)
        overdue = sum(r.status == schedule.VisitStatus.OVERDUE for r in mine)
        item = Item(
            kind=VISIT_DIGEST,
            key=f"{VISIT_DIGEST}:{user.pk}:{local_day:%Y-%m-%d}",
            line=Joined("\n- ", [r.line() for r in mine]),
        )
        notify(
            outcome=outcome, items=[item], user=user, dry_run=dry_run, now=now,
            title=Text(gettext_noop("Visits to do: %(count)s (%(overdue)s overdue) on %(day)s"),
                       count=len(mine), overdue=overdue, day=f"{local_day:%Y-%m-%d}"),
            intro=Text(gettext_noop("These visits at your site are due, close their window soon "
                                    "or are overdue. Enter the visit date, or record that the "
                                    "visit did not take place.")),
            link=reverse("home"),
        )
    return outcome
