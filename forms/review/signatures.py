"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): an investigator signs a visit or the
whole casebook by re-entering their user ID and password (the password alone at later
signatures of the same session). The signature records the printed name, the date
and time and its meaning, and a fingerprint of the signed data; any later change to those data
breaks it, and the casebook asks for a new one."""

import hashlib
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from edc import protocol
from edc.audit import audit_event
from edc.history import audited_save
from edc.models import AuditAction, User
from edc.roles import Action, can
from edc.services import Prompt, password_confirms
from forms.models import CRF, CRF_MODELS, CRFStatus
from forms.models.signoff import Signature
from visits.models import Subject, Visit
from visits.services import subject_hold

MEANING = gettext_lazy(
    "I confirm that I have reviewed these data and they are accurate and complete."
)


def _expected(subject: Subject, visit: Visit | None) -> list[tuple[Visit, str, str]]:
    """(visit, CRF code, slot) of every expected record: PK/PD once per time point."""
    from forms.selectors import expected_forms

    visits = [visit] if visit is not None else [
        v for v in subject.visits.all() if v.actual_date is not None
    ]
    return [(v, code, slot) for v in visits for code, slot in expected_forms(v)
            if code in CRF_MODELS]


def signed_records(subject: Subject, visit: Visit | None, *,
                   for_update: bool = False) -> list[CRF]:
    """The CRFs a signature covers: a visit's forms, or every form of the subject.
    ``for_update`` locks them until the transaction ends: a save in progress finishes first
    (``crf_save`` reads its form ``FOR UPDATE``), and none starts before the signature is
    recorded, so a signature never fingerprints data a concurrent save is changing."""
    records: list[CRF] = []
    for model in CRF_MODELS.values():
        queryset = model.objects.filter(subject=subject)
        if visit is not None:
            queryset = queryset.filter(visit=visit)
        if for_update:
            queryset = queryset.select_for_update().order_by("pk")
        records.extend(queryset)
    return records


def fingerprint(records: list[CRF]) -> str:
    content = sorted((r.crf_code, r.pk, r.version) for r in records)
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def incomplete_forms(subject: Subject, visit: Visit | None,
                     records: list[CRF] | None = None) -> list[str]:
    """What still stops signing: expected forms not complete, saved forms in progress."""
    if records is None:
        records = signed_records(subject, visit)
    expected = _expected(subject, visit)
    expected_keys = {(v.pk, code, slot) for v, code, slot in expected}
    done = {(r.visit_id, r.crf_code, r.slot) for r in records
            if r.status == CRFStatus.COMPLETE}
    missing = [f"{v.label}: {CRF_MODELS[code]._meta.verbose_name}"
               + (f" ({protocol.pkpd_timepoint(slot).label})" if slot else "")
               for v, code, slot in expected if (v.pk, code, slot) not in done]
    missing += [f"{r._meta.verbose_name}: {r}" for r in records
                if r.status != CRFStatus.COMPLETE
                and (r.visit_id, r.crf_code, r.slot) not in expected_keys]
    return missing


# The session key holding who has signed in this session: 21 CFR 11.200(a)(1) asks for both
# components of the signature (user ID and password) at the first signing of a continuous
# session of controlled access, and at least the password at each later one.
SESSION_SIGNER = "edc_signed_in_session"


def user_id_needed(request, user: User) -> bool:
    """Whether this signature is the first of ``user``'s session (no request: no session, so
    every signature asks for both components)."""
    session = getattr(request, "session", None)
    return session is None or session.get(SESSION_SIGNER) != user.pk


def casebook_sign(*, subject: Subject, user: User, password: str, username: str | None = None,
                  visit: Visit | None = None, request=None) -> Signature:
    """Sign a visit's forms or the whole casebook. The first signature of a session needs the
    user ID (``username``) and the password, later ones the password (``user_id_needed``).
    Both are checked before the signature's transaction opens, so every wrong attempt counts
    towards the lockout and stays in the audit trail (``password_confirms``)."""
    if not can(user, Action.SIGN_CASEBOOK, subject.site):
        raise PermissionDenied(_("Only an investigator of this site signs casebooks."))
    needs_user_id = user_id_needed(request, user)
    if not password_confirms(user, password, request, prompt=Prompt.SIGNATURE,
                             username=(username or "") if needs_user_id else None):
        if needs_user_id:
            raise ValidationError({"password": _("The user ID or the password is not correct.")})
        raise ValidationError({"password": _("The password is not correct.")})
    signature = _signature_record(subject=subject, visit=visit, user=user)
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_SIGNER] = user.pk
    return signature


@transaction.atomic
def _signature_record(*, subject: Subject, visit: Visit | None, user: User) -> Signature:
    # First the subject, exclusively: saves in progress finish first, and a save that comes
    # now waits, then sees this signature (``visits.services.subject_hold``).
    subject_hold(subject.pk, exclusive=True)
    records = signed_records(subject, visit, for_update=True)
    missing = incomplete_forms(subject, visit, records)
    if missing:
        raise ValidationError(
            _("Signing needs complete forms. Not complete: %(forms)s.")
            % {"forms": "; ".join(missing)}
        )
    signature = Signature(
        subject=subject, visit=visit, signer=user, printed_name=user.printed_name,
        meaning=str(MEANING), signed_at=timezone.now(),
        fingerprint=fingerprint(records),
    )
    audited_save(signature, user=user, reason=gettext_noop("Signed"))
    audit_event(action=AuditAction.SIGNED, user=user, obj=signature,
                detail={"scope": visit.code if visit else "casebook",
                        "fingerprint": signature.fingerprint})
    return signature


def signatures_covering(subject_id, visit_id):
    """The valid signatures over a record of this subject and visit (None: a log form): the
    casebook's and the visit's. Either id may be an ``OuterRef`` (``crf_instance`` asks
    whether any exists in the read of the form itself)."""
    return Signature.objects.filter(
        models.Q(visit=None) | models.Q(visit_id=visit_id), subject_id=subject_id,
        is_broken=False)


def signatures_break(*, crf: CRF, user: User) -> list[Signature]:
    """Mark broken every valid signature covering ``crf`` (called by crf_save after a change
    to saved data; runs inside its transaction)."""
    covering = signatures_covering(crf.subject_id, crf.visit_id).select_for_update()
    broken = []
    now = timezone.now()
    for signature in covering:
        signature.is_broken = True
        signature.broken_at = now
        signature.broken_reason = _("%(form)s changed by %(user)s") % {
            "form": crf._meta.verbose_name, "user": user.printed_name}
        audited_save(signature, user=user, clean=False,
                     reason=gettext_noop("Signature broken by a change to signed data"))
        # The form's subject (read by the save, same subject) gives the event its site.
        audit_event(action=AuditAction.SIGNATURE_BROKEN, user=user, obj=signature,
                    subject=crf.subject, detail={"changed": f"{crf.crf_code}:{crf.pk}"})
        broken.append(signature)
    return broken
