"""Charts drawn on the server as inline SVG: no JavaScript, no external library, nothing the
strict content security policy would refuse (presentation attributes only, no ``style``).

Pure functions of numbers and labels returning safe markup; every label is escaped. Each chart
is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``; it scales
with its container through the ``viewBox``. The page shows the exact numbers in a table beside
it, for screen readers and for anyone who wants to read them.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

WIDTH = 640
INK = "#1d2433"
MUTED = "#5b6475"
GRID = "#d5dae3"
FONT_SIZE = 14
# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")

Label = str | Promise


@dataclass(frozen=True)
class Series:
    label: Label
    values: Sequence[int]
    colour: str = ""


def _join(parts) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _colours(series: Sequence[Series]) -> list[str]:
    return [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def nice_ticks(maximum: float, *, count: int = 5) -> list[int]:
    """Whole-number axis ticks from 0 to at least ``maximum``, with a step of 1, 2 or 5 × 10ⁿ."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = math.ceil(maximum / step) * step
    return list(range(0, int(top) + 1, int(step)))


def _text_width(text: str, size: int = FONT_SIZE) -> float:
    """Rough width of a label (no font metrics on the server): wide characters count double."""
    return sum(size * (1.0 if ord(ch) > 0x2E80 else 0.6) for ch in text)


def _truncate(text: str, width: float) -> str:
    if _text_width(text) <= width:
        return text
    while text and _text_width(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _svg(chart_id: str, title: Label, description: Label, height: float, body) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {w} {h}" '
        'role="img" aria-labelledby="{id}-title {id}-desc" font-size="{fs}" fill="{ink}">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>',
        w=WIDTH, h=_n(height), id=chart_id, fs=FONT_SIZE, ink=INK, title=title,
        desc=description, body=body,
    )


def _legend(series: Sequence[Series], colours: Sequence[str], *, top: float = 4,
            left: float = 8, lines: Sequence[str] = ()) -> tuple[SafeString, float]:
    """Swatches and labels across the top, wrapping; returns the markup and its height.
    ``lines`` gives, per series, a dash pattern to draw a line swatch instead of a box."""
    parts, x, y, row = [], left, top, 20
    for index, (item, colour) in enumerate(zip(series, colours, strict=True)):
        label = str(item.label)
        width = 22 + _text_width(label) + 16
        if x + width > WIDTH - 8 and x > left:
            x, y = left, y + row
        dash = lines[index] if index < len(lines) else None
        if dash is None:
            parts.append(format_html(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>',
                _n(x), _n(y + 2), colour))
        else:
            parts.append(format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="3"{}/>',
                _n(x - 2), _n(y + 8), _n(x + 14), _n(y + 8), colour,
                format_html(' stroke-dasharray="{}"', dash) if dash else ""))
        parts.append(format_html('<text x="{}" y="{}">{}</text>', _n(x + 18), _n(y + 12),
                                 label))
        x += width
    return _join(parts), (y - top) + row + 6


def _empty(chart_id, title, description, message: Label | None) -> SafeString:
    body = format_html(
        '<rect x="0.5" y="0.5" width="{}" height="79" fill="none" stroke="{}"/>'
        '<text x="{}" y="45" text-anchor="middle" fill="{}">{}</text>',
        WIDTH - 1, GRID, WIDTH // 2, MUTED, message or _("No data yet."))
    return _svg(chart_id, title, description, 80, body)


def _y_axis(ticks: Sequence[int], *, left: float, right: float, y_of) -> SafeString:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
            '<text x="{}" y="{}" text-anchor="end" fill="{}">{}</text>',
            _n(left), _n(y), _n(right), _n(y), GRID, _n(left - 6), _n(y + 4), MUTED, tick))
    return _join(parts)


def _x_labels(labels: Sequence[Label], centres: Sequence[float], *, y: float,
              slot: float) -> SafeString:
    """Category labels under the axis; every n-th one when they would overlap."""
    widest = max((_text_width(str(label)) for label in labels), default=0)
    every = max(1, math.ceil((widest + 8) / slot)) if slot else 1
    return _join(
        format_html('<text x="{}" y="{}" text-anchor="middle">{}</text>', _n(x), _n(y), label)
        for index, (label, x) in enumerate(zip(labels, centres, strict=True))
        if index % every == 0
    )


def bar_chart(*, chart_id: str, title: Label, description: Label, labels: Sequence[Label],
              values: Sequence[int], colour: str = PALETTE[0], label_width: float = 300,
              tooltips: Sequence[Label] = (), empty: Label | None = None) -> SafeString:
    """Horizontal bars, one per label, the value at the end of each bar. Long labels are
    shortened; ``tooltips`` gives the full text of each."""
    if not values or not any(values):
        return _empty(chart_id, title, description, empty)
    bar, gap, top = 22, 10, 8
    height = top + len(values) * (bar + gap) + 24
    left, right = label_width, WIDTH - 48
    ticks = nice_ticks(max(values))

    def x_of(value: float) -> float:
        return left + (right - left) * value / ticks[-1]

    parts = []
    for tick in ticks:
        x = x_of(tick)
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
            '<text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>',
            _n(x), top - 2, _n(x), _n(height - 22), GRID, _n(x), _n(height - 6), MUTED, tick))
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + index * (bar + gap)
        tip = tooltips[index] if index < len(tooltips) else label
        parts.append(format_html(
            '<g><title>{tip}: {value}</title>'
            '<text x="{lx}" y="{ty}" text-anchor="end">{label}</text>'
            '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}"/>'
            '<text x="{vx}" y="{ty}">{value}</text></g>',
            tip=tip, value=value, lx=_n(left - 8), ty=_n(y + bar / 2 + 4),
            label=_truncate(str(label), left - 16), x=_n(left), y=_n(y),
            w=_n(x_of(value) - left), h=bar, fill=colour, vx=_n(x_of(value) + 6)))
    return _svg(chart_id, title, description, height, _join(parts))


def stacked_bar_chart(*, chart_id: str, title: Label, description: Label,
                      labels: Sequence[Label], series: Sequence[Series],
                      empty: Label | None = None) -> SafeString:
    """Vertical columns, one per label, each stacked from ``series`` (first at the bottom),
    with the column's total above it."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    if not labels or not any(totals):
        return _empty(chart_id, title, description, empty)
    colours = _colours(series)
    legend, legend_height = _legend(series, colours)
    top, bottom, left, right = legend_height + 18, 28, 44, WIDTH - 12
    plot_height = 220
    height = top + plot_height + bottom
    ticks = nice_ticks(max(totals))

    def y_of(value: float) -> float:
        return top + plot_height - plot_height * value / ticks[-1]

    slot = (right - left) / len(labels)
    bar = min(56.0, slot * 0.7)
    parts = [legend, _y_axis(ticks, left=left, right=right, y_of=y_of)]
    centres = []
    for index, label in enumerate(labels):
        centre = left + slot * (index + 0.5)
        centres.append(centre)
        running = 0
        for item, colour in zip(series, colours, strict=True):
            value = item.values[index]
            if not value:
                continue
            y_top, y_bottom = y_of(running + value), y_of(running)
            parts.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                "<title>{}, {}: {}</title></rect>",
                _n(centre - bar / 2), _n(y_top), _n(bar), _n(y_bottom - y_top), colour,
                label, item.label, value))
            running += value
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="middle" font-weight="600">{}</text>',
            _n(centre), _n(y_of(running) - 5), running))
    parts.append(format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>',
                             left, _n(y_of(0)), right, _n(y_of(0)), MUTED))
    parts.append(_x_labels(labels, centres, y=height - 8, slot=slot))
    return _svg(chart_id, title, description, height, _join(parts))


def line_chart(*, chart_id: str, title: Label, description: Label, labels: Sequence[Label],
               series: Sequence[Series], target: int | None = None,
               target_label: Label = "", emphasise_last: bool = False,
               empty: Label | None = None) -> SafeString:
    """One line per series over the ``labels`` (e.g. months), a dot at each point, and an
    optional dashed target line. ``emphasise_last`` draws the last series thicker (a total)."""
    if not labels or not series:
        return _empty(chart_id, title, description, empty)
    colours = _colours(series)
    dashes = [""] * len(series)
    legend_series = list(series)
    if target is not None:
        legend_series.append(Series(target_label, (), MUTED))
        colours.append(MUTED)
        dashes.append("6 4")
    legend, legend_height = _legend(legend_series, colours, lines=dashes)
    colours = colours[: len(series)]
    top, bottom, left, right = legend_height + 14, 28, 44, WIDTH - 16
    plot_height = 230
    height = top + plot_height + bottom
    highest = max([max(s.values, default=0) for s in series] + [target or 0])
    ticks = nice_ticks(highest)

    def y_of(value: float) -> float:
        return top + plot_height - plot_height * value / ticks[-1]

    slot = (right - left) / len(labels)
    centres = [left + slot * (i + 0.5) for i in range(len(labels))]
    parts = [legend, _y_axis(ticks, left=left, right=right, y_of=y_of)]
    if target is not None:
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" '
            'stroke-dasharray="6 4"><title>{}</title></line>',
            left, _n(y_of(target)), right, _n(y_of(target)), MUTED, target_label))
    for index, (item, colour) in enumerate(zip(series, colours, strict=True)):
        thick = emphasise_last and index == len(series) - 1
        points = " ".join(f"{_n(x)},{_n(y_of(v))}" for x, v in zip(centres, item.values,
                                                                    strict=True))
        parts.append(format_html(
            '<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" '
            'stroke-linejoin="round"/>', points, colour, 4 if thick else 2.5))
        parts.append(_join(
            format_html('<circle cx="{}" cy="{}" r="{}" fill="{}"><title>{}, {}: {}</title>'
                        "</circle>", _n(x), _n(y_of(v)), 4.5 if thick else 3.5, colour,
                        item.label, label, v)
            for x, v, label in zip(centres, item.values, labels, strict=True)))
    parts.append(format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>',
                             left, _n(y_of(0)), right, _n(y_of(0)), MUTED))
    parts.append(_x_labels(labels, centres, y=height - 8, slot=slot))
    return _svg(chart_id, title, description, height, _join(parts))
