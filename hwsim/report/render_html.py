"""A :class:`~hwsim.report.result.Report` as one self-contained HTML page.

No external scripts, fonts, styles or network: the CSS, the inline SVG plots
(:mod:`hwsim.report.svg`) and a small script (legend toggles) are all in the
file.  When the script has run without an exception it sets
``data-rendered="ok"`` on ``<html>`` and fills ``#render-status`` -- the test
that opens the page in headless Chromium checks that marker.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from hwsim.report import svg
from hwsim.report.render_terminal import fmt_count, fmt_db, fmt_share

__all__ = ["render_html"]

_MAX_CHANNEL_COLUMNS = 96

_CSS = """
:root { --ink: #1d2330; --muted: #667085; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff; --accent: #2f6fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #1d2738; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: .2px; }
header .meta { color: #c5cedc; font-size: 13px; }
header .meta b { color: #fff; font-weight: 600; }
main { max-width: 1280px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin: 18px 0;
          padding: 16px 20px 18px; box-shadow: 0 1px 2px rgba(16, 24, 40, .04); }
h2 { font-size: 17px; margin: 0 0 4px; }
p.lead { color: var(--muted); margin: 0 0 12px; max-width: 900px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { font-weight: 600; color: #344054; background: #fafbfc; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; }
td.good { background: #e6f4ea; } td.fair { background: #fff6d6; } td.bad { background: #fde2e1; color: #8a1c1c; }
td.hot { background: #c8283a; color: #fff; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 10px; margin: 4px 0 8px; }
.legend button { font: inherit; font-size: 12.5px; border: 1px solid var(--line); background: #fff;
                 border-radius: 14px; padding: 2px 10px 2px 8px; cursor: pointer; }
.legend button.off { opacity: .35; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }
svg text { font-family: inherit; }
svg .grid { stroke: #e6e8ec; stroke-width: 1; } svg .dashed { stroke-dasharray: 4 3; }
svg .tick { font-size: 11px; fill: var(--muted); } svg .axis { font-size: 12px; fill: #344054; }
svg .xlabel { font-size: 11px; fill: #344054; } svg .rlabel { font-size: 11.5px; fill: #344054; }
svg .cell { font-size: 11px; fill: #1d2330; pointer-events: none; }
svg .htitle { font-size: 12px; font-weight: 600; fill: #344054; }
svg .zero { stroke: #1d2330; stroke-width: 1; stroke-dasharray: 2 2; }
svg .series.hidden { display: none; }
.grid-hist { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 10px 14px; }
details { border-top: 1px solid var(--line); padding: 8px 0; }
details summary { cursor: pointer; font-weight: 600; }
.note { color: var(--muted); font-size: 12.5px; }
.scale { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); margin: 4px 0; }
.scale span.bar { width: 120px; height: 10px; border-radius: 3px; }
#render-status { display: none; }
"""

_SCRIPT = """
(function () {
  document.querySelectorAll('.legend').forEach(function (legend) {
    var chart = document.getElementById(legend.dataset.chart);
    legend.querySelectorAll('button').forEach(function (button) {
      button.addEventListener('click', function () {
        var off = button.classList.toggle('off');
        chart.querySelectorAll('.series.' + button.dataset.series).forEach(function (g) {
          g.classList.toggle('hidden', off);
        });
      });
    });
  });
  var n = document.querySelectorAll('svg').length;
  document.getElementById('render-status').textContent = 'rendered ' + n + ' svg';
  document.documentElement.setAttribute('data-rendered', 'ok');
})();
"""


def _db_class(v) -> str:
    if v is None:
        return ""
    if v >= 30:
        return "good"
    if v >= 15:
        return "fair"
    return "bad"


def _loss_class(v, reference: float | None = 1.0) -> str:
    """A share (agreement, accuracy) against what float gets: 0.3 points lost is 'fair', 1 point 'bad'."""
    if v is None or reference is None:
        return ""
    lost = reference - v
    return "bad" if lost >= 0.01 else "fair" if lost >= 0.003 else "good"


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _summary_tables(report) -> str:
    targets = report.targets
    parts = []
    for name in report.output_names():
        res = {t: r.output(name) for t, r in targets.items()}
        first = next(iter(res.values()))
        float_acc = (report.float_scores.get(name) or {}).get("accuracy")
        rows = [("SQNR (dB)", lambda o: (fmt_db(o.metrics.sqnr_db), _db_class(o.metrics.sqnr_db)))]
        if first.top1_agreement is not None:
            rows.append(("top-1 agreement", lambda o: (fmt_share(o.top1_agreement), _loss_class(o.top1_agreement))))
        if first.top5_agreement is not None:
            rows.append(("top-5 agreement", lambda o: (fmt_share(o.top5_agreement), _loss_class(o.top5_agreement))))
        if first.accuracy is not None:
            rows.append(("accuracy", lambda o: (fmt_share(o.accuracy), _loss_class(o.accuracy, float_acc))))
        rows += [("max error (LSB)", lambda o: (_fmt(o.metrics.max_error_lsb), "")),
                 ("max error", lambda o: (_fmt(o.metrics.max_abs_error), "")),
                 ("mean error (bias)", lambda o: (_fmt(o.metrics.mean_error, 2), "")),
                 ("cosine", lambda o: (f"{o.metrics.cosine:.5f}", ""))]
        head = "".join(f"<th>{escape(t).replace('-', '-<wbr>')}</th>" for t in targets)
        body = []
        for label, cell in rows:
            cells = "".join(f'<td class="{c}">{escape(v)}</td>' for v, c in (cell(o) for o in res.values()))
            body.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
        ev = "".join(f'<td class="{"hot" if r.mac_events else ""}">{r.mac_events:,}</td>' for r in targets.values())
        body.append(f"<tr><td>overflow events in the MAC</td>{ev}</tr>")
        scores = report.float_scores.get(name) or {}
        float_note = (f" The float model's accuracy on the same samples: <b>{fmt_share(scores['accuracy'])}</b>."
                      if scores.get("accuracy") is not None else "")
        parts.append(f"<h2>Output <code>{escape(name)}</code> {escape(str(list(first.shape)))}</h2>"
                     f"<p class=\"lead\">Each target against the float model on {report.n_samples} samples."
                     f"{float_note}</p><div class=\"scroll\"><table><tr><th>metric</th>{head}</tr>"
                     f"{''.join(body)}</table></div>")
    return "<section>" + "".join(parts) + "</section>"



def _legend(chart_id: str, names) -> str:
    buttons = "".join(f'<button type="button" data-series="s{i}"><i style="background:{svg.color(i)}"></i>'
                      f'{escape(n)}</button>' for i, n in enumerate(names))
    return f'<div class="legend" data-chart="{chart_id}">{buttons}</div>'


def _sqnr_section(report) -> str:
    layers = report.layer_names()
    series = []
    for t, r in report.targets.items():
        vals = []
        for name, _ in layers:
            layer = r.find_layer(name)
            vals.append(None if layer is None else layer.metrics.sqnr_db)
        series.append((t, vals))
    chart = svg.line_chart(series, [n for n, _ in layers], y_label="SQNR (dB)", min_width=1180)
    return ("<section><h2>Where accuracy is lost: SQNR per layer</h2>"
            "<p class=\"lead\">Signal-to-quantisation-noise ratio of every integer layer's output against the same "
            "layer of the float model (higher is better; every 6 dB is one bit). A drop from one layer to the next "
            "marks where a target loses precision. Click a target to hide or show it.</p>"
            f"{_legend('sqnr-chart', report.targets)}<div class=\"scroll\" id=\"sqnr-chart\">{chart}</div></section>")


def _histogram_section(report) -> str:
    parts = []
    for name, (edges, counts) in report.histograms().items():
        tiles = []
        for i, (t, c) in enumerate(counts.items()):
            o = report.targets[t].output(name)
            title = f"{t} · {fmt_db(o.metrics.sqnr_db)} dB"
            tiles.append(svg.histogram([float(e) for e in edges], [int(v) for v in c], title=title,
                                       bar_color=svg.color(i)))
        parts.append(f"<h2>Error histogram of output <code>{escape(name)}</code></h2>"
                     f"<p class=\"lead\">Target minus float, in real units, over every element of the output; "
                     f"the bins span &plusmn;{edges[-1]:.3g} (the 99.5th percentile of the largest |error|), and "
                     f"errors beyond land in the end bins. A histogram off-centre is a bias.</p>"
                     f"<div class=\"grid-hist\">{''.join(tiles)}</div>")
    return "<section>" + "".join(parts) + "</section>"


def _events_fill(peak: int):
    top = math.log10(peak + 1) if peak else 1.0

    def fill(v):
        if v == 0:
            return "#e8f5ec"
        return svg.ramp(0.25 + 0.75 * math.log10(v + 1) / top, (255, 236, 200), (196, 30, 45))
    return fill


def _headroom_fill(v) -> str:
    needed, bits = v
    margin = bits - needed
    if margin < 0:
        return "#f3a3a3"
    if margin < 4:
        return "#fde9b0"
    return "#d7efdf"


def _overflow_section(report) -> str:
    targets = list(report.targets)
    rows = [(n, op) for n, op in report.layer_names()
            if any((l := r.find_layer(n)) is not None and l.accumulator is not None for r in report.targets.values())]
    if not rows:
        return ""
    labels = [f"{n} ({op})" for n, op in rows]
    events, headroom, accs = [], [], []
    for n, _ in rows:
        ev, hr, ac = [], [], []
        for t in targets:
            layer = report.targets[t].find_layer(n)
            a = None if layer is None else layer.accumulator
            ac.append(a)
            ev.append(None if a is None else a.mac_events)
            hr.append(None if a is None else (a.min_safe_bits, a.bits))
        events.append(ev)
        headroom.append(hr)
        accs.append(ac)
    peak = max((v for row in events for v in row if v is not None), default=0)

    def ev_tip(r, c, v):
        a = accs[r][c]
        if a is None:
            return f"{targets[c]} · {rows[r][0]}: not an integer MAC layer here"
        return (f"{targets[c]} · {rows[r][0]}: {a.group_events:,} group-stage events ({a.group_bits}-bit "
                f"{a.group_overflow}, groups of {a.group}), {a.acc_events:,} accumulator events ({a.bits}-bit "
                f"{a.overflow}); largest |acc| {a.max_abs_acc:,}")

    def hr_tip(r, c, v):
        a = accs[r][c]
        if a is None:
            return f"{targets[c]} · {rows[r][0]}: not an integer MAC layer here"
        return (f"{targets[c]} · {rows[r][0]}: worst case |acc| <= {a.worst_case_abs_acc:,} needs "
                f"{a.min_safe_bits} bits of {a.bits}; largest |acc| seen {a.max_abs_acc:,} "
                f"({a.headroom_bits} bits to spare); k = {a.k}")

    ev_map = svg.heatmap(labels, targets, events, fill=_events_fill(peak), text=fmt_count, tip=ev_tip, cell_w=78)
    hr_map = svg.heatmap(labels, targets, headroom, fill=_headroom_fill, text=lambda v: f"{v[0]}/{v[1]}",
                         tip=hr_tip, cell_w=78)
    clip = [[None if (l := report.targets[t].find_layer(n)) is None else l.metrics.clip_share for t in targets]
            for n, _ in report.layer_names()]
    clip_labels = [f"{n} ({op})" for n, op in report.layer_names()]
    clip_peak = max((v for row in clip for v in row if v is not None), default=0.0)
    clip_map = svg.heatmap(clip_labels, targets, clip, fill=_share_fill(clip_peak),
                           text=lambda v: fmt_share(v) if v else "0",
                           tip=lambda r, c, v: f"{targets[c]} · {clip_labels[r]}: {fmt_share(v)} of the outputs "
                                               "lie beyond the output rails in float", cell_w=78)
    return ("<section><h2>Overflow: wrap and saturation events inside the MAC</h2>"
            "<p class=\"lead\">Narrowings that changed a value, per layer and target, summed over the product-group "
            "stage (e.g. int16 pair sums) and the accumulator. Any nonzero cell means the target computed something "
            "the mathematics did not. Hover a cell for the breakdown.</p>"
            f"<div class=\"scroll\">{ev_map}</div></section>"
            "<section><h2>Accumulator headroom</h2>"
            "<p class=\"lead\">Bits the worst case needs (from this layer's actual weights and its input's full code "
            "range) / the target's accumulator bits. Green: 4 or more bits to spare; yellow: fewer; red: some input "
            "can overflow this accumulator.</p>"
            f"<div class=\"scroll\">{hr_map}</div></section>"
            "<section><h2>Saturation at the output rails</h2>"
            "<p class=\"lead\">Share of each layer's outputs whose float value lies beyond what the output format can "
            "represent (more than half a step past qmin or qmax), so the target had to clamp them.</p>"
            f"{_scale(clip_peak)}<div class=\"scroll\">{clip_map}</div></section>")


def _channel_bins(n: int) -> list[tuple[int, int]]:
    """At most _MAX_CHANNEL_COLUMNS contiguous channel ranges covering n channels."""
    cols = min(n, _MAX_CHANNEL_COLUMNS)
    bounds = np.linspace(0, n, cols + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _share_fill(peak: float):
    """Colour of a share relative to the worst one in the report (square root: small shares stay visible)."""
    def fill(v):
        if v is None:
            return "#eceef1"
        if not v or not peak:
            return "#f4f9f5"
        return svg.ramp(0.12 + 0.88 * math.sqrt(v / peak), (255, 240, 224), (196, 30, 45))
    return fill


def _scale(peak: float) -> str:
    return ('<div class="scale">0 <span class="bar" style="background:linear-gradient(90deg,#f4f9f5,'
            f'{_share_fill(peak)(peak * 0.25)},{_share_fill(peak)(peak)})"></span> {fmt_share(peak)} '
            "(the worst in this report; square-root scale)</div>")


def _channel_section(report) -> str:
    blocks = []
    peak = max((float(l.channel_clip_share.max()) for r in report.targets.values() for l in r.layers
                if l.channel_clip_share is not None and l.channel_clip_share.size), default=0.0)
    fill = _share_fill(peak)
    for t, r in report.targets.items():
        layers = [l for l in r.layers if l.channel_clip_share is not None and l.channel_clip_share.size > 1]
        if not layers:
            continue
        rows, row_bins = [], []
        for l in layers:
            share = l.channel_clip_share
            bins = _channel_bins(share.size)
            rows.append((f"{l.name} ({share.size} ch)", [float(share[a:b].max()) for a, b in bins]))
            row_bins.append(bins)

        def tip(ri, ci, v, layers=layers, row_bins=row_bins, t=t):
            a, b = row_bins[ri][ci]
            chans = f"channel {a}" if b - a == 1 else f"channels {a}-{b - 1} (the worst)"
            return f"{t} · {layers[ri].name} · {chans}: {fmt_share(v)} beyond the rails"

        heat = svg.strips(rows, fill=fill, tip=tip)
        worst = max(float(l.channel_clip_share.max()) for l in layers)
        open_attr = " open" if not blocks else ""
        blocks.append(f"<details{open_attr}><summary>{escape(t)} <span class=\"note\">(worst channel: "
                      f"{fmt_share(worst)})</span></summary><div class=\"scroll\">{heat}</div></details>")
    if not blocks:
        return ""
    note = (f" Layers wider than {_MAX_CHANNEL_COLUMNS} channels are shown in {_MAX_CHANNEL_COLUMNS} cells, each the "
            "worst of its channels." if any(l.channel_clip_share is not None
                                             and l.channel_clip_share.size > _MAX_CHANNEL_COLUMNS
                                             for r in report.targets.values() for l in r.layers) else "")
    return ("<section><h2>Saturation per channel</h2><p class=\"lead\">Each row is a layer, split into its output "
            "channels from left to right; a cell's colour is the share of that channel's outputs whose float value "
            "lies beyond the output rails. A few hot channels point at a per-tensor scale that one channel's range "
            f"dominates.{note}</p>{_scale(peak)}" + "".join(blocks) + "</section>")


def _detail_section(report) -> str:
    blocks = []
    head = ("<tr><th>layer</th><th>op</th><th>SQNR dB</th><th>max err LSB</th><th>max err</th><th>mean err</th>"
            "<th>cosine</th><th>at rails</th><th>clipped</th><th>group ev</th><th>acc ev</th><th>out ev</th>"
            "<th>max |acc|</th><th>headroom</th><th>worst |acc|</th><th>safe bits</th></tr>")
    for t, r in report.targets.items():
        rows = []
        for l in r.layers:
            m, a = l.metrics, l.accumulator
            acc = "<td>-</td>" * 7 if a is None else (
                f'<td class="{"hot" if a.group_events else ""}">{a.group_events:,}</td>'
                f'<td class="{"hot" if a.acc_events else ""}">{a.acc_events:,}</td><td>{a.out_events:,}</td>'
                f'<td>{a.max_abs_acc:,}</td><td>{a.headroom_bits}</td><td>{a.worst_case_abs_acc:,}</td>'
                f'<td class="{"bad" if a.min_safe_bits > a.bits else ""}">{a.min_safe_bits}/{a.bits}</td>')
            rows.append(f"<tr><td>{escape(l.name)}</td><td>{escape(l.op)}</td>"
                        f'<td class="{_db_class(m.sqnr_db)}">{fmt_db(m.sqnr_db)}</td><td>{_fmt(m.max_error_lsb)}</td>'
                        f"<td>{_fmt(m.max_abs_error)}</td><td>{_fmt(m.mean_error, 2)}</td><td>{m.cosine:.5f}</td>"
                        f"<td>{fmt_share(m.rails_share)}</td><td>{fmt_share(m.clip_share)}</td>{acc}</tr>")
        ref = f" &middot; bit-exact to: {escape(r.reference)}" if r.reference else ""
        notes = "".join(f"<p class=\"note\">note: {escape(n)}</p>" for n in r.deviations)
        blocks.append(f"<details><summary>{escape(t)} <span class=\"note\">{escape(r.summary)}{ref}</span></summary>"
                      f"<div class=\"scroll\"><table>{head}{''.join(rows)}</table></div>{notes}</details>")
    return ("<section><h2>Every metric, per target</h2><p class=\"lead\">'at rails': outputs at the format's qmin or "
            "qmax (a fused ReLU's zero counts); 'clipped': outputs the float model puts beyond the rails; events: "
            "narrowings that changed a value (the output stage counts fused-activation clamps too).</p>"
            + "".join(blocks) + "</section>")


def render_html(report) -> str:
    """The page as text (UTF-8)."""
    from hwsim import __version__

    model = escape(report.model) if report.model else "a graph built in code"
    targets = ", ".join(escape(t) for t in report.targets)
    body = [_summary_tables(report), _sqnr_section(report), _histogram_section(report),
            _overflow_section(report), _channel_section(report), _detail_section(report)]
    body += [f"<section><h2>{escape(title)}</h2>{fragment}</section>" for title, fragment in report.sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>hwsim report: {model}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>hwsim report</h1><div class=\"meta\">model <b>{model}</b> &middot; "
            f"<b>{report.n_samples}</b> samples &middot; {len(report.targets)} target"
            f"{'s' if len(report.targets) != 1 else ''}: {targets} &middot; hwsim {escape(__version__)}</div></header>"
            f"<main>{''.join(body)}</main><div id=\"render-status\"></div>"
            f"<script>{_SCRIPT}</script></body></html>\n")
