"""What the trial holds (the summary printed) and its fingerprint (``trial_digest``)."""

import dataclasses
import datetime as dt
import hashlib
import json
from collections import Counter
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from forms.models import (
    CRF_MODELS,
    AdverseEvent,
    ConcomitantMedication,
    ProtocolDeviation,
)
from forms.models.base import SDVStatus
from forms.models.signoff import Lock, LockScope, Signature
from forms.quality.queries import (
    MessageKind,
    Query,
    QueryMessage,
    QueryStatus,
)
from visits.models import (
    Subject,
    SubjectIdentity,
    SubjectStatus,
    Visit,
)


@dataclasses.dataclass
class TrialSummary:
    subjects: Counter
    visits_done: int
    visits_missed: int
    crfs: int
    crf_history_rows: int
    queries: Counter
    requeried: int
    system_queries: int
    manual_queries: int
    adverse_events: int
    serious_adverse_events: int
    medications: int
    deviations: int
    verified_forms: int
    signed_casebooks: int
    locked_subjects: int
    seconds: float = 0.0
    digest: str = ""
    # Who entered the data: "username (role, sites)", the accounts made for it included.
    accounts: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        statuses = ", ".join(f"{SubjectStatus(s).label.lower()} {n}"
                             for s, n in sorted(self.subjects.items()))
        queries = ", ".join(f"{QueryStatus(s).label.lower()} {self.queries[s]}"
                            for s in QueryStatus.values)
        return [
            f"Subjects: {sum(self.subjects.values())} ({statuses})",
            f"Visits: {self.visits_done} done, {self.visits_missed} missed",
            f"CRFs: {self.crfs} ({self.crf_history_rows} history rows)",
            f"Queries: {sum(self.queries.values())} ({queries}; {self.requeried} re-queried; "
            f"{self.system_queries} by edit checks, {self.manual_queries} manual)",
            f"Adverse events: {self.adverse_events} ({self.serious_adverse_events} serious); "
            f"concomitant medications: {self.medications}; protocol deviations: "
            f"{self.deviations}",
            f"Sign-off: {self.verified_forms} forms source-verified, {self.signed_casebooks} "
            f"casebooks signed, {self.locked_subjects} subjects locked",
            f"Seconds: {self.seconds:.1f}",
            f"Digest of the clinical data: {self.digest}",
        ]


def trial_summary() -> TrialSummary:
    return TrialSummary(
        subjects=Counter(Subject.objects.values_list("status", flat=True)),
        visits_done=Visit.objects.filter(actual_date__isnull=False).count(),
        visits_missed=Visit.objects.filter(is_missed=True).count(),
        crfs=sum(model.objects.count() for model in CRF_MODELS.values()),
        crf_history_rows=sum(model.history.count() for model in CRF_MODELS.values()),
        queries=Counter(Query.objects.values_list("status", flat=True)),
        requeried=Query.objects.filter(messages__kind=MessageKind.REQUERIED).distinct().count(),
        system_queries=Query.objects.exclude(check_code="").count(),
        manual_queries=Query.objects.filter(check_code="").count(),
        adverse_events=AdverseEvent.objects.count(),
        serious_adverse_events=AdverseEvent.objects.filter(is_serious=True).count(),
        medications=ConcomitantMedication.objects.count(),
        deviations=ProtocolDeviation.objects.count(),
        verified_forms=sum(model.objects.filter(sdv_status=SDVStatus.VERIFIED).count()
                           for model in CRF_MODELS.values()),
        signed_casebooks=Signature.objects.filter(visit=None, is_broken=False).count(),
        locked_subjects=Lock.objects.filter(scope=LockScope.SUBJECT,
                                            unlocked_at__isnull=True).count(),
    )




# --- Fingerprint ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return value


def trial_digest() -> str:
    """SHA-256 of the clinical data (subjects, identities, visits, every CRF with the reasons
    and authors of its history, every query with its messages), keyed by screening number,
    visit and order of entry rather than database ids and leaving out when rows were saved:
    the same seed, subjects and as-of date give the same digest in any fresh database."""
    content: dict[str, Any] = {}
    subjects = dict(Subject.objects.values_list("pk", "screening_number"))
    visits = {pk: f"{subjects[subject]}/{code}{sequence or ''}"
              for pk, subject, code, sequence in Visit.objects.values_list(
                  "pk", "subject_id", "code", "sequence")}
    content["subjects"] = [
        [s.screening_number, s.subject_id, s.status, _plain(s.screened_at),
         _plain(s.consented_at), s.consent_signed_by, s.consent_form_version,
         s.age_at_consent, s.screen_failure_criteria, _plain(s.randomized_at),
         s.randomization_number]
        for s in Subject.objects.order_by("screening_number")
    ]
    content["identities"] = sorted(
        [subjects[i.subject_id], i.full_name, str(i.birth_date), i.hospital_record_number,
         i.phone] for i in SubjectIdentity.objects.all())
    content["visits"] = sorted(
        [visits[v.pk], str(v.planned_date), str(v.actual_date), v.is_missed, v.missed_reason]
        for v in Visit.objects.all())
    keys: dict[tuple[int, int], str] = {}
    for code, model in CRF_MODELS.items():
        content_type = ContentType.objects.get_for_model(model)
        history: dict[int, list] = {}
        for pk, kind, reason, author in model.history.order_by("history_id").values_list(
                "id", "history_type", "history_change_reason", "history_user__username"):
            history.setdefault(pk, []).append([kind, reason, author])
        rows = []
        ordinal: Counter = Counter()
        for record in model.objects.order_by("subject__screening_number", "pk"):
            where = (visits[record.visit_id] if record.visit_id
                     else f"{subjects[record.subject_id]}/log")
            ordinal[where] += 1
            key = f"{where}/{code}/{ordinal[where]}"
            keys[(content_type.pk, record.pk)] = key
            rows.append([key, record.status, record.not_done_reason, record.missing_items,
                         [_plain(getattr(record, name)) for name in model.item_names()],
                         history.get(record.pk, [])])
        content[code] = rows
    visit_type = ContentType.objects.get_for_model(Visit).pk
    queries = []
    for query in Query.objects.prefetch_related(models.Prefetch(
            "messages", queryset=QueryMessage.objects.select_related("author"))):
        target = (visits[query.object_id] if query.content_type_id == visit_type
                  else keys[(query.content_type_id, query.object_id)])
        messages = [[m.kind, m.text, m.author.username if m.author else None, _plain(m.at)]
                    for m in query.messages.all()]
        queries.append([target, query.field_name, query.check_code, query.status,
                        query.resolution, query.text, _plain(query.raised_at), messages])
    content["queries"] = sorted(queries, key=json.dumps)
    encoded = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
