"""A :class:`~hwsim.report.result.Report` as rich tables.

Tables, in order: per model output a summary with the targets side by side;
SQNR per layer with one column per target; accumulator use per layer with one
column per target; with ``detail``, every metric per layer for each target.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

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


def _styled(text: str, style: str) -> str:
    return f"[{style}]{text}[/]" if style else text


def _new_table(title: str, first: str, targets) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    table.add_column(first, no_wrap=True)
    for name in targets:
        table.add_column(name, justify="right")
    return table


def _output_tables(report) -> list[Table]:
    tables = []
    targets = report.targets
    for out_name in report.output_names():
        results = {t: r.output(out_name) for t, r in targets.items()}
        first = next(iter(results.values()))
        title = f"output {out_name} {list(first.shape)}: {report.n_samples} samples vs float"
        scores = report.float_scores.get(out_name)
        if scores and scores.get("accuracy") is not None:
            title += f" (float accuracy {fmt_share(scores['accuracy'])})"
        table = _new_table(title, "metric", targets)
        rows = [("SQNR dB", lambda o: _styled(fmt_db(o.metrics.sqnr_db), _db_style(o.metrics.sqnr_db)))]
        if first.top1_agreement is not None:
            rows.append(("top-1 agree", lambda o: fmt_share(o.top1_agreement)))
        if first.top5_agreement is not None:
            rows.append(("top-5 agree", lambda o: fmt_share(o.top5_agreement)))
        if first.accuracy is not None:
            rows.append(("accuracy", lambda o: fmt_share(o.accuracy)))
        rows += [("max err (LSB)", lambda o: _fmt_num(o.metrics.max_error_lsb)),
                 ("max err", lambda o: _fmt_num(o.metrics.max_abs_error)),
                 ("mean err", lambda o: _fmt_num(o.metrics.mean_error, 2)),
                 ("cosine", lambda o: f"{o.metrics.cosine:.5f}")]
        for label, cell in rows:
            table.add_row(label, *(cell(results[t]) for t in targets))
        events = []
        for r in targets.values():
            n = r.mac_events
            events.append(_styled(f"{n:,}", "bold red") if n else "0")
        table.add_row("MAC overflows", *events)
        tables.append(table)
    return tables


def _layer_names(report) -> list[tuple[str, str]]:
    """(name, op) of every layer in graph order, over all targets (graphs may differ per target)."""
    seen, names = set(), []
    for r in report.targets.values():
        for layer in r.layers:
            if layer.name not in seen:
                seen.add(layer.name)
                names.append((layer.name, layer.op))
    return names


def _find(result, name):
    for layer in result.layers:
        if layer.name == name:
            return layer
    return None


def _sqnr_table(report) -> Table:
    table = _new_table("SQNR per layer (dB; red: MAC overflow events)", "layer", report.targets)
    for name, op in _layer_names(report):
        cells = []
        for r in report.targets.values():
            layer = _find(r, name)
            if layer is None:
                cells.append("-")
                continue
            v = layer.metrics.sqnr_db
            style = _db_style(v)
            if layer.accumulator is not None and layer.accumulator.mac_events:
                style = "bold white on red"
            cells.append(_styled(fmt_db(v), style))
        table.add_row(f"{name} [dim]{op}[/]", *cells)
    return table


def _acc_table(report) -> Table:
    table = _new_table("accumulator per layer: bits needed at worst / bits (events)", "layer", report.targets)
    for name, op in _layer_names(report):
        cells, any_acc = [], False
        for r in report.targets.values():
            layer = _find(r, name)
            acc = None if layer is None else layer.accumulator
            if acc is None:
                cells.append("-")
                continue
            any_acc = True
            text = f"{acc.min_safe_bits}/{acc.bits}"
            style = "red" if acc.min_safe_bits > acc.bits else ""
            if acc.mac_events:
                text += f" ({acc.mac_events:,})"
                style = "bold red"
            cells.append(_styled(text, style))
        if any_acc:
            table.add_row(f"{name} [dim]{op}[/]", *cells)
    return table


def _detail_table(result) -> Table:
    table = Table(title=f"{result.name}: per layer", box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for col in ("layer", "op", "SQNR dB", "max err LSB", "mean err", "cosine", "at rails", "clipped",
                "group ev", "acc ev", "out ev", "max|acc|", "headroom", "safe bits"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right", no_wrap=col == "layer")
    for layer in result.layers:
        m, a = layer.metrics, layer.accumulator
        acc_cells = ["-"] * 6 if a is None else [
            f"{a.group_events:,}", f"{a.acc_events:,}", f"{a.out_events:,}", f"{a.max_abs_acc:,}",
            _styled(str(a.headroom_bits), "red" if a.headroom_bits <= 0 else ""),
            _styled(f"{a.min_safe_bits}/{a.bits}", "red" if a.min_safe_bits > a.bits else "")]
        table.add_row(layer.name, layer.op, _styled(fmt_db(m.sqnr_db), _db_style(m.sqnr_db)),
                      _fmt_num(m.max_error_lsb), _fmt_num(m.mean_error, 2), f"{m.cosine:.4f}",
                      fmt_share(m.rails_share), fmt_share(m.clip_share), *acc_cells)
    return table


def render(report, console: Console | None = None, detail: bool | None = None) -> None:
    """Print ``report``; see the module docstring."""
    console = console or Console()
    if detail is None:
        detail = len(report.targets) <= 2
    for table in _output_tables(report):
        console.print(table)
    console.print(_sqnr_table(report))
    console.print(_acc_table(report))
    if detail:
        for result in report.targets.values():
            console.print(_detail_table(result))
    for result in report.targets.values():
        for note in result.deviations:
            console.print(f"[dim]{result.name}: note: {note}[/]")
