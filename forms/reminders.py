"""Reminders about CRF data (issue 7.2, 7.3): serious adverse events and ageing queries.

**Serious adverse events** (ICH E2A; PROTOCOL.md "Adverse events"): the sponsor must have the
report within 24 hours of the site becoming aware (``AdverseEvent.site_aware_at``; the time
the form was first saved stands in until it is entered). When an event is saved as serious,
the sponsor's safety contact and the data managers are told at once
(:func:`forms.tasks.sae_saved` queues the task after the commit). The periodic job tells them
too if that task was lost, reminds
the site staff as the deadline nears (``SAE_REMINDER_HOURS_LEFT``) and, once it has passed,
tells the data managers every day, until the report is submitted: the AE form is complete.

**Queries**: an open query older than ``QUERY_OPEN_REMIND_AFTER_DAYS`` reminds the site staff,
an answered query waiting longer than ``QUERY_ANSWERED_REMIND_AFTER_DAYS`` reminds whoever
raised it (the data managers for a query raised by an edit check); again at every multiple of
the threshold while nothing changes.

Mails name the subject, the site and the event, never the treatment arm.
"""

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from edc.i18n import Joined, Text
from edc.models import User
from edc.notifications import Item, Outcome, notify
from edc.roles import Role
from forms.models import AdverseEvent, CRFStatus
from forms.quality.queries import Query, QueryStatus
from visits import schedule

logger = logging.getLogger(__name__)

SAE_INITIAL = "sae-initial"
SAE_REMINDER = "sae-reminder"
SAE_ESCALATION = "sae-escalation"
QUERY_OPEN = "query-open"
QUERY_ANSWERED = "query-answered"
SITE_ROLES = (Role.SITE_STAFF, Role.INVESTIGATOR)
# A submitted report needs no more reminders; the initial notice is still caught up for an
# event saved serious within this many days (e.g. while the broker was down).
SAE_CATCH_UP_DAYS = 7


def _site_users(site_ids) -> dict[int, list[User]]:
    users = (User.objects.filter(is_active=True, role__in=SITE_ROLES, sites__in=list(site_ids))
             .distinct().order_by("pk").prefetch_related("sites"))
    by_site: dict[int, list[User]] = defaultdict(list)
    for user in users:
        for site in user.sites.all():
            by_site[site.pk].append(user)
    return by_site


def _data_managers() -> list[User]:
    return list(User.objects.filter(is_active=True, role=Role.DATA_MANAGER).order_by("pk"))


# --- Serious adverse events --------------------------------------------------------------------


def sae_deadline(ae: AdverseEvent) -> dt.datetime:
    """24 hours (``SAE_REPORT_HOURS``) after the site became aware of the event."""
    aware = ae.site_aware_at or ae.created_at
    return aware + dt.timedelta(hours=settings.SAE_REPORT_HOURS)


def sae_is_submitted(ae: AdverseEvent) -> bool:
    return ae.status == CRFStatus.COMPLETE


def _local(moment: dt.datetime, ae: AdverseEvent) -> str:
    site = ae.subject.site
    return f"{moment.astimezone(site.zone):%Y-%m-%d %H:%M} ({site.time_zone})"


def _sae_line(ae: AdverseEvent) -> Text:
    """The event in the reader's language (``edc.i18n.Text``): seriousness criteria by their
    labels, times in the site's zone."""
    subject = ae.subject
    aware = (_local(ae.site_aware_at, ae) if ae.site_aware_at
             else Text(gettext_noop("not entered yet")))
    criteria = (Joined(", ", [AdverseEvent._meta.get_field(name).verbose_name
                              for name in ae.serious_criteria()])
                if ae.serious_criteria() else Text(gettext_noop("not ticked yet")))
    grade = (Text(gettext_noop(", CTCAE grade %(grade)s"), grade=ae.ctcae_grade)
             if ae.ctcae_grade else "")
    return Text(gettext_noop("%(site)s %(subject)s: %(term)s%(grade)s; seriousness: "
                             "%(criteria)s; site aware %(aware)s; report due by %(due)s"),
                site=subject.site.code, subject=subject,
                term=ae.term or Text(gettext_noop("adverse event")), grade=grade,
                criteria=criteria, aware=aware, due=_local(sae_deadline(ae), ae))


def _sae_link(ae: AdverseEvent) -> str:
    return reverse("forms:log_edit", args=[ae.subject_id, AdverseEvent.crf_code, ae.pk])


def _sae_initial(ae: AdverseEvent, *, outcome: Outcome, data_managers: list[User],
                 now: dt.datetime, dry_run: bool) -> None:
    item = Item(kind=SAE_INITIAL, key=f"{SAE_INITIAL}:{ae.pk}", line=_sae_line(ae))
    title = Text(gettext_noop("Serious adverse event at %(site)s: %(subject)s"),
                 site=ae.subject.site.code, subject=ae.subject)
    intro = Text(gettext_noop("A serious adverse event was recorded. The report is due within "
                              "24 hours of the site becoming aware of it."))
    common = {"outcome": outcome, "items": [item], "title": title, "intro": intro,
              "link": _sae_link(ae), "now": now, "dry_run": dry_run}
    if settings.SPONSOR_CONTACT_EMAIL:
        notify(email=settings.SPONSOR_CONTACT_EMAIL, **common)
    for user in data_managers:
        notify(user=user, **common)


def _serious_events():
    return AdverseEvent.objects.filter(is_serious=True).select_related("subject__site")


def sae_notify_initial(*, ae_id: int, now: dt.datetime | None = None,
                       dry_run: bool = False) -> Outcome:
    """Tell the sponsor and the data managers of a serious event, once."""
    outcome = Outcome()
    ae = _serious_events().filter(pk=ae_id).first()
    if ae is not None:
        _sae_initial(ae, outcome=outcome, data_managers=_data_managers(),
                     now=now or timezone.now(), dry_run=dry_run)
    return outcome


def sae_reminder_bucket(hours_left: float) -> int | None:
    """The reminder threshold (hours before the deadline) that ``hours_left`` has crossed."""
    for threshold in sorted(settings.SAE_REMINDER_HOURS_LEFT):
        if hours_left <= threshold:
            return threshold
    return None


def sae_reminders_send(*, now: dt.datetime, dry_run: bool = False) -> Outcome:
    outcome = Outcome()
    recent = now - dt.timedelta(days=SAE_CATCH_UP_DAYS)
    events = list(_serious_events().filter(~Q(status=CRFStatus.COMPLETE)
                                           | Q(updated_at__gte=recent)).order_by("pk"))
    if not events:
        return outcome
    data_managers = _data_managers()
    site_users = _site_users({ae.subject.site_id for ae in events})
    for ae in events:
        _sae_initial(ae, outcome=outcome, data_managers=data_managers, now=now,
                     dry_run=dry_run)
        if sae_is_submitted(ae):
            continue
        deadline = sae_deadline(ae)
        hours_left = (deadline - now).total_seconds() / 3600
        if hours_left > 0:
            bucket = sae_reminder_bucket(hours_left)
            if bucket is None:
                continue
            item = Item(kind=SAE_REMINDER, key=f"{SAE_REMINDER}:{ae.pk}:{bucket}h",
                        line=_sae_line(ae))
            recipients = site_users.get(ae.subject.site_id, [])
            title = Text(gettext_noop("SAE report due in less than %(hours)s hours: "
                                      "%(subject)s"), hours=bucket, subject=ae.subject)
            intro = Text(gettext_noop("Complete the adverse event form to submit the serious "
                                      "adverse event report."))
        else:
            day = int(-hours_left // 24)
            item = Item(kind=SAE_ESCALATION, key=f"{SAE_ESCALATION}:{ae.pk}:{day}",
                        line=_sae_line(ae))
            recipients = data_managers
            title = Text(gettext_noop("SAE report overdue: %(subject)s at %(site)s"),
                         subject=ae.subject, site=ae.subject.site.code)
            intro = Text(gettext_noop("The 24-hour deadline for this serious adverse event "
                                      "report has passed and the report is not submitted. "
                                      "Follow up with the site."))
        for user in recipients:
            notify(outcome=outcome, items=[item], user=user, title=title, intro=intro,
                   link=_sae_link(ae), now=now, dry_run=dry_run)
    return outcome


# --- Query ageing ------------------------------------------------------------------------------


def _query_line(query: Query, since: dt.datetime, what: Text, now: dt.datetime) -> Text:
    site = query.subject.site
    where = f"{query.crf_code or 'visit'}.{query.field_name}"
    visit = (Text(gettext_noop(" at %(visit)s"), visit=query.visit.code) if query.visit_id
             else "")
    return Text(gettext_noop("%(site)s %(subject)s%(visit)s, %(where)s: %(what)s %(days)s days "
                             "(since %(since)s)"),
                site=site.code, subject=query.subject, visit=visit, where=where, what=what,
                days=(now - since).days, since=schedule.local_date(since, site.zone))


def query_reminders_send(*, now: dt.datetime, dry_run: bool = False) -> Outcome:
    outcome = Outcome()
    open_after = settings.QUERY_OPEN_REMIND_AFTER_DAYS
    answered_after = settings.QUERY_ANSWERED_REMIND_AFTER_DAYS
    queries = list(
        Query.objects.filter(
            Q(status=QueryStatus.OPEN, raised_at__lte=now - dt.timedelta(days=open_after))
            | Q(status=QueryStatus.ANSWERED,
                answered_at__lte=now - dt.timedelta(days=answered_after))
        ).select_related("subject__site", "visit", "raised_by").order_by("raised_at", "pk")
    )
    if not queries:
        return outcome
    site_users = _site_users({query.subject.site_id for query in queries})
    data_managers = _data_managers()
    per_user: dict[User, dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for query in queries:
        if query.status == QueryStatus.OPEN:
            round_ = (now - query.raised_at).days // open_after
            item = Item(kind=QUERY_OPEN, key=f"{QUERY_OPEN}:{query.pk}:{round_}",
                        line=_query_line(query, query.raised_at,
                                         Text(gettext_noop("open for")), now))
            for user in site_users.get(query.subject.site_id, []):
                per_user[user][QUERY_OPEN].append(item)
        else:
            round_ = (now - query.answered_at).days // answered_after
            answered = f"{query.answered_at:%Y%m%d%H%M%S}"
            item = Item(kind=QUERY_ANSWERED,
                        key=f"{QUERY_ANSWERED}:{query.pk}:{answered}:{round_}",
                        line=_query_line(query, query.answered_at,
                                         Text(gettext_noop("answered, waiting")), now))
            raisers = ([query.raised_by] if query.raised_by and query.raised_by.is_active
                       else data_managers)
            for user in raisers:
                per_user[user][QUERY_ANSWERED].append(item)
    link = reverse("forms:query_list")
    for user, kinds in per_user.items():
        if kinds[QUERY_OPEN]:
            notify(outcome=outcome, items=kinds[QUERY_OPEN], user=user, link=link, now=now,
                   dry_run=dry_run,
                   title=Text(gettext_noop("Open queries to answer: %(count)s"),
                              count=len(kinds[QUERY_OPEN])),
                   intro=Text(gettext_noop("These queries at your site have been open for "
                                           "more than %(days)s days."), days=open_after))
        if kinds[QUERY_ANSWERED]:
            notify(outcome=outcome, items=kinds[QUERY_ANSWERED], user=user, link=link,
                   now=now, dry_run=dry_run,
                   title=Text(gettext_noop("Answered queries to review: %(count)s"),
                              count=len(kinds[QUERY_ANSWERED])),
                   intro=Text(gettext_noop("The site answered these queries more than "
                                           "%(days)s days ago: close them or query again."),
                              days=answered_after))
    return outcome
