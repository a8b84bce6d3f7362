"""Eligibility and randomization, the writes that need the CRFs: the eligibility checklist
saved and derived from entered data, and randomization of an eligible subject. Every write to a
CRF itself goes through ``forms.entry.saving.crf_save``; its names are offered here too, so
callers of the data-entry services need one module."""

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from edc import protocol
from edc.history import audited_save
from edc.models import User
from edc.roles import Action, can
from forms.entry import eligibility as eligibility_rules
from forms.entry.saving import (
    age_on,
    crf_derive,
    crf_instance,
    crf_save,
    lab_egfr_basis,
    visit_missed,
    visit_record,
)
from forms.models import (
    CRF,
    ConcomitantMedication,
    CRFStatus,
    Demographics,
    EligibilityChecklist,
    LabPanel,
    MedicalHistory,
    StrokeEvent,
)
from forms.models.base import EditConflict
from forms.models.nihss import NIHSS
from forms.models.scales import MRS
from forms.review.locks import refuse_if_locked
from visits import schedule
from visits.models import Subject, SubjectStatus
from visits.randomization import stratum_for_nihss
from visits.services import randomization_allocate

__all__ = [
    "EditConflict",
    "age_on",
    "crf_derive",
    "crf_instance",
    "crf_save",
    "eligibility_confirm",
    "eligibility_inputs",
    "eligibility_review",
    "lab_egfr_basis",
    "screening_forms_status",
    "subject_randomize",
    "visit_missed",
    "visit_record",
]


def _screening_form(model: type[CRF], subject: Subject) -> CRF | None:
    return model.objects.filter(
        subject=subject, visit__code=protocol.SCREENING_VISIT.code
    ).first()


def eligibility_inputs(subject: Subject, checklist: EligibilityChecklist | None):
    """Everything the eligibility rules derive from, read from the entered screening data."""
    nihss = _screening_form(NIHSS, subject)
    mrs = _screening_form(MRS, subject)
    labs = _screening_form(LabPanel, subject)
    stroke = StrokeEvent.objects.filter(subject=subject).first()
    planned = checklist.planned_first_infusion_at if checklist else None
    steroid_doses = ConcomitantMedication.objects.filter(
        subject=subject, prednisone_equivalent__isnull=False
    ).exclude(corticosteroid="")
    if planned is not None:
        window_start = schedule.local_date(planned, subject.site.zone) - dt.timedelta(days=14)
        steroid_doses = steroid_doses.filter(
            models.Q(end_date__isnull=True) | models.Q(end_date__gte=window_start)
        )
    # The concomitant-medication log is the record of steroid use: none recorded is 0 mg/day.
    # Recomputed from the dose as entered, not read from the stored (rounded) equivalent.
    max_steroid = max(
        (dose.prednisone_equivalent_exact() or 0.0 for dose in steroid_doses),
        default=0.0,
    )
    uln = (labs.ranges_used if labs else {}) or {}
    try:
        sex, age_at_sample = lab_egfr_basis(labs, subject) if labs else (None, None)
    except ValidationError:  # the birth date was corrected to after the sample date
        sex, age_at_sample = None, None
    return eligibility_rules.EligibilityInputs(
        age_at_consent=subject.age_at_consent,
        onset_at=stroke.onset_at if stroke else None,
        planned_first_infusion_at=planned,
        nihss_total=nihss.total if nihss else None,
        nihss_1a=nihss.items()["1a"] if nihss and nihss.loc not in ("", "UN") else None,
        prestroke_mrs=mrs.score if mrs else None,
        ast=labs.ast if labs else None,
        alt=labs.alt if labs else None,
        ast_uln=float(uln["ast"][1]) if "ast" in uln else None,
        alt_uln=float(uln["alt"][1]) if "alt" in uln else None,
        creatinine_umol_l=labs.creatinine if labs else None,
        sex=sex,
        age_at_sample=age_at_sample,
        max_prednisone_equivalent_mg_per_day=max_steroid,
        thrombolysis_or_thrombectomy=(
            None if stroke is None or not (stroke.thrombolysis and stroke.thrombectomy)
            else stroke.thrombolysis != "no" or stroke.thrombectomy != "no"
        ),
        intracranial_hemorrhage=(
            None if stroke is None or not stroke.hemorrhage
            else stroke.hemorrhage in ("transformation", "ich")
        ),
        midline_shift_mm=float(stroke.midline_shift) if stroke and stroke.midline_shift
        is not None else None,
    )


def eligibility_review(subject: Subject):
    """The derived value of every derivable criterion and the verdict with the investigator's
    confirmations as saved."""
    checklist = EligibilityChecklist.objects.filter(subject=subject).first()
    derived = eligibility_rules.evaluate(eligibility_inputs(subject, checklist))
    confirmations = checklist.confirmations if checklist else {}
    verdict = eligibility_rules.verdict(derived, confirmations)
    return checklist, derived, verdict


@transaction.atomic
def eligibility_confirm(
    *,
    subject: Subject,
    user: User,
    planned_first_infusion_at: dt.datetime | None,
    confirmations: dict[str, bool | None],
    expected_version: int,
    reason: str = "",
) -> EligibilityChecklist:
    """Save the investigator's confirmations; derived values and the verdict are recomputed
    from the data and stored with them, so the record shows what the decision rested on."""
    if not can(user, Action.ENTER_DATA, subject.site):
        raise PermissionDenied(_("Your role does not allow data entry at this site."))
    checklist = crf_instance(model=EligibilityChecklist, subject=subject,
                             visit=subject.visits.get(code=protocol.SCREENING_VISIT.code))
    known = {c.code for c in eligibility_rules.CRITERIA}
    confirmations = {code: value for code, value in confirmations.items() if code in known}
    everything_answered = all(confirmations.get(code) is not None for code in known)
    checklist = crf_save(
        crf=checklist,
        values={"planned_first_infusion_at": planned_first_infusion_at,
                "confirmations": confirmations},
        user=user, expected_version=expected_version, complete=everything_answered,
        reason=reason,
    )
    derived = eligibility_rules.evaluate(eligibility_inputs(subject, checklist))
    verdict = eligibility_rules.verdict(derived, confirmations)
    checklist.derived = {
        code: {"value": str(d.value_display), "met": d.met} for code, d in derived.items()
    }
    checklist.contradictions = sorted(verdict.contradictions)
    checklist.eligible = verdict.eligible
    if can(user, Action.CONFIRM_ELIGIBILITY, subject.site):
        checklist.confirmed_by = user
        checklist.confirmed_at = timezone.now()
    else:
        # Saved by someone who may not confirm: it awaits an investigator again.
        checklist.confirmed_by = None
        checklist.confirmed_at = None
    audited_save(checklist, user=user,
                 reason=gettext_noop("Eligibility derived from entered data"), clean=False)
    return checklist


@transaction.atomic
def subject_randomize(*, subject: Subject, user: User) -> Subject:
    """Randomize an eligible subject: every criterion met and confirmed by an investigator, no
    contradiction between derived values and confirmations, and still within 72 hours of
    stroke onset. Allocation is done by ``visits.services.randomization_allocate``."""
    subject = Subject.objects.select_related("site").get(pk=subject.pk)
    if not can(user, Action.RANDOMIZE, subject.site):
        raise PermissionDenied(_("Your role does not allow randomization at this site."))
    if subject.status != SubjectStatus.SCREENING:
        raise ValidationError(_("Only a subject in screening can be randomized."))
    checklist, _derived, verdict = eligibility_review(subject)
    if checklist is None or not verdict.eligible or checklist.confirmed_by_id is None:
        raise ValidationError(
            _("The subject is not confirmed eligible: every criterion must be met and "
              "confirmed by an investigator.")
        )
    stroke = StrokeEvent.objects.get(subject=subject)
    now = timezone.now()
    hours = (now - stroke.onset_at).total_seconds() / 3600
    if hours > protocol.MAX_ONSET_TO_FIRST_INFUSION_HOURS:
        raise ValidationError(
            _("Stroke onset was %(hours).1f hours ago: randomization is only possible within "
              "%(limit)d hours.") % {"hours": hours,
                                     "limit": protocol.MAX_ONSET_TO_FIRST_INFUSION_HOURS}
        )
    refuse_if_locked(subject=subject)
    nihss = _screening_form(NIHSS, subject)
    stratum = stratum_for_nihss(nihss.total)
    return randomization_allocate(subject=subject, stratum=stratum, randomized_at=now, user=user)


def screening_forms_status(subject: Subject) -> dict[str, str]:
    """Status of each one-per-subject screening form (for the eligibility page)."""
    result = {}
    for model in (Demographics, MedicalHistory, StrokeEvent):
        status = model.objects.filter(subject=subject).values_list("status", flat=True).first()
        result[model.crf_code] = status or CRFStatus.NOT_STARTED
    return result
