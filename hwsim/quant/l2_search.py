"""PyTorch HistogramObserver's L2 range search (SEMANTICS.md 4.5), on a :class:`RangeHistogram`.

The search moves a [start, end] bin window inwards from the full histogram, a quantile step of 1e-5 at
a time, trimming whichever side drops more bins (ties trim the right side), and stops at the first
step whose quantization error exceeds the best so far.  The error of quantizing source bins into
``dst_nbins`` equal levels over the window assumes each source bin's counts are spread uniformly and
sums the integral of (x - level centre)^2 over each bin's pieces (levels beyond the window clamp to the
first / last one).
"""

from __future__ import annotations

import numpy as np

__all__ = ["l2_error", "l2_search"]


def _norm(delta_begin, delta_end, density):
    """Integral of x^2 from delta_begin to delta_end, times the density."""
    return density * (delta_end ** 3 - delta_begin ** 3) / 3.0


def l2_error(hist: np.ndarray, bin_width: float, start: int, end: int, dst_nbins: int) -> float:
    """Squared error of quantizing ``hist`` into ``dst_nbins`` levels spanning source bins start..end."""
    n = hist.size
    dst_width = bin_width * (end - start + 1) / dst_nbins
    if dst_width == 0.0:
        return 0.0
    begin = (np.arange(n) - start) * bin_width            # distance of each source bin from the window start
    stop = begin + bin_width
    first_level = np.clip(np.floor(begin / dst_width), 0, dst_nbins - 1)
    last_level = np.clip(np.floor(stop / dst_width), 0, dst_nbins - 1)
    density = hist / bin_width
    half = dst_width / 2
    # the piece in the level holding the bin's start, the whole levels in between, the piece in the last level
    err = _norm(begin - (first_level + 0.5) * dst_width, half, density)
    err += (last_level - first_level - 1) * _norm(-half, half, density)
    err += _norm(-half, stop - (last_level + 0.5) * dst_width, density)
    return float(err.sum())


def l2_search(hist: np.ndarray, lo: float, hi: float, dst_nbins: int) -> tuple[float, float]:
    """The (new_min, new_max) PyTorch's ``_non_linear_param_search`` picks for a histogram over [lo, hi]."""
    n = hist.size
    bin_width = (hi - lo) / n
    total = float(hist.sum())
    csum = np.cumsum(hist)
    step = 1e-5
    alpha, beta = 0.0, 1.0
    start, end = 0, n - 1
    best = float("inf")
    while alpha < beta:
        next_alpha, next_beta = alpha + step, beta - step
        # the first bin (from start) whose cumulative mass reaches the lower quantile, and the last bin
        # (from end) whose cumulative mass stays within the upper one
        left = min(max(int(np.searchsorted(csum, next_alpha * total, side="left")), start), end)
        right = max(min(int(np.searchsorted(csum, next_beta * total, side="right")) - 1, end), start)
        next_start, next_end = start, end
        if left - start > end - right:
            next_start, alpha = left, next_alpha
        else:
            next_end, beta = right, next_beta
        if next_start == start and next_end == end:
            continue
        err = l2_error(hist, bin_width, next_start, next_end, dst_nbins)
        if err > best:
            break
        best, start, end = err, next_start, next_end
    return lo + bin_width * start, lo + bin_width * (end + 1)
