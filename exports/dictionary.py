"""The data dictionary: every exported dataset and variable, derived from ``edc.protocol`` and
the models, never typed twice. Every writer (CSV, Excel, SAS XPORT, Stata, SPSS, R, ODM) and
the codebook read the same :class:`Dataset` list, so a variable's name, label, type, unit and
code list are the same in every format.

A dataset's columns depend on the export profile: the blinded profile (the default) has no
arm anywhere; the unblinded one adds the arm to the subjects dataset; the de-identified one
replaces dates by study days, the screening number and subject ID by the subject's
pseudonymous key (``subject_key``, the same in every dataset and format, the ODM SubjectKey
too), and leaves out free text and staff names.

What the ``audit_trail`` dataset holds depends on who exports it (:func:`audit_scope`): every
change to clinical data for a data manager, the randomization rows only for the unblinded
statistician, nothing for a role that does not read the trail. Its label says which, in every
format, the data dictionary and the manifest.
"""

import re
import unicodedata
from dataclasses import dataclass, field, replace
from enum import StrEnum

from django.db import models
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from edc import protocol
from edc.sources import SOURCE_LENGTH, Source
from forms.models import CRF, CRF_MODELS
from forms.models.base import CRFStatus, Missing, SDVStatus
from visits.models import ConsentSigner, SubjectStatus

INTEGER, FLOAT, TEXT, DATE, DATETIME, BOOLEAN = (
    "integer", "float", "text", "date", "datetime", "boolean",
)
BOOLEAN_CHOICES = ((1, gettext_noop("Yes")), (0, gettext_noop("No")))
SAS_NAME_LENGTH = 8
SAS_LABEL_LENGTH = 40


class Profile(StrEnum):
    BLINDED = "blinded"
    UNBLINDED = "unblinded"
    DEIDENTIFIED = "deidentified"


SUBJECT_KEY_LABEL = gettext_noop("Subject key (pseudonym, the same in every dataset and format)")


class AuditScope(StrEnum):
    """What the audit-trail dataset of an export holds (who exports decides)."""

    CLINICAL = "clinical"
    CLINICAL_AND_ALLOCATION = "clinical and allocation"
    ALLOCATION = "allocation"
    NONE = "none"
    UNKNOWN = ""  # the data dictionary page, which has no exporter


# At most 40 characters: the label is also the SAS XPORT dataset label.
AUDIT_LABELS = {
    AuditScope.CLINICAL: gettext_noop("Audit trail: all clinical data changes"),
    AuditScope.CLINICAL_AND_ALLOCATION: gettext_noop("Audit trail: clinical and randomization"),
    AuditScope.ALLOCATION: gettext_noop("Audit trail: randomization changes only"),
    AuditScope.NONE: gettext_noop("Audit trail: empty (role cannot read it)"),
    AuditScope.UNKNOWN: gettext_noop("Audit trail: depends on who exports"),
}


def audit_scope(user, profile: "Profile") -> AuditScope:
    """What ``user``'s export with ``profile`` holds in its audit-trail dataset (the same
    rules as ``exports.datasets._audit_trail`` and ``forms.review.audit_sources.sources_for``)."""
    from forms.review.audit_sources import ALLOCATION, CLINICAL, may_view_audit, sources_for

    if not may_view_audit(user):
        return AuditScope.NONE
    gates = {source.gate for source in sources_for(user)}
    clinical = CLINICAL in gates
    allocation = ALLOCATION in gates and profile == Profile.UNBLINDED
    if clinical and allocation:
        return AuditScope.CLINICAL_AND_ALLOCATION
    if clinical:
        return AuditScope.CLINICAL
    return AuditScope.ALLOCATION if allocation else AuditScope.NONE


PROFILE_LABELS = {
    Profile.BLINDED: gettext_lazy("Blinded (no treatment arm)"),
    Profile.UNBLINDED: gettext_lazy("Unblinded (with treatment arm)"),
    Profile.DEIDENTIFIED: gettext_lazy("De-identified (study days for dates, a pseudonymous "
                                       "subject key, no free text)"),
}


@dataclass(frozen=True)
class Variable:
    """One column of a dataset."""

    name: str
    label: str
    type: str
    # Where the value comes from: a model field's attribute name, or a key the row builder
    # fills (subject and visit columns).
    source: str = ""
    length: int | None = None
    digits: int | None = None
    unit: str = ""
    # (coded value, label) pairs; coded values are the stored ones.
    choices: tuple[tuple[str | int, str], ...] = ()
    free_text: bool = False
    # Names staff members (who confirmed, who raised): left out of de-identified exports.
    staff: bool = False
    sas_name: str = ""

    @property
    def is_coded(self) -> bool:
        return bool(self.choices)

    @property
    def sas_label(self) -> str:
        return ascii_text(self.label)[:SAS_LABEL_LENGTH]

    def decode(self, value) -> str:
        """The label of a coded value ('' when not coded or empty)."""
        if value is None or not self.choices:
            return ""
        if self.type == BOOLEAN:
            value = int(value)
        return self._labels.get(value, "")

    @property
    def _labels(self) -> dict:
        return dict(self.choices)


@dataclass(frozen=True)
class Dataset:
    """One exported table: a CRF (one row per form instance), or the subjects, visits,
    queries, query messages or audit trail."""

    name: str
    label: str
    variables: tuple[Variable, ...]
    sas_name: str
    crf_code: str = ""
    visits: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]


def ascii_text(text: str) -> str:
    """Text for formats that allow ASCII only (SAS XPORT v5 names and labels)."""
    text = str(text)
    for old, new in (("°", "deg "), ("≥", ">="), ("≤", "<="), ("×", "x"), ("—", "-"),
                     ("–", "-"), ("µ", "u"), ("±", "+/-"), ("’", "'")):
        text = text.replace(old, new)
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"\s+", " ", text.encode("ascii", "ignore").decode("ascii")).strip()


def sas_names(names: list[str]) -> list[str]:
    """Unique SAS v5 names (≤ 8 characters, letters, digits and _, not starting with a digit),
    in order: the name upper-cased without underscores, cut to 8, then numbered on collision."""
    taken: set[str] = set()
    result = []
    for name in names:
        base = re.sub(r"[^A-Z0-9]", "", name.upper()) or "VAR"
        if base[0].isdigit():
            base = "V" + base
        candidate = base[:SAS_NAME_LENGTH]
        number = 1
        while candidate in taken:
            suffix = str(number)
            candidate = base[: SAS_NAME_LENGTH - len(suffix)] + suffix
            number += 1
        taken.add(candidate)
        result.append(candidate)
    return result


def _with_sas_names(variables: list[Variable]) -> tuple[Variable, ...]:
    names = sas_names([v.name for v in variables])
    return tuple(replace(v, sas_name=s) for v, s in zip(variables, names, strict=True))


def _choices(choices) -> tuple[tuple[str | int, str], ...]:
    return tuple((value, str(label)) for value, label in choices)


def _boolean_choices() -> tuple[tuple[int, str], ...]:
    """:data:`BOOLEAN_CHOICES` in the active language."""
    return tuple((value, gettext(label)) for value, label in BOOLEAN_CHOICES)


def _from_field(f: models.Field, model: type[CRF]) -> Variable:
    label = str(f.verbose_name)
    unit = model.units.get(f.name, "")
    if isinstance(f, models.ForeignKey):
        if f.related_model._meta.label == "edc.User":
            return Variable(f.name, label, TEXT, source=f.name, length=150, staff=True)
        return Variable(f.name, gettext("%(label)s (record id)") % {"label": label}, INTEGER,
                        source=f.attname)
    if isinstance(f, models.BooleanField):
        return Variable(f.name, label, BOOLEAN, source=f.name, choices=_boolean_choices())
    if isinstance(f, models.DateTimeField):
        return Variable(f.name, label, DATETIME, source=f.name)
    if isinstance(f, models.DateField):
        return Variable(f.name, label, DATE, source=f.name)
    if isinstance(f, models.DecimalField):
        return Variable(f.name, label, FLOAT, source=f.name, digits=f.decimal_places, unit=unit)
    if isinstance(f, models.IntegerField):
        return Variable(f.name, label, INTEGER, source=f.name, unit=unit,
                        choices=_choices(f.choices or ()))
    if isinstance(f, models.JSONField):
        return Variable(f.name, gettext("%(label)s (JSON)") % {"label": label}, TEXT,
                        source=f.name)
    coded = bool(f.choices)
    free = not coded and not f.name.endswith(("_code", "_number"))
    return Variable(f.name, label, TEXT, source=f.name, length=f.max_length, unit=unit,
                    choices=_choices(f.choices or ()), free_text=free)


# Columns every CRF dataset starts with, filled by the row builder.
def _key_variables() -> list[Variable]:
    visit_choices = tuple((code, str(label)) for code, label in _visit_choices())
    return [
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("record_id", gettext("Record id"), INTEGER),
        Variable("visit", gettext("Visit"), TEXT, length=8, choices=visit_choices),
        Variable("visit_date", gettext("Visit date"), DATE),
        Variable("study_day", gettext("Study day of the visit"), INTEGER),
        Variable("form_status", gettext("Form status"), TEXT, length=20,
                 choices=_choices(CRFStatus.choices), source="status"),
        Variable("not_done_reason", gettext("Form not done, why"), TEXT, length=20,
                 choices=_choices(Missing.choices), source="not_done_reason"),
        Variable("missing_items", gettext("Items without a value, why (item=reason; ...)"), TEXT,
                 source="missing_items"),
        Variable("sdv_status", gettext("Source data verification"), TEXT, length=24,
                 choices=_choices(SDVStatus.choices), source="sdv_status"),
        Variable("last_saved", gettext("Last saved"), DATETIME),
    ]


def _visit_choices():
    from visits.models import VISIT_CODE_CHOICES

    return VISIT_CODE_CHOICES


def _crf_visits(code: str) -> tuple[str, ...]:
    return tuple(v.code for v in protocol.VISITS if code in v.crfs)


def crf_dataset(code: str) -> Dataset:
    model = CRF_MODELS[code]
    items = [_from_field(model._meta.get_field(name), model) for name in model.item_names()]
    crf = protocol.crf(code)
    return Dataset(
        name=code,
        label=str(crf.label),
        variables=_with_sas_names(_key_variables() + items),
        sas_name=sas_names([code])[0].lower(),
        crf_code=code,
        visits=("log",) if crf.is_log else _crf_visits(code),
    )


def subjects_dataset(*, with_arm: bool) -> Dataset:
    variables = [
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("status", gettext("Subject status"), TEXT, length=20,
                 choices=_choices(SubjectStatus.choices), source="status"),
        Variable("screened_at", gettext("Screened"), DATETIME, source="screened_at"),
        Variable("consented_at", gettext("Informed consent signed"), DATETIME,
                 source="consented_at"),
        Variable("consent_signed_by", gettext("Consent signed by"), TEXT, length=10,
                 choices=_choices(ConsentSigner.choices), source="consent_signed_by"),
        Variable("consent_form_version", gettext("Consent form version"), TEXT, length=30,
                 source="consent_form_version"),
        Variable("age_at_consent", gettext("Age at consent"), INTEGER, unit="years",
                 source="age_at_consent"),
        Variable("screen_failure_criteria",
                 gettext("Criteria not met at screening (codes; ...)"), TEXT,
                 source="screen_failure_criteria"),
        Variable("randomized_at", gettext("Randomized"), DATETIME, source="randomized_at"),
        Variable("day1", gettext("Study day 1 (randomization date at the site)"), DATE),
        Variable("randomization_number", gettext("Randomization number"), TEXT, length=20,
                 source="randomization_number"),
        Variable("stratum", gettext("NIHSS stratum"), TEXT, length=10),
        Variable("emergency_unblinded", gettext("Blind broken for this subject"), BOOLEAN,
                 choices=_boolean_choices(), source="emergency_unblinded"),
    ]
    if with_arm:
        variables.append(Variable(
            "arm", gettext("Treatment arm"), TEXT, length=2,
            choices=tuple((a.code, str(a.label)) for a in protocol.ARMS)))
    return Dataset("subjects", gettext("Subjects and screening log"), _with_sas_names(variables),
                   sas_name="subjects",
                   description=gettext("One row per screened patient, randomized or not."))


def visits_dataset() -> Dataset:
    variables = [
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("visit", gettext("Visit"), TEXT, length=8,
                 choices=tuple((c, str(label)) for c, label in _visit_choices()),
                 source="code"),
        Variable("sequence", gettext("Visit sequence (unscheduled visits)"), INTEGER,
                 source="sequence"),
        Variable("planned_date", gettext("Planned date"), DATE, source="planned_date"),
        Variable("window_start", gettext("Window start"), DATE, source="window_start"),
        Variable("window_end", gettext("Window end"), DATE, source="window_end"),
        Variable("visit_date", gettext("Visit date"), DATE, source="actual_date"),
        Variable("study_day", gettext("Study day of the visit"), INTEGER),
        Variable("is_missed", gettext("Visit missed"), BOOLEAN, choices=_boolean_choices(),
                 source="is_missed"),
        Variable("missed_reason", gettext("Reason the visit did not take place"), TEXT,
                 source="missed_reason", free_text=True),
    ]
    return Dataset("visits", gettext("Visits"), _with_sas_names(variables), sas_name="visits")


def queries_dataset() -> Dataset:
    from forms.quality.queries import QueryStatus, Resolution

    variables = [
        Variable("query_id", gettext("Query id"), INTEGER),
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("visit", gettext("Visit"), TEXT, length=8,
                 choices=tuple((c, str(label)) for c, label in _visit_choices())),
        Variable("crf", gettext("Form"), TEXT, length=40, source="crf_code"),
        Variable("record_id", gettext("Record id"), INTEGER, source="object_id"),
        Variable("item", gettext("Item"), TEXT, length=64, source="field_name"),
        Variable("check_code", gettext("Edit check (empty: raised by a person)"), TEXT, length=20,
                 source="check_code"),
        Variable("status", gettext("Query status"), TEXT, length=20,
                 choices=_choices(QueryStatus.choices), source="status"),
        Variable("text", gettext("Question"), TEXT, source="text", free_text=True),
        Variable("raised_by", gettext("Raised by"), TEXT, length=150, staff=True),
        Variable("raised_at", gettext("Raised at"), DATETIME, source="raised_at"),
        Variable("answered_at", gettext("Last answered at"), DATETIME, source="answered_at"),
        Variable("closed_at", gettext("Closed at"), DATETIME, source="closed_at"),
        Variable("closed_by", gettext("Closed by"), TEXT, length=150, staff=True),
        Variable("resolution", gettext("Resolution"), TEXT, length=30,
                 choices=_choices(Resolution.choices), source="resolution"),
    ]
    return Dataset("queries", gettext("Queries"), _with_sas_names(variables), sas_name="queries")


def query_messages_dataset() -> Dataset:
    from forms.quality.queries import MessageKind

    variables = [
        Variable("query_id", gettext("Query id"), INTEGER, source="query_id"),
        Variable("message_id", gettext("Message id"), INTEGER),
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("kind", gettext("Kind"), TEXT, length=20, choices=_choices(MessageKind.choices),
                 source="kind"),
        Variable("author", gettext("Author"), TEXT, length=150, staff=True),
        Variable("at", gettext("At"), DATETIME, source="at"),
        Variable("text", gettext("Text"), TEXT, source="text", free_text=True),
    ]
    return Dataset("query_messages", gettext("Query threads"), _with_sas_names(variables),
                   sas_name="qmessage")


def audit_dataset(scope: AuditScope = AuditScope.UNKNOWN) -> Dataset:
    variables = [
        Variable("screening_number", gettext("Screening number"), TEXT, length=20),
        Variable("subject_id", gettext("Subject ID"), TEXT, length=20),
        Variable("site", gettext("Site"), TEXT, length=10),
        Variable("time", gettext("Time of the change"), DATETIME),
        Variable("user", gettext("User"), TEXT, length=150, staff=True),
        Variable("action", gettext("Action"), TEXT, length=10),
        Variable("record_type", gettext("Record type"), TEXT, length=60),
        Variable("record_id", gettext("Record id"), INTEGER),
        Variable("record", gettext("Record (as the audit trail page names it)"), TEXT,
                 free_text=True),
        Variable("field", gettext("Field"), TEXT, length=64),
        Variable("old_value", gettext("Old value"), TEXT, free_text=True),
        Variable("new_value", gettext("New value"), TEXT, free_text=True),
        Variable("reason", gettext("Reason for change"), TEXT, free_text=True),
        # How the change came in (checklist ER-07); empty for changes made before it was
        # recorded.
        Variable("channel", gettext("Channel of the change"), TEXT, length=SOURCE_LENGTH,
                 choices=_choices(Source.choices)),
    ]
    return Dataset("audit_trail", gettext(AUDIT_LABELS[scope]), _with_sas_names(variables),
                   sas_name="audit", extra={"audit_scope": str(scope)})


def deidentify(dataset: Dataset) -> Dataset:
    """The de-identified form of ``dataset``: dates and times become study days, the subject
    ID becomes the subject's pseudonymous key, free text, staff names and the screening
    number are left out."""
    variables = []
    for v in dataset.variables:
        if v.free_text or v.staff or v.name == "screening_number":
            continue
        if v.name == "subject_id":
            v = Variable("subject_key", gettext(SUBJECT_KEY_LABEL), TEXT, length=13)
        if v.type in (DATE, DATETIME):
            label = gettext("%(label)s (study day)") % {"label": v.label}
            v = replace(v, type=INTEGER, label=label, length=None)
        variables.append(v)
    return replace(dataset, variables=_with_sas_names(variables))


def datasets(profile: Profile = Profile.BLINDED,
             audit: AuditScope = AuditScope.UNKNOWN) -> list[Dataset]:
    """Every dataset of an export with ``profile``, in a fixed order; ``audit`` says what its
    audit trail holds (:func:`audit_scope`)."""
    result = [
        subjects_dataset(with_arm=profile == Profile.UNBLINDED),
        visits_dataset(),
        *(crf_dataset(code) for code in CRF_MODELS),
        queries_dataset(),
        query_messages_dataset(),
        audit_dataset(audit),
    ]
    if profile == Profile.DEIDENTIFIED:
        result = [deidentify(d) for d in result]
    return result
