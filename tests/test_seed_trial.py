"""seed_trial: a synthetic trial entered through the service layer, reproducible from its seed."""

import datetime as dt
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from edc.protocol import ACTIVE, ARMS, PLACEBO
from forms.models import CRF_MODELS, AdverseEvent, CRFStatus
from forms.queries import MessageKind, Query, QueryStatus
from forms.selectors import expected_forms
from forms.synthetic import trial_digest, trial_generate, trial_plan
from tests.factories import screened_subject
from visits.models import KitAssignment, Subject, Visit

AS_OF = "2026-06-30"


def test_small_trial_has_complete_casebooks_queries_and_history_and_prints_no_arm(db):
    out = StringIO()
    call_command("seed_trial", "--subjects", "8", "--seed", "5", "--as-of", AS_OF, stdout=out)
    printed = out.getvalue()

    assert Subject.objects.count() == 8
    assert Subject.objects.filter(randomization_number__isnull=False).exists()
    done = Visit.objects.filter(actual_date__isnull=False).select_related("subject")
    assert done.exists()
    for visit in done:
        assert visit.subject.has_consented
        for code, slot in expected_forms(visit):
            if code == "consent":
                continue
            model = CRF_MODELS[code]
            slot_filter = {model.slot_item: slot} if model.slot_item else {}
            form = model.objects.filter(visit=visit, **slot_filter).first()
            assert form is not None and form.status == CRFStatus.COMPLETE, (visit, code, slot)
    assert not Visit.objects.filter(actual_date__gt=dt.date.fromisoformat(AS_OF)).exists()

    statuses = set(Query.objects.values_list("status", flat=True))
    assert {QueryStatus.OPEN, QueryStatus.ANSWERED, QueryStatus.CLOSED} <= statuses
    assert Query.objects.filter(messages__kind=MessageKind.REQUERIED).exists()
    assert Query.objects.exclude(check_code="").exists()  # raised by the edit checks
    assert Query.objects.filter(check_code="").exists()  # raised by a monitor

    edits = [row for model in CRF_MODELS.values()
             for row in model.history.filter(history_type="~")]
    assert edits
    assert all(row.history_change_reason for row in edits if row.ever_completed)
    assert AdverseEvent.objects.exists()

    for line in ("Subjects: 8", "Queries:", "Adverse events:", "Seconds:"):
        assert line in printed
    blinded = [str(arm.label) for arm in ARMS] + [ACTIVE, PLACEBO]
    assert not [word for word in blinded if word.lower() in printed.lower()]
    assert not re.search(r"\barms?\b", printed, re.IGNORECASE)
    kits = KitAssignment.objects.values_list("kit_number", flat=True)
    assert not [kit for kit in kits if kit in printed]


def test_the_same_seed_gives_the_same_clinical_data_in_a_fresh_database(db):
    as_of = dt.date.fromisoformat(AS_OF)
    with transaction.atomic():
        trial_generate(subjects=4, seed=11, as_of=as_of)
        first = trial_digest()
        transaction.set_rollback(True)
    assert not Subject.objects.exists()

    trial_generate(subjects=4, seed=11, as_of=as_of)

    assert trial_digest() == first


def test_another_seed_plans_another_trial():
    as_of = dt.date.fromisoformat(AS_OF)
    plan = trial_plan(subjects=50, seed=1, as_of=as_of, site_codes=["S01", "S02"])
    assert plan == trial_plan(subjects=50, seed=1, as_of=as_of, site_codes=["S01", "S02"])
    assert plan != trial_plan(subjects=50, seed=2, as_of=as_of, site_codes=["S01", "S02"])


def test_a_snapshot_date_in_the_future_is_refused(db):
    later = timezone.localdate() + dt.timedelta(days=2)
    with pytest.raises(CommandError, match="before today"):
        call_command("seed_trial", "--subjects", "2", "--seed", "1",
                     "--as-of", later.isoformat(), stdout=StringIO())
    assert not Subject.objects.exists()


def test_a_database_with_subjects_is_refused(db, site, nurse):
    screened_subject(site=site, user=nurse)
    with pytest.raises(CommandError, match="fresh database"):
        call_command("seed_trial", "--subjects", "2", "--seed", "1", "--as-of", AS_OF,
                     stdout=StringIO())
    assert Subject.objects.count() == 1
