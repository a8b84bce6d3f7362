"""The casebook as a PDF: every CRF with its values, the queries with their threads, the audit
trail and the signatures: a human-readable copy of a subject's record (21 CFR 11.10(b)).

Drawn with ReportLab; text uses the Adobe CID font STSong-Light, which every PDF reader has, so
Chinese and Latin text print without embedding a font file. Never contains the allocation.
"""

import datetime as dt
import io
from xml.sax.saxutils import escape

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from edc import protocol
from forms.models import CRF_MODELS, Missing
from forms.selectors import LOG_FORM_CODES, casebook_rows
from visits.models import Subject

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
BODY = ParagraphStyle("body", fontName=FONT, fontSize=8.5, leading=11)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9.5)
H1 = ParagraphStyle("h1", parent=BODY, fontSize=15, leading=19, spaceAfter=6)
H2 = ParagraphStyle("h2", parent=BODY, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4)
H3 = ParagraphStyle("h3", parent=BODY, fontSize=9.5, leading=12, spaceBefore=6, spaceAfter=2)
GRID = TableStyle([
    ("FONTNAME", (0, 0), (-1, -1), FONT),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
])


def _p(text, style=BODY) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def display(record: models.Model, name: str, zone) -> str:
    """An item's value as a person reads it: choice labels, Yes/No, site-local times."""
    field = record._meta.get_field(name)
    value = getattr(record, name)
    missing = (getattr(record, "missing_items", None) or {}).get(name)
    if missing:
        return f"[{Missing(missing).label}]"
    if value is None or value == "":
        return "—"
    if field.choices:
        return str(getattr(record, f"get_{name}_display")())
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, dt.datetime):
        return timezone.localtime(value, zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, models.Model):
        return str(value)
    return str(value)


def _record_table(record, zone) -> Table:
    units = type(record).units
    rows = [[_p(_("Item")), _p(_("Value"))]]
    for name in record.item_names():
        if name in ("ranges_used", "derived", "confirmations", "contradictions"):
            continue
        value = display(record, name, zone)
        unit = units.get(name, "")
        rows.append([_p(record._meta.get_field(name).verbose_name, SMALL),
                     _p(f"{value} {unit}".strip(), SMALL)])
    table = Table(rows, colWidths=[70 * mm, 100 * mm], repeatRows=1)
    table.setStyle(GRID)
    return table


def _record_block(record, zone) -> list:
    status = (f"{record.get_status_display()} · v{record.version} · "
              f"{_('SDV')}: {record.get_sdv_status_display()}")
    if record.not_done_reason:
        status += f" · {_('Form not done')}: {record.get_not_done_reason_display()}"
    title = str(record._meta.verbose_name)
    if record.slot_item:
        title += f" · {getattr(record, f'get_{record.slot_item}_display')()}"
    return [_p(f"{title} — {status}", H3), _record_table(record, zone)]


def casebook_pdf(*, subject: Subject, audit: list) -> bytes:
    """Render the casebook. ``audit`` are the audit-trail rows the reader may see."""
    zone = subject.site.zone
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
        bottomMargin=15 * mm, title=f"Casebook {subject.label}",
        author=protocol.TRIAL_REGISTRY_ID, subject=protocol.TRIAL_REGISTRY_ID,
    )
    generated = timezone.localtime(timezone.now(), zone).strftime("%Y-%m-%d %H:%M %Z")
    story: list = [
        _p(f"{protocol.TRIAL_REGISTRY_ID} — {_('Casebook')} {subject.label}", H1),
        _p(f"{_('Site')}: {subject.site} · {_('Status')}: {subject.get_status_display()} · "
           f"{_('Generated')}: {generated}"),
    ]
    if subject.consented_at:
        story.append(_p(
            f"{_('Informed consent')}: "
            f"{timezone.localtime(subject.consented_at, zone):%Y-%m-%d %H:%M}, "
            f"{subject.get_consent_signed_by_display()}, {subject.consent_form_version}"))
    if subject.randomization_number:
        story.append(_p(f"{_('Randomization number')}: {subject.randomization_number}"))

    story.append(_p(_("Signatures"), H2))
    signatures = list(subject.signatures.select_related("visit"))
    for signature in signatures:
        scope = signature.visit.label if signature.visit_id else _("Whole casebook")
        state = _("BROKEN: data changed after signing") if signature.is_broken else _("valid")
        story.append(_p(
            f"{scope}: {signature.printed_name}, "
            f"{timezone.localtime(signature.signed_at, zone):%Y-%m-%d %H:%M} — "
            f"“{signature.meaning}” ({state})"))
    if not signatures:
        story.append(_p(_("Not signed.")))

    by_visit: dict[tuple[int | None, str, str], list] = {}
    for code, model in CRF_MODELS.items():
        for record in model.objects.filter(subject=subject).order_by("pk"):
            by_visit.setdefault((record.visit_id, code, record.slot), []).append(record)
    for row in casebook_rows(subject):
        visit = row.visit
        date = f"{visit.actual_date:%Y-%m-%d}" if visit.actual_date else "—"
        story.append(_p(f"{visit.label} · {_('visit date')} {date} · {row.status.label}", H2))
        keys = [(visit.pk, cell.code, cell.slot) for cell in row.forms]
        # Then any other record of the visit (a time point the protocol no longer expects).
        keys += sorted(key for key in by_visit if key[0] == visit.pk and key not in keys)
        for key in keys:
            for record in by_visit.get(key, []):
                story.append(KeepTogether(_record_block(record, zone)))
    story.append(_p(_("Log forms"), H2))
    for code in LOG_FORM_CODES:
        for record in by_visit.get((None, code, ""), []):
            story.append(KeepTogether(_record_block(record, zone)))

    story += [PageBreak(), _p(_("Queries"), H2)]
    rows = [[_p(h, SMALL) for h in (_("Item"), _("Check"), _("Status"), _("Thread"))]]
    for query in subject.queries.prefetch_related("messages__author").order_by("raised_at"):
        thread = "<br/>".join(
            escape(f"{timezone.localtime(m.at, zone):%Y-%m-%d %H:%M} "
                   f"{m.author.printed_name if m.author else _('System')} "
                   f"({m.get_kind_display()}): {m.text}")
            for m in query.messages.all())
        rows.append([_p(f"{query.crf_code or _('visit')}.{query.field_name}", SMALL),
                     _p(query.check_code or _("manual"), SMALL),
                     _p(query.get_status_display(), SMALL), Paragraph(thread, SMALL)])
    table = Table(rows, colWidths=[35 * mm, 20 * mm, 20 * mm, 105 * mm], repeatRows=1)
    table.setStyle(GRID)
    story.append(table)

    story += [Spacer(1, 6 * mm), _p(_("Audit trail (times UTC)"), H2)]
    rows = [[_p(h, SMALL) for h in (_("Time"), _("User"), _("Record"), _("Item"), _("Old"),
                                    _("New"), _("Reason"))]]
    for item in audit:
        rows.append([_p(f"{item.when:%Y-%m-%d %H:%M:%S}", SMALL), _p(item.who, SMALL),
                     _p(f"{item.model} {item.record}", SMALL), _p(item.field_label, SMALL),
                     _p(item.old_value, SMALL), _p(item.new_value, SMALL),
                     _p(item.reason, SMALL)])
    table = Table(rows, colWidths=[26 * mm, 20 * mm, 36 * mm, 26 * mm, 24 * mm, 24 * mm,
                                   24 * mm], repeatRows=1)
    table.setStyle(GRID)
    story.append(table)
    document.build(story)
    return buffer.getvalue()
