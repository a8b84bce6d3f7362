"""The casebook PDF: every CRF with its values, the queries, the audit trail and the
signatures, and never the allocation (issue 6, item 7)."""

import datetime as dt
import hashlib
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from edc import protocol
from edc.roles import Role
from forms.entry import services
from forms.models import CRF_MODELS, VitalSigns
from forms.quality import queries
from forms.review import signatures
from tests.factories import PASSWORD, UserFactory, randomized_subject


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse,
                              randomized_at=timezone.now() - dt.timedelta(days=5))


def test_casebook_pdf_holds_values_queries_audit_and_signatures(client, site, subject, nurse):
    investigator = UserFactory(role=Role.INVESTIGATOR, sites=[site], first_name="Wang",
                               last_name="Wei")
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    visit = subject.visits.get(code="D2")
    services.visit_record(visit=visit, actual_date=visit.planned_date, user=nurse)
    vitals = services.crf_save(crf=VitalSigns(subject=subject, visit=visit), user=nurse,
                               expected_version=0, values={"heart_rate": 131})
    queries.query_raise(target=vitals, field_name="spo2", text="Was oxygen given?",
                        user=monitor)
    services.crf_save(crf=vitals, user=nurse, expected_version=1,
                      values={"heart_rate": 118}, reason="Source says 118")
    for code, slot in protocol.visit_def("D2").expected_forms():
        crf = services.crf_instance(model=CRF_MODELS[code], subject=subject,
                                    visit=visit, slot=slot)
        services.crf_save(crf=crf, values={}, user=nurse, expected_version=crf.version,
                          complete=True, not_done_reason="not_done", reason="Not done")
    signatures.casebook_sign(subject=subject, visit=visit, user=investigator,
                             username=investigator.username,
                             password=PASSWORD)

    client.force_login(investigator)
    response = client.get(reverse("forms:casebook_pdf", args=[subject.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    text = pdf_text(response.content)
    assert subject.subject_id in text
    assert "Vital signs" in text or "vital signs" in text
    assert "Was oxygen given?" in text
    assert "Source says 118" in text  # the reason in the audit trail
    assert "Wang Wei" in text and "accurate and complete" in text
    for arm in protocol.ARMS:
        assert str(arm.label) not in text
    assert "placebo" not in text.lower()


def test_site_staff_cannot_export_the_casebook(client, subject, nurse):
    client.force_login(nurse)
    assert client.get(reverse("forms:casebook_pdf", args=[subject.pk])).status_code == 403


def squeezed(text: str) -> str:
    return "".join(text.split())


def test_long_answers_and_values_print_over_as_many_pages_as_they_need(
        client, site, subject, nurse):
    """A 1,500-character query answer was a 500 (a table row taller than a page); a long text
    now continues in further rows, and every character of it is in the PDF."""
    investigator = UserFactory(role=Role.INVESTIGATOR, sites=[site])
    monitor = UserFactory(role=Role.MONITOR, sites=[site])
    visit = subject.visits.get(code="D2")
    services.visit_record(visit=visit, actual_date=visit.planned_date, user=nurse)
    vitals = services.crf_save(crf=VitalSigns(subject=subject, visit=visit), user=nurse,
                               expected_version=0, values={"heart_rate": 131})
    query = queries.query_raise(target=vitals, field_name="heart_rate",
                                text="Please check the heart rate.", user=monitor)
    answer = ("The heart rate was re-measured twice; Source document page 12 confirms 131. "
              * 25)[:1500].strip()
    lines = "\n".join(f"line {i} of a pasted note" for i in range(150))  # 3,800 characters
    queries.query_answer(query=query, text=answer, user=nurse)
    queries.query_requery(query=query, text=lines, user=monitor)
    reason = "Corrected after source data verification " * 24  # 984 characters
    services.crf_save(crf=vitals, user=nurse, expected_version=1, values={"heart_rate": 118},
                      reason=reason.strip())

    client.force_login(investigator)
    response = client.get(reverse("forms:casebook_pdf", args=[subject.pk]))
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.content))
    text = squeezed("".join(page.extract_text() for page in reader.pages))
    for header in ("ItemCheckStatusThread", "TimeUserRecordItemOldNewReason"):
        text = text.replace(header, "")  # repeated on each page a table continues on
    assert squeezed(answer) in text
    assert squeezed(lines) in text
    assert squeezed(reason) in text


def test_the_casebook_pdf_prints_in_chinese_for_a_chinese_reader(client, site, subject, nurse):
    """The investigator who reads the EDC in Chinese gets the casebook in Chinese, printed in
    ReportLab's built-in CID font (STSong-Light: nothing downloaded, nothing embedded); the
    characters read back from the PDF. Codes, the system's reasons and the edit check's
    question are in the reader's language; what people typed is as they typed it."""
    from django.utils import translation

    from forms.quality.checks import CHECKS_BY_CODE

    investigator = UserFactory(role=Role.INVESTIGATOR, sites=[site], language="zh-hans",
                               first_name="伟", last_name="王")
    visit = subject.visits.get(code="D2")
    services.visit_record(visit=visit, actual_date=visit.planned_date, user=nurse)
    services.crf_save(crf=VitalSigns(subject=subject, visit=visit), user=nurse,
                      expected_version=0, values={"systolic_bp": 190,
                                                  "measured_at": timezone.now()})

    client.force_login(investigator)
    response = client.get(reverse("forms:casebook_pdf", args=[subject.pk]),
                          HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    raw = response.content
    assert b"STSong-Light" in raw and b"FontFile" not in raw  # a CID font, none embedded
    text = pdf_text(raw)
    with translation.override("zh-hans"):
        expected = [translation.gettext(t) for t in ("Signatures", "Queries", "Log forms",
                                                      "Audit trail (times UTC)")]
        question = str(CHECKS_BY_CODE["VS-001"].message)
    for chinese in expected:
        assert chinese.isascii() is False
        assert chinese in text.replace("\n", "")
    assert question.replace(" ", "") in text.replace("\n", "").replace(" ", "")
    assert "Signatures" not in text and "Audit trail" not in text
    assert subject.subject_id in text
