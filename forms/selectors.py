"""Reads across subjects, visits and CRFs: the casebook and the site matrix. Each reads every
CRF table once, whatever the number of subjects (pinned by query-count tests); the matrix reads
one page of subjects, and the complete forms of all CRF tables in one query, so its cost does
not grow with the trial."""

import datetime as dt
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    CharField,
    DateField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone

from edc import protocol
from edc.models import Site, User
from edc.roles import scope_to_user
from forms.models import CRF_MODELS, CRFStatus
from forms.models.base import SDVStatus
from visits import schedule
from visits.models import ON_STUDY_STATUSES, Subject, Visit
from visits.selectors import subjects_for_user

# CRFs entered at an unscheduled visit (any assessment may be repeated).
UNSCHEDULED_CRFS = ("nihss", "mrs", "barthel", "vital_signs", "labs")
VISIT_FORM_CODES = [c.code for c in protocol.CRFS if not c.is_log and c.code in CRF_MODELS]
LOG_FORM_CODES = [c.code for c in protocol.LOG_FORMS if c.code in CRF_MODELS]


def expected_crfs(visit: Visit) -> tuple[str, ...]:
    if visit.code == protocol.UNSCHEDULED_VISIT_CODE:
        return UNSCHEDULED_CRFS
    return protocol.visit_def(visit.code).crfs


def expected_forms(visit: Visit) -> tuple[tuple[str, str], ...]:
    """(CRF code, slot) of every record expected at the visit: PK/PD once per time point."""
    if visit.code == protocol.UNSCHEDULED_VISIT_CODE:
        return tuple((code, "") for code in UNSCHEDULED_CRFS)
    return protocol.visit_def(visit.code).expected_forms()


def slot_label(code: str, slot: str) -> str:
    return str(protocol.pkpd_timepoint(slot).label) if code == protocol.PKPD_CRF and slot else ""


def crf_status_map(subject_ids) -> dict[tuple[int, int | None, str, str], tuple[str, int]]:
    """(subject id, visit id, CRF code, slot) → (status, pk) for every visit form of these
    subjects (the slot is the PK/PD time point, "" for other forms). One query per CRF
    table."""
    result = {}
    for code in VISIT_FORM_CODES:
        model = CRF_MODELS[code]
        slot = (model.slot_item,) if model.slot_item else ()
        rows = model.objects.filter(subject_id__in=subject_ids).values_list(
            "subject_id", "visit_id", "status", "pk", *slot
        )
        for subject_id, visit_id, status, pk, *at in rows:
            result[(subject_id, visit_id, code, at[0] if at else "")] = (status, pk)
    return result


@dataclass
class SubjectForms:
    """Every form of one subject, read in one query: the status of its visit forms (the
    ``crf_status_map`` of one subject) and its source data verification counts (what
    ``forms.quality.sdv.sdv_progress_for_subject`` counts)."""

    status_map: dict[tuple[int, int | None, str, str], tuple[str, int]]
    complete: int = 0
    verified: int = 0
    changed: int = 0


def subject_forms(subject: Subject) -> SubjectForms:
    """One ``UNION ALL`` over every CRF table (log forms included) instead of a query per
    table for the statuses and another per table for the SDV counts: the casebook reads the
    same rows whatever the number of forms the protocol has."""
    codes = list(CRF_MODELS)
    parts = [
        CRF_MODELS[code].objects.filter(subject_id=subject.pk)
        .annotate(crf_index=Value(index, output_field=IntegerField()),
                  crf_slot=F(CRF_MODELS[code].slot_item) if CRF_MODELS[code].slot_item
                  else Value(""))
        .values_list("crf_index", "visit_id", "status", "pk", "crf_slot", "sdv_status")
        .order_by()
        for index, code in enumerate(codes)
    ]
    forms = SubjectForms(status_map={})
    visit_forms = set(VISIT_FORM_CODES)
    for index, visit_id, status, pk, slot, sdv_status in parts[0].union(*parts[1:], all=True):
        code = codes[index]
        if code in visit_forms:
            forms.status_map[(subject.pk, visit_id, code, slot)] = (status, pk)
        if status == CRFStatus.COMPLETE:
            forms.complete += 1
            forms.verified += sdv_status == SDVStatus.VERIFIED
        forms.changed += sdv_status == SDVStatus.CHANGED
    return forms


def complete_forms(subject_ids) -> set[tuple[int, int, str, str]]:
    """(subject id, visit id, CRF code, slot) of every complete visit form of these subjects,
    in one query over every visit-form table (``UNION ALL``)."""
    parts = [
        CRF_MODELS[code].objects
        .filter(subject_id__in=subject_ids, visit__isnull=False, status=CRFStatus.COMPLETE)
        .annotate(crf_code=Value(code),
                  crf_slot=F(CRF_MODELS[code].slot_item) if CRF_MODELS[code].slot_item
                  else Value(""))
        .values_list("subject_id", "visit_id", "crf_code", "crf_slot")
        .order_by()
        for code in VISIT_FORM_CODES
    ]
    return set(parts[0].union(*parts[1:], all=True))


@dataclass
class FormCell:
    code: str
    label: str
    status: str
    pk: int | None
    # The PK/PD time point ("" for a form entered once per visit), and its label.
    slot: str = ""
    slot_label: str = ""


@dataclass
class VisitRow:
    visit: Visit
    status: schedule.VisitStatus
    forms: list[FormCell] = field(default_factory=list)

    @property
    def study_day(self) -> int | None:
        day1 = self.visit.subject.day1
        if day1 is None or self.visit.actual_date is None:
            return None
        return schedule.study_day(day1, self.visit.actual_date)

    @property
    def complete(self) -> int:
        return sum(1 for f in self.forms if f.status == CRFStatus.COMPLETE)


def _form_status(status_map, subject: Subject, visit: Visit, code: str,
                 slot: str = "") -> tuple[str, int | None]:
    if code == "consent":
        return (CRFStatus.COMPLETE if subject.has_consented else CRFStatus.NOT_STARTED), None
    return status_map.get((subject.pk, visit.pk, code, slot), (CRFStatus.NOT_STARTED, None))


def casebook_rows(subject: Subject, *, now: dt.datetime | None = None,
                  forms: SubjectForms | None = None) -> list[VisitRow]:
    """The subject's visits, each with its expected forms and their status; ``forms`` (from
    :func:`subject_forms`) spares the read when the caller has it already."""
    now = now or timezone.now()
    today = schedule.local_date(now, subject.site.zone)
    status_map = forms.status_map if forms is not None else crf_status_map([subject.pk])
    rows = []
    for visit in subject.visits.all():
        row = VisitRow(visit=visit, status=visit.status_on(today))
        for code, slot in expected_forms(visit):
            status, pk = _form_status(status_map, subject, visit, code, slot)
            row.forms.append(FormCell(code, protocol.crf(code).label, status, pk, slot,
                                      slot_label(code, slot)))
        rows.append(row)
    return rows


def log_entries(subject: Subject) -> dict[str, list]:
    return {
        code: list(CRF_MODELS[code].objects.filter(subject=subject).order_by("pk"))
        for code in LOG_FORM_CODES
    }


@dataclass
class MatrixCell:
    visit: Visit | None
    status: str  # a VisitStatus value, or "" when the subject has no such visit
    forms_complete: int = 0
    forms_expected: int = 0


@dataclass
class MatrixRow:
    subject: Subject
    cells: list[MatrixCell]
    casebook_url: str = ""


def today_by_site(sites, now: dt.datetime) -> dict[int, dt.date]:
    """Each site's local date at ``now``: the ``today`` of its visit statuses."""
    return {site.pk: schedule.local_date(now, site.zone) for site in sites}


def visit_status_expression(today: dict[int, dt.date], *, visit: str = "",
                            subject: str = "subject__") -> Case:
    """:func:`visits.schedule.visit_status` as an SQL expression, so that visits can be filtered
    and counted by status in the database. ``today`` maps site ids to the site's local date;
    ``visit`` and ``subject`` are the lookup paths (with their ``__``) from the queried model
    to the visit and to its subject. Pinned to the Python function by a test over every
    combination of its inputs."""
    dates = set(today.values())
    if len(dates) <= 1:
        local_today = Value(dates.pop() if dates else None, output_field=DateField())
    else:
        local_today = Case(*(When(**{f"{subject}site_id": pk}, then=Value(day))
                             for pk, day in today.items()), output_field=DateField())
    status = schedule.VisitStatus
    return Case(
        When(**{f"{visit}actual_date__isnull": False}, then=Value(status.DONE.value)),
        When(**{f"{visit}is_missed": True}, then=Value(status.MISSED.value)),
        When(~Q(**{f"{subject}status__in": sorted(ON_STUDY_STATUSES)}),
             then=Value(status.NOT_EXPECTED.value)),
        When(**{f"{visit}window_start__gt": local_today}, then=Value(status.UPCOMING.value)),
        When(**{f"{visit}window_end__lt": local_today}, then=Value(status.OVERDUE.value)),
        default=Value(status.DUE.value),
        output_field=CharField(),
    )


MATRIX_PAGE_SIZE = 50
_SCHEDULED_CODES = [v.code for v in protocol.VISITS]


@dataclass
class MatrixPage:
    rows: list[MatrixRow]
    page: Page
    # The user's sites (the site filter offers them).
    sites: list[Site]


def matrix_subjects(user: User, *, sites: list[Site], site_code: str = "",
                    visit_status: str = "", search: str = "",
                    now: dt.datetime | None = None):
    """The subjects the matrix lists, in a stable order (site, then screening number): those of
    ``site_code``, with a scheduled visit of ``visit_status`` on their site's date, whose
    subject ID or screening number contains ``search``."""
    subjects = subjects_for_user(user).order_by("site__code", "screening_number")
    if site_code:
        subjects = subjects.filter(site__code=site_code)
    if search:
        subjects = subjects.filter(Q(subject_id__icontains=search)
                                   | Q(screening_number__icontains=search))
    if visit_status:
        today = today_by_site(sites, now or timezone.now())
        subjects = subjects.filter(Exists(
            Visit.objects.filter(subject=OuterRef("pk"), code__in=_SCHEDULED_CODES)
            .annotate(status=visit_status_expression(today))
            .filter(status=visit_status)
        ))
    return subjects


def site_matrix(user: User, *, site_code: str = "", visit_status: str = "", search: str = "",
                page: int | None = None, now: dt.datetime | None = None) -> MatrixPage:
    """One page of subjects × scheduled visits with a status per cell, in a constant number of
    queries whatever the number of subjects: the filters run in the database, and only the
    page's subjects, visits and forms are read."""
    now = now or timezone.now()
    sites = list(scope_to_user(Site.objects.order_by("code"), user, site_field="pk"))
    subjects = matrix_subjects(user, sites=sites, site_code=site_code,
                               visit_status=visit_status, search=search, now=now)
    shown = Paginator(subjects, MATRIX_PAGE_SIZE).get_page(page)
    page_subjects = list(shown.object_list)
    complete = complete_forms([s.pk for s in page_subjects])
    today_at = today_by_site(sites, now)
    rows = []
    for subject in page_subjects:
        today = today_at.get(subject.site_id) or schedule.local_date(now, subject.site.zone)
        by_code = {v.code: v for v in subject.visits.all()}
        cells = []
        for visit_def in protocol.VISITS:
            visit = by_code.get(visit_def.code)
            if visit is None:
                cells.append(MatrixCell(None, ""))
                continue
            expected = visit_def.expected_forms()
            # Only the records the visit expects count (one per PK/PD time point).
            key = (subject.id, visit.id)
            done = sum(1 for code, slot in expected
                       if (*key, code, slot) in complete
                       or (code == "consent" and subject.has_consented))
            cells.append(MatrixCell(visit, visit.status_on(today), done, len(expected)))
        rows.append(MatrixRow(subject, cells,
                              reverse("forms:casebook", kwargs={"subject_pk": subject.pk})))
    return MatrixPage(rows=rows, page=shown, sites=sites)
