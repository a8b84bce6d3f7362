"""Adverse events and deaths."""

from django.utils.translation import gettext_lazy as _

from forms.quality.checks.base import HARD, SOFT, Check, SubjectData


def end_before_start(record, data: SubjectData) -> list[str]:
    if record.start_date and record.end_date and record.end_date < record.start_date:
        return ["end_date"]
    return []


def serious_without_criterion(record, data: SubjectData) -> list[str]:
    return ["is_serious"] if record.is_serious and not record.serious_criteria() else []


def fatal_without_death_report(record, data: SubjectData) -> list[str]:
    return ["outcome"] if record.outcome == "fatal" and not data.all("death") else []


def death_without_fatal_event(record, data: SubjectData) -> list[str]:
    if any(event.outcome == "fatal" for event in data.all("adverse_event")):
        return []
    return ["died_on"]


CHECKS = [
    Check(
        code="AE-001", form="adverse_event", fields=("end_date",), severity=HARD,
        message=_("The end date cannot be before the start date."),
        function=end_before_start,
    ),
    Check(
        code="AE-002", form="adverse_event", fields=("is_serious",), severity=SOFT,
        message=_("A serious adverse event needs at least one seriousness criterion."),
        function=serious_without_criterion,
    ),
    Check(
        code="AE-003", form="adverse_event", fields=("outcome",), severity=SOFT,
        message=_("The outcome is fatal but there is no death report: please complete one."),
        function=fatal_without_death_report, reads=frozenset({"death"}),
    ),
    Check(
        code="DTH-001", form="death", fields=("died_on",), severity=SOFT,
        message=_("A death is reported but no adverse event has a fatal outcome."),
        function=death_without_fatal_event, reads=frozenset({"adverse_event"}),
    ),
]
