"""Source data verification (SDV): a monitor compares a complete form, or single critical items,
with the hospital record and marks them verified (ICH E6(R3) monitoring).

Any later change to verified data turns the form to *changed since verified*: ``crf_save`` does
it in the same save, so the history row of the change records it. Only a whole-form
verification brings the form back to *verified*.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from edc.audit import AuditAction, audit_event
from edc.history import audited_save
from edc.models import Site, User
from edc.roles import Action, can, scope_to_user
from edc.validation import field_values
from forms.models import CRF, CRF_MODELS, CRFStatus
from forms.models.base import EditConflict, SDVStatus
from visits.models import Subject


@transaction.atomic
def crf_verify(*, crf: CRF, user: User, fields: list[str] | None = None) -> CRF:
    """Mark the whole form (``fields`` None) or the given items verified against source.

    The form must not have been saved since ``crf`` was read (the monitor verifies what they
    saw): otherwise :class:`forms.entry.services.EditConflict`.
    """
    model = type(crf)
    subject = Subject.objects.select_related("site").get(pk=crf.subject_id)
    if not can(user, Action.VERIFY_SOURCE, subject.site):
        raise PermissionDenied(_("Only the site's monitor may verify source data."))
    current = model.objects.select_for_update().get(pk=crf.pk)
    stored = field_values(current)
    if current.version != crf.version:
        raise EditConflict(current)
    if current.status != CRFStatus.COMPLETE:
        raise ValidationError(_("Only a complete form can be source data verified."))
    now = timezone.now()
    if fields is None:
        current.sdv_status = SDVStatus.VERIFIED
        current.verified_by = user
        current.verified_at = now
    else:
        if not fields:
            raise ValidationError(_("Choose the items to verify."))
        unknown = sorted(set(fields) - set(model.item_names()))
        if unknown:
            raise ValidationError(
                _("Not items of this form: %(items)s.") % {"items": ", ".join(unknown)}
            )
        stamp = {"by": user.pk, "at": now.isoformat()}
        current.verified_fields = current.verified_fields | dict.fromkeys(fields, stamp)
    # Only the verification changes: the form's other links and items are the stored row's,
    # validated when they were saved; the verifier is the user acting.
    audited_save(current, user=user, reason=gettext_noop("Source data verified"), stored=stored,
                 exclude=["verified_by"])
    audit_event(action=AuditAction.SOURCE_VERIFIED, user=user, obj=current, subject=subject,
                detail={"form": model.crf_code, "items": fields})
    return current


# --- Progress ----------------------------------------------------------------------------------


@dataclass
class SDVProgress:
    """Complete forms, how many of them are verified, and forms changed since verified."""

    complete: int = 0
    verified: int = 0
    changed: int = 0

    def add(self, complete: int, verified: int, changed: int) -> None:
        self.complete += complete
        self.verified += verified
        self.changed += changed

    @property
    def to_verify(self) -> int:
        return self.complete - self.verified

    @property
    def percent(self) -> int:
        return round(100 * self.verified / self.complete) if self.complete else 0


_COUNTS = {
    "complete": Count("pk", filter=Q(status=CRFStatus.COMPLETE)),
    "verified": Count("pk", filter=Q(status=CRFStatus.COMPLETE, sdv_status=SDVStatus.VERIFIED)),
    "changed": Count("pk", filter=Q(sdv_status=SDVStatus.CHANGED)),
}


def sdv_progress_by_site(user: User) -> dict[Site, SDVProgress]:
    """SDV progress of each of the user's sites, by site code. One query per CRF table."""
    sites = scope_to_user(Site.objects.order_by("code"), user, site_field="pk")
    progress = {site: SDVProgress() for site in sites}
    by_pk = {site.pk: site for site in progress}
    for model in CRF_MODELS.values():
        rows = (
            scope_to_user(model.objects.all(), user, site_field="subject__site")
            .values("subject__site").annotate(**_COUNTS).order_by()
        )
        for row in rows:
            site = by_pk.get(row["subject__site"])
            if site is not None:
                progress[site].add(row["complete"], row["verified"], row["changed"])
    return progress


def sdv_progress_for_subject(subject: Subject) -> SDVProgress:
    """SDV progress of one subject's forms. One query per CRF table."""
    progress = SDVProgress()
    for model in CRF_MODELS.values():
        counts = model.objects.filter(subject=subject).aggregate(**_COUNTS)
        progress.add(counts["complete"], counts["verified"], counts["changed"])
    return progress
