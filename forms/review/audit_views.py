"""The audit trail page and its CSV export (issue 6, item 5). The rows come from
``forms.review.audit.audit_rows``, which decides what each user may see."""

import csv
import datetime as dt
import hashlib

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from edc import bounds
from edc.audit import audit_event
from edc.models import AuditAction, User
from edc.roles import scope_to_user
from forms.review import audit, audit_sources
from visits.models import Subject

ROWS_PER_PAGE = 200


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the time zone the page shows."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min),
                               timezone.get_current_timezone())


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not audit_sources.may_view_audit(user):
        raise PermissionDenied
    params = request.GET
    filters = {name: bounds.text_param(params.get(name))
               for name in ("subject", "form", "record", "field", "user", "date_from",
                            "date_to")}
    choices = audit_sources.source_choices(user)
    errors = []
    subject = author = None
    if filters["subject"]:
        subject = scope_to_user(Subject.objects.all(), user).filter(
            Q(screening_number__iexact=filters["subject"])
            | Q(subject_id__iexact=filters["subject"])
        ).first()
        if subject is None:
            errors.append(_("No subject %(s)s at your sites.") % {"s": filters["subject"]})
    if filters["user"]:
        author = User.objects.filter(username__iexact=filters["user"]).first()
        if author is None:
            errors.append(_("No user %(u)s.") % {"u": filters["user"]})
    if filters["form"] not in dict(choices):
        filters["form"] = ""
    record = bounds.id_param(filters["record"]) if filters["form"] else None
    dates = {}
    for name in ("date_from", "date_to"):
        try:
            dates[name] = bounds.date_param(filters[name])
        except ValueError as error:
            errors.append(str(error))
            dates[name] = None
    date_from, date_to = dates["date_from"], dates["date_to"]

    rows = [] if errors else audit.audit_rows(
        user=user, subject=subject, crf_code=filters["form"] or None, record=record,
        field=filters["field"] or None, author=author,
        since=_start_of(date_from) if date_from else None,
        until=_start_of(date_to + dt.timedelta(days=1)) if date_to else None,
    )
    if params.get("format") == "csv":
        response = _csv(rows, subject)
        audit_event(action=AuditAction.EXPORTED, user=user, subject=subject, detail={
            "what": "audit trail CSV", "filters": {k: v for k, v in filters.items() if v},
            "rows": len(rows), "sha256": hashlib.sha256(response.content).hexdigest()})
        return response
    page = Paginator(rows, ROWS_PER_PAGE).get_page(params.get("page"))
    return render(request, "forms/review/audit_trail.html", {
        "page": page,
        "subject": subject,
        "filters": filters,
        "forms_list": choices,
        "errors": errors,
        "zone": timezone.get_current_timezone_name(),
    })


def _csv(rows: list[audit_sources.AuditRow], subject: Subject | None) -> HttpResponse:
    """UTF-8 with a byte-order mark, so that Excel reads Chinese text correctly; times in UTC."""
    name = f"audit-trail-{subject.screening_number}" if subject else "audit-trail"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    response.write("\ufeff")
    writer = csv.writer(response, lineterminator="\r\n")
    writer.writerow(audit_sources.CSV_COLUMNS)
    for row in rows:
        writer.writerow(audit_sources.csv_cells(row))
    return response
