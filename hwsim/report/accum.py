"""Accumulator headroom of one integer layer: the worst case its actual weights allow, and what was seen.

The worst-case bound uses the layer's real weights rather than the weight
format's extremes (the bound :mod:`hwsim.headroom` gives for any weights), so
it says what *this* model needs.  For output channel ``c`` with the input
zero point inside the MAC (``x - zx`` enters the multiplier)::

    B_c = sum_k |w_ck - zw_c| * max|x - zx| + |bias_c|

With the zero point folded into the bias (raw ``x`` enters the multiplier and
``-zx * sum_k w_ck`` is added to the bias), every partial sum is bounded by::

    B_c = sum_k |w_ck - zw_c| * max|x| + |bias_c| + |zx * sum_k (w_ck - zw_c)|

``x`` ranges over every code of the input's integer type as the target sees
it (after the exact +-128 re-bias of engines with one signedness).  With
per-group weights (``group_size`` N, zero points [O, G]) every group of N
consecutive elements of the flattened reduction axis has its own accumulator
(no bias: a per-group layer adds its float bias after combining the groups),
so the bound is the largest over channels and groups of the sums above
restricted to one group.  The
minimum safe accumulator width is the fewest two's complement bits holding
``[-max_c B_c, max_c B_c]``.  Whether the product-group stage (int16 pairs)
can overflow comes from :func:`hwsim.headroom.headroom` with the range of the
actual weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.headroom import headroom, signed_bits
from hwsim.types import ZeroPointPlacement

__all__ = ["AccumulatorBound", "accumulator_bound", "observed_headroom_bits"]


@dataclass(frozen=True)
class AccumulatorBound:
    """Worst case of one layer's accumulators.

    Attributes
    ----------
    worst_case_abs_acc : max over channels of B_c (a bound on every partial and final |acc|)
    min_safe_bits : fewest accumulator bits that can never overflow for this layer
    group_can_overflow : the product-group stage can overflow for some input (False without groups)
    k : products per output
    """

    worst_case_abs_acc: int
    min_safe_bits: int
    group_can_overflow: bool
    k: int


def accumulator_bound(weights: np.ndarray, w_zero_point, bias, x_range: tuple[int, int], x_zero_point: int,
                      accum, group_size: int | None = None) -> AccumulatorBound:
    """Worst-case |accumulator| of a conv / fully_connected layer; see the module docstring.

    Parameters
    ----------
    weights : integer array, output channel first ([O, KH, KW, I/g] or [O, K])
    w_zero_point : int or int array [O]
    bias : int array [O] or None
    x_range : (lo, hi) of the input codes entering the MAC (the target's signedness)
    x_zero_point : the input zero point in that signedness
    accum : hwsim.types.AccumSpec of the target for this op
    group_size : per-group weights: elements per group (``w_zero_point`` is then [O, G])
    """
    w = np.asarray(weights).astype(np.int64).reshape(np.shape(weights)[0], -1)
    if group_size is not None:
        return _grouped_bound(w, np.asarray(w_zero_point, dtype=np.int64), x_range, x_zero_point, accum,
                              int(group_size))
    zw = np.asarray(w_zero_point, dtype=np.int64).reshape(-1)
    centred = w - (zw[:, None] if zw.size == w.shape[0] else int(zw[0]))
    sum_abs = np.abs(centred).sum(axis=1)
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.abs(np.asarray(bias, dtype=np.int64).reshape(-1))
    lo, hi = int(x_range[0]), int(x_range[1])
    zx = int(x_zero_point)
    folded = accum.input_zero_point is ZeroPointPlacement.FOLDED_INTO_BIAS
    # Python ints: k * max|x| * max|w| can pass 2**63 only for absurd layers, but stay exact regardless
    if folded:
        x_abs = max(abs(lo), abs(hi))
        bounds = [int(s) * x_abs + int(bc) + abs(zx * int(t)) for s, bc, t in zip(sum_abs, b, centred.sum(axis=1))]
        mac_x = (lo, hi)
    else:
        x_abs = max(abs(lo - zx), abs(hi - zx))
        bounds = [int(s) * x_abs + int(bc) for s, bc in zip(sum_abs, b)]
        mac_x = (lo - zx, hi - zx)
    worst = max(bounds) if bounds else 0
    k = int(w.shape[1])
    group_over = False
    if accum.group > 1 and k > 0:
        w_lo, w_hi = int(centred.min()), int(centred.max())
        group_over = headroom(k, mac_x, (w_lo, w_hi), accum).group_can_overflow
    return AccumulatorBound(worst_case_abs_acc=worst, min_safe_bits=signed_bits(-worst, worst),
                            group_can_overflow=group_over, k=k)


def _grouped_bound(w: np.ndarray, zw: np.ndarray, x_range, x_zero_point: int, accum, n: int) -> AccumulatorBound:
    """accumulator_bound for per-group weights: one accumulator per (channel, group), no bias."""
    o, k = w.shape
    cols = np.arange(k) // n
    zw = np.broadcast_to(zw.reshape(o, -1) if zw.size > 1 else zw.reshape(1, 1), (o, int(cols.max()) + 1 if k else 1))
    centred = w - zw[:, cols]
    worst, group_over = 0, False
    for g in range(int(cols.max()) + 1 if k else 0):
        part = centred[:, cols == g]
        b = accumulator_bound(part, 0, None, x_range, x_zero_point, accum)
        worst = max(worst, b.worst_case_abs_acc)
        group_over = group_over or b.group_can_overflow
    return AccumulatorBound(worst_case_abs_acc=worst, min_safe_bits=signed_bits(-worst, worst),
                            group_can_overflow=group_over, k=min(n, k))


def observed_headroom_bits(max_abs_acc: int, acc_bits: int) -> int:
    """Accumulator bits left unused by the largest |acc| seen (0 when it reached a rail).

    The counters keep |acc| only: ``2**(acc_bits - 1)`` can only have been the
    negative rail, so it counts as a full accumulator, not as an overflow.
    """
    m = int(max_abs_acc)
    if m == 1 << (acc_bits - 1):
        return 0
    return acc_bits - signed_bits(-m, m)
