"""The casebook as a PDF: every CRF with its values, the queries with their threads, the audit
trail and the signatures: a human-readable copy of a subject's record (21 CFR 11.10(b)).

Drawn with ReportLab; text uses the Adobe CID font STSong-Light, which every PDF reader has, so
Chinese and Latin text print without embedding a font file. Never contains the allocation.
"""

import datetime as dt
import io
import re
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


PAGE_MARGIN = 15 * mm
FRAME_HEIGHT = A4[1] - 2 * PAGE_MARGIN
CELL_PADDING = 6  # points: ReportLab's default left and right padding of a table cell
# What a printable text cannot show as it is: control characters, shown as \u{hex}.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _markup(text) -> str:
    text = _UNPRINTABLE.sub(lambda m: f"\\u{{{ord(m[0]):x}}}", str(text))
    return escape(text.replace("\r\n", "\n")).replace("\n", "<br/>").replace("\r", "<br/>")


def _p(text, style=BODY) -> Paragraph:
    return Paragraph(_markup(text), style)


def _pieces(text: str, width: float, style: ParagraphStyle) -> list[str]:
    """``text`` in pieces each of which fits a table cell of ``width`` points well within a
    page, counting every glyph as wide as a Chinese one and every line break as a line: a
    table row cannot be split across pages, so a long text (a query answer, an old value in
    the audit trail) takes several rows instead of failing the whole casebook."""
    per_line = max(1, int((width - CELL_PADDING) / style.fontSize))
    most = max(1, int(FRAME_HEIGHT * 0.8 / style.leading))
    pieces, current, lines = [], [], 0
    for line in str(text).replace("\r\n", "\n").split("\n"):
        while True:
            need = max(1, -(-len(line) // per_line))
            if lines + need <= most:
                current.append(line)
                lines += need
                break
            room = (most - lines) * per_line
            if room > 0:
                current.append(line[:room])
                line = line[room:]
            pieces.append("\n".join(current))
            current, lines = [], 0
    pieces.append("\n".join(current))
    return pieces


def _rows(cells: list, widths: list[float], style: ParagraphStyle = SMALL) -> list[list]:
    """One table row of ``cells`` (texts or ready flowables), or several where a text is too
    long for one: the continuation rows hold the next pieces of the long texts."""
    columns = [[cell] if isinstance(cell, Paragraph) else _pieces(cell, width, style)
               for cell, width in zip(cells, widths, strict=True)]
    return [[(column[i] if isinstance(column[i], Paragraph) else Paragraph(
        _markup(column[i]), style)) if i < len(column) else ""
             for column in columns]
            for i in range(max(len(column) for column in columns))]


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
    widths = [70 * mm, 100 * mm]
    rows = [[_p(_("Item")), _p(_("Value"))]]
    for name in record.item_names():
        if name in ("ranges_used", "derived", "confirmations", "contradictions"):
            continue
        value = display(record, name, zone)
        unit = units.get(name, "")
        rows += _rows([_p(record._meta.get_field(name).verbose_name, SMALL),
                       f"{value} {unit}" if unit else value], widths)
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(GRID)
    return table


def _record_block(record, zone) -> list:
    # The messages are looked up outside the f-strings: xgettext does not read f-strings.
    sdv, not_done = _("SDV"), _("Form not done")
    status = (f"{record.get_status_display()} · v{record.version} · "
              f"{sdv}: {record.get_sdv_status_display()}")
    if record.not_done_reason:
        status += f" · {not_done}: {record.get_not_done_reason_display()}"
    title = str(record._meta.verbose_name)
    if record.slot_item:
        title += f" · {getattr(record, f'get_{record.slot_item}_display')()}"
    return [_p(f"{title} — {status}", H3), _record_table(record, zone)]


def casebook_pdf(*, subject: Subject, audit: list) -> bytes:
    """Render the casebook. ``audit`` are the audit-trail rows the reader may see."""
    zone = subject.site.zone
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=PAGE_MARGIN, rightMargin=PAGE_MARGIN,
        topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN, title=f"Casebook {subject.label}",
        author=protocol.TRIAL_REGISTRY_ID, subject=protocol.TRIAL_REGISTRY_ID,
    )
    generated = timezone.localtime(timezone.now(), zone).strftime("%Y-%m-%d %H:%M %Z")
    casebook, site, status, made = _("Casebook"), _("Site"), _("Status"), _("Generated")
    story: list = [
        _p(f"{protocol.TRIAL_REGISTRY_ID} — {casebook} {subject.label}", H1),
        _p(f"{site}: {subject.site} · {status}: {subject.get_status_display()} · "
           f"{made}: {generated}"),
    ]
    if subject.consented_at:
        consent = _("Informed consent")
        story.append(_p(
            f"{consent}: "
            f"{timezone.localtime(subject.consented_at, zone):%Y-%m-%d %H:%M}, "
            f"{subject.get_consent_signed_by_display()}, {subject.consent_form_version}"))
    if subject.randomization_number:
        number = _("Randomization number")
        story.append(_p(f"{number}: {subject.randomization_number}"))

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
        visit_date = _("visit date")
        story.append(_p(f"{visit.label} · {visit_date} {date} · {row.status.label}", H2))
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
    widths = [35 * mm, 20 * mm, 20 * mm, 105 * mm]
    rows = [[_p(h, SMALL) for h in (_("Item"), _("Check"), _("Status"), _("Thread"))]]
    for query in subject.queries.prefetch_related("messages__author").order_by("raised_at"):
        first = [f"{query.crf_code or _('visit')}.{query.field_name}",
                 query.check_code or _("manual"), query.get_status_display()]
        # One row per message (and more for a long one): the query's columns on the first.
        for m in query.messages.all():
            rows += _rows([*first, f"{timezone.localtime(m.at, zone):%Y-%m-%d %H:%M} "
                                   f"{m.author.printed_name if m.author else _('System')} "
                                   f"({m.get_kind_display()}): {m.shown_text}"], widths)
            first = ["", "", ""]
        if first[0]:
            rows += _rows([*first, ""], widths)
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(GRID)
    story.append(table)

    story += [Spacer(1, 6 * mm), _p(_("Audit trail (times UTC)"), H2)]
    rows = [[_p(h, SMALL) for h in (_("Time"), _("User"), _("Record"), _("Item"), _("Old"),
                                    _("New"), _("Reason"))]]
    widths = [26 * mm, 20 * mm, 36 * mm, 26 * mm, 24 * mm, 24 * mm, 24 * mm]
    for item in audit:
        rows += _rows([f"{item.when:%Y-%m-%d %H:%M:%S}", item.who, f"{item.model} {item.record}",
                       item.field_label, item.old_value, item.new_value, item.reason_shown],
                      widths)
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(GRID)
    story.append(table)
    document.build(story)
    return buffer.getvalue()
