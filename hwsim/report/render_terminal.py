"""A :class:`~hwsim.report.result.Report` as rich tables.

Tables, in order: per model output a summary with the targets side by side;
SQNR per layer with one column per target; accumulator use per layer with one
column per target; with ``detail``, every metric per layer for each target.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["render", "fmt_db", "fmt_share"]


def fmt_db(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "exact" if v > 0 else "-inf"
    return f"{v:.1f}"


def fmt_share(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{100 * v:.1f}%" if v >= 0.001 else f"{100 * v:.2g}%"


def _fmt_num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}g}"


def _db_style(v: float | None) -> str:
    if v is None:
        return ""
    if v >= 30:
        return "green"
    if v >= 15:
        return "yellow"
    return "bold red"


def _loss_style(v: float | None, reference: float | None = 1.0) -> str:
    """A share (agreement, accuracy) against float's: 0.3 points lost is yellow, 1 point red."""
    if v is None or reference is None:
        return ""
    lost = reference - v
    return "bold red" if lost >= 0.01 else "yellow" if lost >= 0.003 else ""


def _styled(text: str, style: str) -> str:
    return f"[{style}]{text}[/]" if style else text


def _header(name: str, width: int = 11) -> str:
    """A target name broken after '-' into lines of at most ``width`` characters where possible."""
    lines, line = [], ""
    for part in name.replace("-", "-\n").split("\n"):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    lines.append(line)
    return "\n".join(lines)


def _column_width(name: str) -> int:
    return max(7, max(len(line) for line in _header(name).split("\n")))


def _new_table(first: str, widths: dict) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(first, no_wrap=True)
    for name, width in widths.items():
        table.add_column(_header(name), justify="right", no_wrap=True, min_width=width)
    return table


def _plain_len(markup: str) -> int:
    return len(Text.from_markup(markup).plain)


def _print_split(console: Console, title: str, first: str, targets, rows: list) -> None:
    """Print rows (label, {target: cell}) as one table, or several when the targets do not fit side by side."""
    widths = {t: max([_column_width(t)] + [_plain_len(cells.get(t, "-")) for _, cells in rows]) for t in targets}

    def build(group: list) -> Table:
        table = _new_table(first, {t: widths[t] for t in group})
        for label, cells in rows:
            table.add_row(label, *(cells.get(t, "-") for t in group))
        return table

    # greedy: as many targets per table as the console's width holds.  A SIMPLE_HEAD table without
    # edge padding is 1 blank at each edge, the columns, and 3 characters between neighbours.
    first_width = max([len(first)] + [_plain_len(label) for label, _ in rows])
    groups, group, used = [], [], 2 + first_width
    for name, width in widths.items():
        if group and used + 3 + width > console.width:
            groups.append(group)
            group, used = [], 2 + first_width
        group.append(name)
        used += 3 + width
    groups.append(group)
    for i, g in enumerate(groups):
        # the title as its own line: a table title would wrap at the table's width
        console.print(f"[bold]{escape(title)}[/]" + (f" ({i + 1}/{len(groups)})" if len(groups) > 1 else ""))
        console.print(build(g))


def _output_tables(console: Console, report) -> None:
    targets = report.targets
    for out_name in report.output_names():
        results = {t: r.output(out_name) for t, r in targets.items()}
        first = next(iter(results.values()))
        title = f"output {out_name} {list(first.shape)}: {report.n_samples} samples vs float"
        scores = report.float_scores.get(out_name)
        if scores and scores.get("accuracy") is not None:
            title += f" (float accuracy {fmt_share(scores['accuracy'])})"
        rows = [("SQNR dB", lambda o: _styled(fmt_db(o.metrics.sqnr_db), _db_style(o.metrics.sqnr_db)))]
        float_acc = (scores or {}).get("accuracy")
        if first.top1_agreement is not None:
            rows.append(("top-1 agree", lambda o: _styled(fmt_share(o.top1_agreement), _loss_style(o.top1_agreement))))
        if first.top5_agreement is not None:
            rows.append(("top-5 agree", lambda o: _styled(fmt_share(o.top5_agreement), _loss_style(o.top5_agreement))))
        if first.accuracy is not None:
            rows.append(("accuracy", lambda o: _styled(fmt_share(o.accuracy), _loss_style(o.accuracy, float_acc))))
        rows += [("max err (LSB)", lambda o: _fmt_num(o.metrics.max_error_lsb)),
                 ("max err", lambda o: _fmt_num(o.metrics.max_abs_error)),
                 ("mean err", lambda o: _fmt_num(o.metrics.mean_error, 2)),
                 ("cosine", lambda o: f"{o.metrics.cosine:.4f}")]
        table_rows = [(label, {t: cell(o) for t, o in results.items()}) for label, cell in rows]
        events = {t: _styled(f"{r.mac_events:,}", "bold red") if r.mac_events else "0" for t, r in targets.items()}
        table_rows.append(("MAC overflows", events))
        _print_split(console, title, "metric", targets, table_rows)


def _sqnr_cell(layer) -> str:
    if layer is None:
        return "-"
    v = layer.metrics.sqnr_db
    style = _db_style(v)
    if layer.accumulator is not None and layer.accumulator.mac_events:
        style = "bold white on red"
    return _styled(fmt_db(v), style)


def _acc_cell(layer) -> str | None:
    acc = None if layer is None else layer.accumulator
    if acc is None:
        return None
    text = f"{acc.min_safe_bits}/{acc.bits}"
    style = "red" if acc.min_safe_bits > acc.bits else ""
    if acc.mac_events:
        text += f" ({fmt_count(acc.mac_events)})"
        style = "bold red"
    return _styled(text, style)


def fmt_count(n: int) -> str:
    """A count in at most 4 characters: 898, 6.2k, 12k, 3.1M."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(n)


def _sqnr_table(console: Console, report) -> None:
    rows = []
    for name, op in report.layer_names():
        cells = {t: _sqnr_cell(r.find_layer(name)) for t, r in report.targets.items()}
        rows.append((f"{escape(name)} [dim]{op}[/]", cells))
    _print_split(console, "SQNR per layer, dB (red background: overflow events in the MAC)", "layer",
                 report.targets, rows)


def _acc_table(console: Console, report) -> None:
    rows = []
    for name, op in report.layer_names():
        cells = {t: _acc_cell(r.find_layer(name)) for t, r in report.targets.items()}
        if any(c is not None for c in cells.values()):
            rows.append((f"{escape(name)} [dim]{op}[/]", {t: "-" if c is None else c for t, c in cells.items()}))
    if rows:
        _print_split(console, "accumulator: worst-case bits needed / bits (overflow events)", "layer",
                     report.targets, rows)


def _detail_tables(console: Console, result) -> None:
    """Every metric per layer of one target, as an error table and an accumulator table (each fits 80 columns)."""
    errors = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    errors.add_column("layer", overflow="fold")
    for col in ("SQNR\ndB", "max err\nLSB", "mean\nerror", "cosine", "at\nrails", "clipped"):
        errors.add_column(col, justify="right", no_wrap=True)
    accs = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    accs.add_column("layer", overflow="fold")
    for col in ("group\nevents", "acc\nevents", "output\nevents", "max\n|acc|", "spare\nbits", "worst\n|acc|",
                "safe\nbits"):
        accs.add_column(col, justify="right", no_wrap=True)
    for layer in result.layers:
        m, a = layer.metrics, layer.accumulator
        errors.add_row(escape(layer.name), _styled(fmt_db(m.sqnr_db), _db_style(m.sqnr_db)),
                       _fmt_num(m.max_error_lsb), _fmt_num(m.mean_error, 2), f"{m.cosine:.4f}",
                       fmt_share(m.rails_share), fmt_share(m.clip_share))
        if a is not None:
            accs.add_row(escape(layer.name), _styled(f"{a.group_events:,}", "bold red" if a.group_events else ""),
                         _styled(f"{a.acc_events:,}", "bold red" if a.acc_events else ""), f"{a.out_events:,}",
                         f"{a.max_abs_acc:,}", _styled(str(a.headroom_bits), "red" if a.headroom_bits <= 0 else ""),
                         f"{a.worst_case_abs_acc:,}",
                         _styled(f"{a.min_safe_bits}/{a.bits}", "red" if a.min_safe_bits > a.bits else ""))
    console.print(f"[bold]{escape(result.name)}: error per layer[/]")
    console.print(errors)
    if accs.row_count:
        console.print(f"[bold]{escape(result.name)}: accumulator per layer[/] (events: narrowings that changed a "
                      "value; the output stage counts fused-activation clamps too)")
        console.print(accs)


def render(report, console: Console | None = None, detail: bool | None = None) -> None:
    """Print ``report``; see the module docstring."""
    console = console or Console()
    if detail is None:
        detail = len(report.targets) <= 2
    _output_tables(console, report)
    _sqnr_table(console, report)
    _acc_table(console, report)
    if detail:
        for result in report.targets.values():
            _detail_tables(console, result)
    for result in report.targets.values():
        for note in result.deviations:
            console.print(f"[dim]{result.name}: note: {note}[/]")
