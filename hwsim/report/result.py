"""What :func:`hwsim.compare` returns, and its JSON form (schema ``hwsim.report/1``).

JSON schema ``hwsim.report/1`` (``Report.to_dict()``; every number is a JSON
number except the infinite SQNR of an exact result, written as the strings
``"inf"`` / ``"-inf"``; absent values are ``null``)::

    {
      "schema": "hwsim.report/1",
      "hwsim_version": str,
      "model": str,                      # the model file, or "" for a graph built in code
      "n_samples": int,                  # batch size of the inputs
      "float": {                         # the float reference's own classifier scores
        "<output>": {"accuracy": float|null, "top5_accuracy": float|null}
      },
      "targets": [                       # one entry per target, in the order given
        {
          "name": str, "summary": str, "reference": str|null,
          "graph_kind": str,             # how the graph was quantized: "minmax", "ptq", "qdq", "tflite", ...
          "deviations": [str],           # float ops hwsim cannot promise bit for bit (SimResult.deviations)
          "outputs": [{
            "name": str, "shape": [int], "lsb": float|null,
            "metrics": METRICS,
            "top1_agreement": float|null, "top5_agreement": float|null,   # classifier outputs [N, C>=2]
            "accuracy": float|null, "top5_accuracy": float|null,          # when labels were given
            "error_histogram": {"edges": [float], "counts": [int]}        # approx - float, real units;
          }],                                                             # edges shared by all targets
          "layers": [{                   # every integer op of the quantized graph, in graph order
            "name": str,                 # the node name (matched to the float model's node)
            "op": str, "tensor": str, "shape": [int], "lsb": float|null,
            "metrics": METRICS,
            "channel_clip_share": [float]|null,   # clip_share per output channel (last IR axis)
            "accumulator": null | {      # conv2d / fully_connected only
              "bits": int, "overflow": "wrap"|"saturate",
              "group": int, "group_bits": int, "group_overflow": "wrap"|"saturate",
              "input_zero_point": "in_mac"|"folded_into_bias",
              "events": {"group": int, "accumulator": int, "output": int},
              "max_abs_acc": int,        # largest |final accumulator| seen
              "headroom_bits": int,      # bits - bits needed for max_abs_acc
              "worst_case_abs_acc": int, # bound from the actual weights and the input's code range
              "min_safe_bits": int,      # fewest accumulator bits that can never overflow
              "group_can_overflow": bool,
              "k": int                   # products per output
            }
          }]
        }
      ]
    }

    METRICS = {"mse", "sqnr_db", "max_abs_error", "max_error_lsb", "mean_error", "cosine",
               "rails_share", "clip_share"}   (see hwsim.report.metrics.ErrorMetrics)

Event counts are the narrowings that changed a value (``SimResult.counters``):
``group`` the product-group sums (e.g. int16 pairs), ``accumulator`` the
accumulator, ``output`` the output clamp -- which includes a fused ReLU's clamp,
so it is not only saturation.  ``overflow`` says whether an event wrapped or
saturated.  The schema string changes when a field changes meaning or goes away;
new fields may be added within a version.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from hwsim.report.metrics import ErrorMetrics, error_histogram

__all__ = ["SCHEMA", "Report", "TargetResult", "LayerResult", "OutputResult", "AccumulatorStats"]

SCHEMA = "hwsim.report/1"
_HIST_BINS = 40


@dataclass(frozen=True)
class AccumulatorStats:
    """Accumulator behaviour of one conv / fully_connected layer on one target (see the schema)."""

    bits: int
    overflow: str
    group: int
    group_bits: int
    group_overflow: str
    input_zero_point: str
    group_events: int
    acc_events: int
    out_events: int
    max_abs_acc: int
    headroom_bits: int
    worst_case_abs_acc: int
    min_safe_bits: int
    group_can_overflow: bool
    k: int

    @property
    def mac_events(self) -> int:
        """Wrap / saturation events inside the MAC (group and accumulator stages)."""
        return self.group_events + self.acc_events

    def to_dict(self) -> dict:
        return {"bits": self.bits, "overflow": self.overflow, "group": self.group, "group_bits": self.group_bits,
                "group_overflow": self.group_overflow, "input_zero_point": self.input_zero_point,
                "events": {"group": self.group_events, "accumulator": self.acc_events, "output": self.out_events},
                "max_abs_acc": self.max_abs_acc, "headroom_bits": self.headroom_bits,
                "worst_case_abs_acc": self.worst_case_abs_acc, "min_safe_bits": self.min_safe_bits,
                "group_can_overflow": self.group_can_overflow, "k": self.k}


@dataclass
class LayerResult:
    """One integer op of the quantized graph against the same layer of the float model."""

    name: str
    op: str
    tensor: str
    shape: tuple
    lsb: float | None
    metrics: ErrorMetrics
    accumulator: AccumulatorStats | None = None
    channel_clip_share: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "tensor": self.tensor, "shape": [int(d) for d in self.shape],
                "lsb": self.lsb, "metrics": self.metrics.to_dict(),
                "channel_clip_share": None if self.channel_clip_share is None
                else [float(v) for v in self.channel_clip_share],
                "accumulator": None if self.accumulator is None else self.accumulator.to_dict()}


@dataclass
class OutputResult:
    """One model output against the float model's."""

    name: str
    shape: tuple
    lsb: float | None
    metrics: ErrorMetrics
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    accuracy: float | None = None
    top5_accuracy: float | None = None
    #: approx - float, real units, at most 200 000 values (every n-th); feeds the histograms
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": [int(d) for d in self.shape], "lsb": self.lsb,
                "metrics": self.metrics.to_dict(), "top1_agreement": self.top1_agreement,
                "top5_agreement": self.top5_agreement, "accuracy": self.accuracy,
                "top5_accuracy": self.top5_accuracy}


@dataclass
class TargetResult:
    """Everything the report says about one target."""

    name: str
    summary: str
    reference: str | None
    graph_kind: str
    layers: list[LayerResult]
    outputs: list[OutputResult]
    deviations: list[str] = field(default_factory=list)

    def layer(self, name: str) -> LayerResult:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"target {self.name}: no layer named {name!r}; layers: {', '.join(l.name for l in self.layers)}")

    def find_layer(self, name: str) -> LayerResult | None:
        """The layer named ``name``, or None (a target's graph may lack a layer another target has)."""
        return next((layer for layer in self.layers if layer.name == name), None)

    def output(self, name: str) -> OutputResult:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(f"target {self.name}: no output named {name!r}")

    @property
    def mac_events(self) -> int:
        return sum(l.accumulator.mac_events for l in self.layers if l.accumulator is not None)


def _json_safe(value):
    """Infinite floats as "inf" / "-inf" strings (JSON has no infinity), NaN as null, numpy scalars as Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return value


def histogram_edges(errors: list[np.ndarray], lsb: float | None) -> np.ndarray:
    """Symmetric bin edges shared by several targets' errors: +-(the largest 99.5th percentile of |e|)."""
    spans = [float(np.percentile(np.abs(e), 99.5)) for e in errors if e.size]
    m = max(spans, default=0.0)
    if m == 0.0:
        m = float(lsb) if lsb else 1.0
    return np.linspace(-m, m, _HIST_BINS + 1)


@dataclass
class Report:
    """A comparison of one model on one or more targets against its float reference.

    ``targets`` maps each target name to its :class:`TargetResult`, in the order given.
    """

    model: str
    n_samples: int
    targets: dict[str, TargetResult]
    float_scores: dict = field(default_factory=dict)   # output -> {"accuracy", "top5_accuracy"}
    #: extra (heading, HTML fragment) pairs that ``to_html`` appends, e.g. the demo's accumulator sweep
    sections: list = field(default_factory=list)

    def layer_names(self) -> list[tuple[str, str]]:
        """(name, op) of every layer in graph order, over all targets (graphs may differ per target)."""
        seen, names = set(), []
        for r in self.targets.values():
            for layer in r.layers:
                if layer.name not in seen:
                    seen.add(layer.name)
                    names.append((layer.name, layer.op))
        return names

    def output_names(self) -> list[str]:
        first = next(iter(self.targets.values()), None)
        return [o.name for o in first.outputs] if first else []

    def histograms(self) -> dict:
        """output name -> (edges, {target: counts}) with edges shared across targets."""
        out = {}
        for name in self.output_names():
            results = [t.output(name) for t in self.targets.values()]
            edges = histogram_edges([r.errors for r in results], results[0].lsb)
            out[name] = (edges, {t: error_histogram(t_res.output(name).errors, edges)
                                 for t, t_res in self.targets.items()})
        return out

    def to_dict(self) -> dict:
        """The report as plain JSON-able data (schema ``hwsim.report/1``, see the module docstring)."""
        from hwsim import __version__

        hists = self.histograms()
        targets = []
        for name, t in self.targets.items():
            outputs = []
            for o in t.outputs:
                d = o.to_dict()
                edges, counts = hists[o.name]
                d["error_histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts[name]]}
                outputs.append(d)
            targets.append({"name": t.name, "summary": t.summary, "reference": t.reference,
                            "graph_kind": t.graph_kind, "deviations": list(t.deviations), "outputs": outputs,
                            "layers": [l.to_dict() for l in t.layers]})
        return _json_safe({"schema": SCHEMA, "hwsim_version": __version__, "model": self.model,
                           "n_samples": self.n_samples, "float": self.float_scores, "targets": targets})

    def to_json(self, path=None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        if path is not None:
            pathlib.Path(path).write_text(text, encoding="utf-8")
        return text

    def to_html(self, path=None) -> str:
        """A single self-contained HTML page with plots; also written to ``path`` when given."""
        from hwsim.report.render_html import render_html

        text = render_html(self)
        if path is not None:
            pathlib.Path(path).write_text(text, encoding="utf-8")
        return text

    def render(self, console=None, detail: bool | None = None) -> None:
        """Print the report as rich tables (to ``console``, default stdout).

        ``detail``: also one table of every metric per layer for each target
        (default: when there are at most two targets).
        """
        from hwsim.report.render_terminal import render

        render(self, console, detail)
