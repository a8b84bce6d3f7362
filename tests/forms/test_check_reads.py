"""Each edit check declares what it reads (``Check.reads``, ``Check.visit_fields``), and a save
runs only the checks that read what it changed (issue 15). A check that read an undeclared
form would silently stop being re-run when that form changes: these tests fail instead."""

import datetime as dt

import pytest
from django.utils import timezone

from forms.models import CRF_MODELS
from forms.quality.checks import ALL_CHECKS, KITS, SOFT, VISIT, Check, SubjectData
from forms.quality.checks.runner import checks_for_change, checks_rerun, load_subject_data
from forms.synthetic import trial_generate
from visits.models import Subject


class Undeclared(AssertionError):
    pass


class GuardedVisit:
    """A visit whose undeclared fields cannot be read."""

    __slots__ = ("_allowed", "_visit")

    def __init__(self, visit, allowed):
        object.__setattr__(self, "_visit", visit)
        object.__setattr__(self, "_allowed", allowed)

    def __getattr__(self, name):
        if name not in self._allowed:
            raise Undeclared(f"reads visit.{name}")
        return getattr(self._visit, name)


class GuardedData(SubjectData):
    """The subject's data as ``check`` may read them: its declared forms (and its own, for the
    record checked), the declared visit fields, the kits if declared."""

    def __init__(self, full: SubjectData, check: Check):
        self.check = check
        allowed = set(check.visit_fields) | {"pk", "id"}
        super().__init__(subject=full.subject,
                         visits={pk: GuardedVisit(visit, allowed)
                                 for pk, visit in full.visits.items()},
                         forms=full.forms, kits=full.kits)

    def __getattribute__(self, name):
        check = object.__getattribute__(self, "check")
        if name == "visits" and not check.visit_fields:
            raise Undeclared("reads the visits")
        if name == "kits" and KITS not in check.reads:
            raise Undeclared("reads the kits")
        return object.__getattribute__(self, name)

    def all(self, code):
        if code not in self.check.reads:
            raise Undeclared(f"reads the {code} form")
        return super().all(code)


def only_declared(full: SubjectData, check: Check) -> SubjectData:
    """A SubjectData holding only what ``check`` declares (and its own form's records)."""
    forms = {code: records for code, records in full.forms.items()
             if code in check.reads or code == check.form}
    return SubjectData(subject=full.subject,
                       visits=full.visits if check.visit_fields or check.form == VISIT else {},
                       forms=forms, kits=full.kits if KITS in check.reads else {})


def records_of(check: Check, data: SubjectData):
    if check.form == VISIT:
        return list(data.visits.values())
    if check.form == "*":
        return [record for records in data.forms.values() for record in records]
    return data.all(check.form)


@pytest.fixture
def trial(db):
    """A small synthetic trial entered through the service layer (every save running only
    the checks that read what it changed)."""
    trial_generate(subjects=4, seed=5, as_of=timezone.localdate() - dt.timedelta(days=1))
    return list(Subject.objects.exclude(consented_at=None).select_related("site"))


def test_every_check_reads_only_what_it_declares(trial):
    failures_seen = 0
    for subject in trial:
        full = load_subject_data(subject)
        for check in ALL_CHECKS:
            guarded, declared = GuardedData(full, check), only_declared(full, check)
            for record in records_of(check, full):
                try:
                    expected = check.failing(record, full)
                    assert check.failing(record, guarded) == expected
                except Undeclared as error:
                    pytest.fail(f"{check.code} {error} without declaring it")
                assert check.failing(record, declared) == expected, check.code
                failures_seen += bool(expected)
    assert failures_seen, "the synthetic trial exercises no failing check"


def test_the_guard_catches_a_check_reading_an_undeclared_form(trial):
    sneaky = Check(code="TEST-1", form="vital_signs", fields=("temperature",), severity=SOFT,
                   message="", function=lambda record, data: data.all("adverse_event") and [])
    subject = trial[0]
    full = load_subject_data(subject)
    [record, *_] = full.all("vital_signs")
    with pytest.raises(Undeclared):
        sneaky.failing(record, GuardedData(full, sneaky))


def test_saves_through_the_service_leave_nothing_for_a_full_rerun(trial):
    """Running only the checks a change can alter leaves the same queries open as running
    every check over every subject: the full re-run finds nothing to open or close."""
    report = checks_rerun()
    assert sum(report.opened.values()) == 0, report.lines()
    assert sum(report.closed.values()) == 0, report.lines()


def test_a_save_runs_the_checks_of_its_form_and_those_that_read_it():
    by_code = {item.check.code: item.every_record for item in checks_for_change("adverse_event")}
    # The event's own checks run on the event saved; those of other forms that read the
    # adverse events run on every record of their form.
    for code in ("AE-002", "AE-003", "DATE-001"):
        assert by_code[code] is False, code
    for code in ("DTH-001", "NIHSS-002", "VS-008", "INF-008"):
        assert by_code[code] is True, code
    assert "VS-001" not in by_code and "LAB-001" not in by_code
    visit = {item.check.code for item in checks_for_change(VISIT, visit_fields=["actual_date"])}
    assert visit == {"VIS-001", "LAB-003", "INF-001", "INF-008"}
    # Every form the checks read is a form (or the kits).
    assert {code for check in ALL_CHECKS for code in check.reads} <= {*CRF_MODELS, KITS}
