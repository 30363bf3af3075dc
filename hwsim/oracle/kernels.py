"""Slow, exact reference for the GEMM and conv2d accumulators (Python ints only).

Written straight from the formulas of ``c_kernels/hw_accumulate.h`` and the
kernel comments; it never imports the C extension.  One function does the
arithmetic of one output (:func:`accumulate_output`); GEMM and conv only
differ in which (activation, weight) pairs they feed it, and the conv loop
(:func:`conv2d_taps`) is the one trusted place that decides those pairs.

For one output channel ``c`` with taps ``(x_k, w_k)``, k = 0 .. K-1 in order::

    a_k   = x_k - zx   (IN_MAC)  or  x_k  (FOLDED_INTO_BIAS)
    p_k   = a_k * (w_k - zw[c])
    s_g   = narrow(p_{gG} + ... + p_{gG+G-1}, group_bits, group_overflow)
    acc   = narrow(acc + s_g, acc_bits, acc_overflow)         g = 0, 1, ...
    T     = -zx * sum_k (w_k - zw[c])  (FOLDED; else 0)
    corr  = narrow(narrow(T) + bias[c])
    bias_first: acc starts at corr; otherwise acc = narrow(acc_after_groups + corr)

Every narrowing that changes its value is one event (group or accumulator).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hwsim.oracle import primitives, requantize
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

__all__ = [
    "OutputAccumulator",
    "accumulate_output",
    "gemm",
    "conv2d",
    "conv2d_taps",
    "conv_output_size",
    "KernelOracleResult",
    "requantize_accumulators",
]


def _narrow(value: int, bits: int, overflow: Overflow) -> int:
    """Narrow an exact integer to a signed ``bits``-wide format (wrap or saturate)."""
    return primitives.narrow(value, bits, True, Overflow(overflow))


@dataclass
class OutputAccumulator:
    """The final accumulator of one output and the events it caused."""

    acc: int
    group_events: int
    acc_events: int


def accumulate_output(
    taps: Iterable[tuple[int, int]], x_zero_point: int, w_zero_point: int, bias: int, spec: AccumSpec
) -> OutputAccumulator:
    """Accumulate one output from its ordered (x, w) taps under ``spec``."""
    taps = list(taps)
    folded = ZeroPointPlacement(spec.input_zero_point) is ZeroPointPlacement.FOLDED_INTO_BIAS
    events = OutputAccumulator(0, 0, 0)

    def acc_narrow(value: int) -> int:
        narrowed = _narrow(value, spec.acc_bits, spec.acc_overflow)
        events.acc_events += narrowed != value
        return narrowed

    term = 0
    if folded:
        term = acc_narrow(-x_zero_point * sum(w - w_zero_point for _, w in taps))
    corr = acc_narrow(term + bias)

    products = [(x if folded else x - x_zero_point) * (w - w_zero_point) for x, w in taps]
    acc = corr if spec.bias_first else 0
    for start in range(0, len(products), spec.group):
        exact = sum(products[start : start + spec.group])
        group_sum = _narrow(exact, spec.group_bits, spec.group_overflow)
        events.group_events += group_sum != exact
        acc = acc_narrow(acc + group_sum)
    if not spec.bias_first:
        acc = acc_narrow(acc + corr)
    events.acc = acc
    return events


@dataclass
class KernelOracleResult:
    """Accumulators (nested lists shaped like the kernel's output) and
    per-output-channel counters (lists of length N / out_c); with ``requant``,
    also the requantised outputs (same nesting) and out_events."""

    accumulators: list
    group_events: list[int]
    acc_events: list[int]
    max_abs_acc: list[int]
    outputs: list | None = None
    out_events: list[int] | None = None


def requantize_accumulators(accumulators: list, params) -> tuple[list, list[int]]:
    """Requantise nested accumulator lists (channel = innermost axis) with
    :func:`hwsim.oracle.requantize.requantize_one`, element index = flat
    row-major position (what the kernels pass to stochastic rounding).
    Returns (outputs with the same nesting, out_events per channel)."""
    flat: list[int] = []

    def flatten(v):
        if isinstance(v, list):
            for item in v:
                flatten(item)
        else:
            flat.append(v)

    flatten(accumulators)
    inner = accumulators
    while isinstance(inner[0], list):
        inner = inner[0]
    n = len(inner)
    events = [0] * n
    values = []
    for i, acc in enumerate(flat):
        v, changed = requantize.requantize_one(acc, i % n, i, params)
        values.append(v)
        events[i % n] += int(changed)
    it = iter(values)

    def rebuild(v):
        return [rebuild(item) for item in v] if isinstance(v, list) else next(it)

    return rebuild(accumulators), events


def _with_requant(result: KernelOracleResult, requant) -> KernelOracleResult:
    if requant is not None:
        result.outputs, result.out_events = requantize_accumulators(result.accumulators, requant)
    return result


def _per_channel(values, n: int, name: str) -> list[int]:
    """A scalar or a length-1 / length-n sequence -> a list of n Python ints."""
    if values is None:
        return [0] * n
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, int):
        return [values] * n
    values = [int(v) for v in values]
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{name}: expected 1 or {n} values, got {len(values)}")
    return values


def _collect(rows: list[list[OutputAccumulator]], n: int) -> tuple[list, list, list, list]:
    accs = [[o.acc for o in row] for row in rows]
    group = [sum(row[c].group_events for row in rows) for c in range(n)]
    acc = [sum(row[c].acc_events for row in rows) for c in range(n)]
    max_abs = [max(min(abs(row[c].acc), (1 << 63) - 1) for row in rows) for c in range(n)]
    return accs, group, acc, max_abs


def gemm(a, b, *, a_zero_point: int = 0, b_zero_point=0, bias=None, accum: AccumSpec = AccumSpec(), requant=None):
    """acc[m][n] for A [M, K] and B [N, K] (one output channel per row of B);
    with ``requant`` (a RequantParams) also the requantised outputs."""
    a_rows = [[int(v) for v in row] for row in (a.tolist() if hasattr(a, "tolist") else a)]
    b_rows = [[int(v) for v in row] for row in (b.tolist() if hasattr(b, "tolist") else b)]
    n = len(b_rows)
    zw = _per_channel(b_zero_point, n, "b_zero_point")
    bias_v = _per_channel(bias, n, "bias")
    rows = [
        [accumulate_output(zip(a_row, b_rows[c]), int(a_zero_point), zw[c], bias_v[c], accum) for c in range(n)]
        for a_row in a_rows
    ]
    accs, group, acc, max_abs = _collect(rows, n)
    return _with_requant(KernelOracleResult(accs, group, acc, max_abs), requant)


def conv_output_size(size: int, pad_a: int, pad_b: int, kernel: int, dilation: int, stride: int) -> int:
    """floor((size + pad_a + pad_b - dilation * (kernel - 1) - 1) / stride) + 1."""
    return (size + pad_a + pad_b - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_taps(
    x: Sequence, w: Sequence, *, stride, dilation, padding, groups: int, x_zero_point: int
) -> Iterable[tuple[tuple[int, int, int, int], list[tuple[int, int]]]]:
    """The trusted conv loop: for every output (b, oy, ox, oc) in NHWC order,
    its ordered taps [(x, w), ...] with k-order ky, kx, ci (ci fastest); a tap
    outside the input has x = x_zero_point.  x: nested lists [B][H][W][C];
    w: nested lists [O][KH][KW][C/groups]."""
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = padding
    batch, in_h, in_w, in_c = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    out_c, kh, kw, cg = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    og = out_c // groups
    out_h = conv_output_size(in_h, top, bottom, kh, dh, sh)
    out_w = conv_output_size(in_w, left, right, kw, dw, sw)
    for bi in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                for oc in range(out_c):
                    g = oc // og
                    taps = []
                    for ky in range(kh):
                        iy = oy * sh - top + ky * dh
                        for kx in range(kw):
                            ix = ox * sw - left + kx * dw
                            inside = 0 <= iy < in_h and 0 <= ix < in_w
                            for ci in range(cg):
                                xv = x[bi][iy][ix][g * cg + ci] if inside else x_zero_point
                                taps.append((xv, w[oc][ky][kx][ci]))
                    yield (bi, oy, ox, oc), taps


def conv2d(
    x,
    w,
    *,
    stride=(1, 1),
    dilation=(1, 1),
    padding=(0, 0, 0, 0),
    groups: int = 1,
    x_zero_point: int = 0,
    w_zero_point=0,
    bias=None,
    accum: AccumSpec = AccumSpec(),
    requant=None,
):
    """acc[b][oy][ox][oc] for NHWC x and weights [O, KH, KW, I/groups]; with
    ``requant`` (a RequantParams) also the requantised outputs."""
    xl = x.tolist() if hasattr(x, "tolist") else x
    wl = w.tolist() if hasattr(w, "tolist") else w
    out_c = len(wl)
    zw = _per_channel(w_zero_point, out_c, "w_zero_point")
    bias_v = _per_channel(bias, out_c, "bias")
    # conv2d_taps yields outputs in NHWC order, so consecutive runs of out_c outputs are the pixels
    outputs = [
        accumulate_output(taps, int(x_zero_point), zw[oc], bias_v[oc], accum)
        for (_, _, _, oc), taps in conv2d_taps(
            xl, wl, stride=stride, dilation=dilation, padding=padding, groups=groups, x_zero_point=int(x_zero_point)
        )
    ]
    pixels = [outputs[i : i + out_c] for i in range(0, len(outputs), out_c)]
    accs, group, acc, max_abs = _collect(pixels, out_c)
    out_h = conv_output_size(len(xl[0]), padding[0], padding[2], len(wl[0]), dilation[0], stride[0])
    out_w = conv_output_size(len(xl[0][0]), padding[1], padding[3], len(wl[0][0]), dilation[1], stride[1])
    nested = [
        [[accs[(bi * out_h + oy) * out_w + ox] for ox in range(out_w)] for oy in range(out_h)] for bi in range(len(xl))
    ]
    return _with_requant(KernelOracleResult(nested, group, acc, max_abs), requant)
