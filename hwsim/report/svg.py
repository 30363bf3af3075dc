"""Small inline-SVG charts for the HTML report: a line chart, a bar histogram and a heat map.

Each function returns one ``<svg>`` element as text, sized in CSS pixels,
with ``<title>`` tooltips on the marks; all text is escaped.  Series that the
page's script can toggle carry the class ``s<i>`` (``i`` = the series index).
"""

from __future__ import annotations

import math
from html import escape

__all__ = ["PALETTE", "color", "line_chart", "histogram", "heatmap", "strips", "ramp", "nice_ticks"]

#: distinguishable series colours (targets), reused cyclically
PALETTE = ("#2f6fb3", "#e3702d", "#1b9e6f", "#d6336c", "#7b4fc9", "#0f9bb0", "#a87c0b", "#5a6570",
           "#c23b22", "#4c9a2a", "#b04fa8", "#1d4e89")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def fit(label: str, limit: int = 44) -> str:
    """``label`` shortened in the middle to at most ``limit`` characters (the ends say the most)."""
    if len(label) <= limit:
        return label
    head = (limit - 1) // 2
    return label[:head] + "…" + label[len(label) - (limit - 1 - head):]


def _label_width(labels, cap: int = 330) -> int:
    return min(cap, int(6.4 * max((len(fit(s)) for s in labels), default=4)) + 14)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.0f}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def line_chart(series: list[tuple[str, list]], x_labels: list[str], *, y_label: str, inf_label: str = "exact",
               height: int = 320, min_width: int = 640, step: int = 34) -> str:
    """Lines over categorical x (e.g. layers); a value of +inf is drawn on a band above the plot.

    ``series``: (name, values) with one value per x label (None: no point).
    """
    n = len(x_labels)
    label_room = min(190, int(4.6 * max((len(fit(s, 36)) for s in x_labels), default=4)) + 16)
    left, right, top, bottom = 54, 16, 30, label_room
    width = max(min_width, left + right + step * max(n, 1))
    plot_w, plot_h = width - left - right, height - top - bottom
    finite = [v for _, vals in series for v in vals if v is not None and math.isfinite(v)]
    has_inf = any(v is not None and math.isinf(v) and v > 0 for _, vals in series for v in vals)
    lo = min(0.0, min(finite, default=0.0))
    hi = max(finite, default=1.0)
    hi = hi + 0.08 * (hi - lo or 1.0)
    ticks = nice_ticks(lo, hi)

    def x(i: int) -> float:
        return left + (i + 0.5) * plot_w / max(n, 1)

    def y(v: float) -> float:
        if math.isinf(v):
            return top - 14 if v > 0 else top + plot_h
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">']
    for t in ticks:
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    if has_inf:
        out.append(f'<text class="tick" x="{left - 6}" y="{top - 10}" text-anchor="end">{escape(inf_label)}</text>'
                   f'<line class="grid dashed" x1="{left}" x2="{width - right}" y1="{top - 14}" y2="{top - 14}"/>')
    out.append(f'<text class="axis" transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for i, label in enumerate(x_labels):
        out.append(f'<text class="xlabel" transform="translate({x(i) + 4:.1f} {top + plot_h + 10}) rotate(-50)" '
                   f'text-anchor="end">{escape(fit(label, 36))}<title>{escape(label)}</title></text>')
    for si, (name, vals) in enumerate(series):
        c = color(si)
        pts = [(x(i), y(v), v, x_labels[i]) for i, v in enumerate(vals) if v is not None]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
        out.append(f'<g class="series s{si}"><polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>')
        for px, py, v, label in pts:
            shown = escape(inf_label) if math.isinf(v) and v > 0 else f"{v:.2f}"
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{c}" stroke="#fff" stroke-width="1">'
                       f'<title>{escape(name)} · {escape(label)}: {shown}</title></circle>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def histogram(edges: list[float], counts: list[int], *, title: str, bar_color: str, width: int = 260,
              height: int = 150, x_unit: str = "") -> str:
    """Bars of ``counts`` over ``edges`` (len(edges) == len(counts) + 1), with the zero line marked."""
    left, right, top, bottom = 8, 8, 22, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1.0
    peak = max(counts, default=0) or 1
    total = sum(counts) or 1

    def x(v: float) -> float:
        return left + (v - lo) / span * plot_w

    out = [f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">',
           f'<text class="htitle" x="{left}" y="14">{escape(title)}</text>']
    for i, c in enumerate(counts):
        if c == 0:
            continue
        h = c / peak * plot_h
        x0, x1 = x(edges[i]), x(edges[i + 1])
        out.append(f'<rect x="{x0:.1f}" y="{top + plot_h - h:.1f}" width="{max(0.5, x1 - x0 - 0.6):.1f}" '
                   f'height="{h:.1f}" fill="{bar_color}"><title>[{edges[i]:.3g}, {edges[i + 1]:.3g}){escape(x_unit)}: '
                   f'{c} ({100 * c / total:.1f}%)</title></rect>')
    zx = x(0.0) if lo <= 0 <= hi else None
    if zx is not None:
        out.append(f'<line class="zero" x1="{zx:.1f}" x2="{zx:.1f}" y1="{top}" y2="{top + plot_h}"/>')
    out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
               f'<text class="tick" x="{left}" y="{height - 6}">{lo:.3g}</text>'
               f'<text class="tick" x="{width - right}" y="{height - 6}" text-anchor="end">{hi:.3g}</text>'
               f'<text class="tick" x="{width / 2:.0f}" y="{height - 6}" text-anchor="middle">0</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(row_labels: list[str], col_labels: list[str], cells: list[list], *, fill, text=None, tip=None,
            cell_w: int = 64, cell_h: int = 22, col_label_angle: int = -40, show_col_labels: bool = True) -> str:
    """A grid of coloured cells.

    ``cells[r][c]`` is any value (None: an empty, grey cell); ``fill(v)`` gives
    its colour, ``text(v)`` an optional short label drawn in the cell and
    ``tip(r, c, v)`` its tooltip.
    """
    label_w = _label_width(row_labels)
    col_room = (min(130, 6 * max((len(s) for s in col_labels), default=4) + 14) if show_col_labels else 8)
    width = label_w + cell_w * len(col_labels) + 10
    height = col_room + cell_h * len(row_labels) + 6
    out = [f'<svg class="heat" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">']
    if show_col_labels:
        for c, label in enumerate(col_labels):
            cx = label_w + (c + 0.5) * cell_w
            out.append(f'<text class="xlabel" transform="translate({cx:.1f} {col_room - 6}) rotate({col_label_angle})" '
                       f'text-anchor="start">{escape(label)}</text>')
    for r, label in enumerate(row_labels):
        ry = col_room + r * cell_h
        out.append(f'<text class="rlabel" x="{label_w - 8}" y="{ry + cell_h / 2 + 4:.1f}" '
                   f'text-anchor="end">{escape(fit(label))}<title>{escape(label)}</title></text>')
        for c, v in enumerate(cells[r]):
            rx = label_w + c * cell_w
            f = "#eceef1" if v is None else fill(v)
            tooltip = f"<title>{escape(tip(r, c, v))}</title>" if tip is not None else ""
            out.append(f'<rect x="{rx}" y="{ry}" width="{cell_w - 1}" height="{cell_h - 1}" fill="{f}">'
                       f'{tooltip}</rect>')
            if text is not None and v is not None:
                label_text = text(v)
                if label_text:
                    out.append(f'<text class="cell" x="{rx + cell_w / 2:.1f}" y="{ry + cell_h / 2 + 4:.1f}" '
                               f'text-anchor="middle">{escape(label_text)}</text>')
    out.append("</svg>")
    return "".join(out)


def strips(rows: list[tuple[str, list]], *, fill, tip=None, width: int = 900, row_h: int = 18) -> str:
    """One row of cells per label, every row ``width`` pixels wide whatever its number of cells
    (e.g. the channels of each layer); ``fill(v)`` colours a cell, ``tip(r, c, v)`` is its tooltip."""
    label_w = _label_width([label for label, _ in rows])
    total_w, total_h = label_w + width + 10, row_h * len(rows) + 4
    out = [f'<svg class="heat" width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">']
    for r, (label, values) in enumerate(rows):
        ry = 2 + r * row_h
        out.append(f'<text class="rlabel" x="{label_w - 8}" y="{ry + row_h / 2 + 4:.1f}" '
                   f'text-anchor="end">{escape(fit(label))}<title>{escape(label)}</title></text>')
        n = max(1, len(values))
        cw = width / n
        gap = 1.0 if cw >= 4 else 0.0
        for c, v in enumerate(values):
            tooltip = f"<title>{escape(tip(r, c, v))}</title>" if tip is not None else ""
            out.append(f'<rect x="{label_w + c * cw:.2f}" y="{ry}" width="{max(0.5, cw - gap):.2f}" '
                       f'height="{row_h - 2}" fill="{fill(v)}">{tooltip}</rect>')
    out.append("</svg>")
    return "".join(out)


def ramp(v: float, start: tuple = (255, 255, 255), end: tuple = (200, 30, 45)) -> str:
    """A colour between ``start`` (v = 0) and ``end`` (v = 1), v clipped to [0, 1]."""
    v = min(1.0, max(0.0, float(v)))
    rgb = tuple(round(a + (b - a) * v) for a, b in zip(start, end))
    return "#%02x%02x%02x" % rgb
