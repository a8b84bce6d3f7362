"""The form counts of each visit (``VisitFormTally``): how many of the forms the protocol
expects there are saved complete and in progress.

``crf_save`` calls :func:`tally_form_saved` in the transaction of every save, after the form's
row is written: a form saved for the first time adds one to its status, a form whose status
changed moves one from the old status to the new. A form's status changes nowhere else (forms
are never deleted; a form marked not done is saved complete), and a visit's status is not
counted here: the dashboard derives it from the visit when it reads, so recording or missing a
visit changes no count. :func:`tally_recount` counts the same from the forms themselves
(``manage.py tally_visit_forms`` rebuilds the counts with it; the tests compare the two after
every kind of change).
"""

import functools
from collections import defaultdict
from collections.abc import Iterable

from django.db import connection, transaction

from edc import protocol
from forms.models import CRF, CRF_MODELS, CRFStatus, VisitFormTally
from forms.selectors import VISIT_FORM_CODES, expected_forms
from visits.models import Visit

_VISIT_CODES = (*(v.code for v in protocol.VISITS), protocol.UNSCHEDULED_VISIT_CODE)


@functools.cache
def visits_expecting(crf_code: str, slot: str) -> tuple[str, ...]:
    """Codes of the visits at which the protocol expects this record (CRF and slot)."""
    return tuple(code for code in _VISIT_CODES
                 if (crf_code, slot) in expected_forms(Visit(code=code)))


def tally_form_saved(crf: CRF, *, was: str | None) -> None:
    """Count the save of ``crf`` whose status was ``was`` before it (None: its first save), in
    one statement, when the status changed and the protocol expects the form at its visit.

    An upsert: the visit's row is made by the first of its forms to count, and a concurrent
    save of another form of the same visit waits on that row until this transaction ends (the
    two add, they never overwrite). Whether the visit expects the form is asked in the same
    statement, from the visit's code, so nothing is read first."""
    if crf.visit_id is None or crf.status == was:
        return
    codes = visits_expecting(crf.crf_code, crf.slot)
    if not codes:
        return
    delta = {CRFStatus.COMPLETE.value: 0, CRFStatus.IN_PROGRESS.value: 0}
    delta[crf.status] += 1
    if was is not None:
        delta[was] -= 1
    quote = connection.ops.quote_name
    table, visits = quote(VisitFormTally._meta.db_table), quote(Visit._meta.db_table)
    placeholders = ", ".join(["%s"] * len(codes))
    # Table names from the models' metadata; every value a parameter.
    statement = (
        f"INSERT INTO {table} (visit_id, complete, in_progress)"  # noqa: S608
        f" SELECT id, %s, %s FROM {visits} WHERE id = %s AND code IN ({placeholders})"
        " ON CONFLICT (visit_id) DO UPDATE SET"
        f" complete = {table}.complete + excluded.complete,"
        f" in_progress = {table}.in_progress + excluded.in_progress"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, (delta[CRFStatus.COMPLETE], delta[CRFStatus.IN_PROGRESS],
                                   crf.visit_id, *codes))


def tally_recount(
    forms: Iterable[tuple[str, type, str | None]] | None = None,
) -> dict[int, tuple[int, int]]:
    """Visit id → (complete, in progress), counted from the visit forms themselves: every
    saved form whose visit expects it. ``forms`` gives (CRF code, model, slot item) of the
    visit-form tables (default: today's models; a migration passes its own)."""
    if forms is None:
        forms = [(code, CRF_MODELS[code], CRF_MODELS[code].slot_item)
                 for code in VISIT_FORM_CODES]
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for code, model, slot_item in forms:
        slot = (slot_item,) if slot_item else ()
        rows = (model.objects.filter(visit__isnull=False)
                .values_list("visit_id", "visit__code", "status", *slot).order_by())
        for visit_id, visit_code, status, *at in rows:
            if visit_code not in visits_expecting(code, at[0] if at else ""):
                continue
            if status == CRFStatus.COMPLETE:
                counts[visit_id][0] += 1
            elif status == CRFStatus.IN_PROGRESS:
                counts[visit_id][1] += 1
    return {visit_id: (complete, in_progress)
            for visit_id, (complete, in_progress) in counts.items()}


def tally_stored(tally_model=VisitFormTally) -> dict[int, tuple[int, int]]:
    """Visit id → (complete, in progress) as kept, visits counting nothing left out."""
    return {visit_id: (complete, in_progress)
            for visit_id, complete, in_progress in tally_model.objects.values_list(
                "visit_id", "complete", "in_progress")
            if complete or in_progress}


def tally_rebuild(forms=None, tally_model=VisitFormTally) -> int:
    """Replace every count by :func:`tally_recount`; returns the visits counted. On
    PostgreSQL the counts are locked first, so a save running meanwhile either is counted
    here (it committed before) or adds its own change after this ends."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                table = connection.ops.quote_name(tally_model._meta.db_table)
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        counts = tally_recount(forms)
        tally_model.objects.all().delete()
        tally_model.objects.bulk_create(
            [tally_model(visit_id=visit_id, complete=complete, in_progress=in_progress)
             for visit_id, (complete, in_progress) in counts.items()], batch_size=1000)
    return len(counts)
