"""Entropy (KL-divergence) threshold searches on a histogram (SEMANTICS.md 4.2).

Two published variants, kept apart because they pick different thresholds:

* :func:`kl_amax_tensorrt` -- TensorRT's calibrator as NVIDIA's pytorch-quantization implements it
  (the executable anchor; TensorRT itself is closed): a histogram of |x|, bins[0] := bins[1] (the zero
  spike would otherwise dominate), candidates i = start_bin .. n; P = bins[:i] with the clipped mass
  added to P[i-1]; Q = bins[:i] merged into ``num_levels`` levels (source bin j belongs to level
  ``digitize(j, linspace(0, i, levels + 1)) - 1``), each level's mass spread evenly over its non-zero
  source bins, zero bins stay zero; KL(P || Q) without smoothing; the **last** minimum wins; the
  threshold is the bin edge ``edges[i]`` (not the slides' (i + 0.5) * width).
* :func:`kl_range_mxnet` -- MXNet's ``_get_optimal_threshold`` as onnxruntime's
  ``HistogramCollector.get_entropy_threshold`` runs it: a signed histogram, candidates grow
  symmetrically around the zero bin, ``num_quantized_bins`` levels of ``len // levels`` bins (the
  remainder's mass goes to the last level but is not spread back), the spread values are truncated to
  integers (onnxruntime keeps Q in an int64 array), P and Q smoothed with eps = 1e-4, KL in float32
  as scipy computes it for float32 input; the **first** minimum wins.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kl_amax_tensorrt", "kl_range_mxnet", "smooth_distribution"]

_F32 = np.float32


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of two unnormalised non-negative float64 vectors; inf if q is 0 where p is not."""
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    if np.any(q[mask] == 0):
        return float("inf")
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _tensorrt_candidate_kl(bins: np.ndarray, tail: np.ndarray, i: int, num_levels: int) -> float:
    """KL(P || Q) of candidate ``i``, computed directly (the definition; used to settle near-ties)."""
    head = bins[:i]
    p = head.copy()
    p[-1] += tail[i]
    level = np.digitize(np.arange(i), np.linspace(0, i, num_levels + 1)) - 1
    nonzero = head != 0
    mass = np.bincount(level[nonzero], weights=head[nonzero], minlength=num_levels)
    members = np.bincount(level[nonzero], minlength=num_levels)
    q = np.zeros(i)
    q[nonzero] = mass[level[nonzero]] / members[level[nonzero]]
    return _kl(p, q) if q.sum() > 0 else float("inf")


def _tensorrt_all_kl(bins: np.ndarray, tail: np.ndarray, cands: np.ndarray, num_levels: int) -> np.ndarray:
    """KL of every candidate at once from prefix sums (equal to the definition up to float rounding).

    Level k of candidate i holds source bins ceil(k * i / L) .. ceil((k + 1) * i / L) - 1 (what
    ``digitize(j, linspace(0, i, L + 1)) - 1`` computes; the grid is built with linspace's own float
    operations).  With P_j = p_j / T and Q_j = avg_k / C_i (T all counts, C_i those below i, avg_k the
    level's mean over its non-zero bins), the terms j < i - 1 sum to
    ``(sum b_j log b_j - sum_k mass'_k log avg_k + S (log C_i - log T)) / T``; the last bin, which also
    holds the clipped tail, is added on its own.
    """
    n = bins.size
    nonzero = bins != 0
    csum = np.concatenate([[0.0], np.cumsum(bins)])
    zsum = np.concatenate([[0], np.cumsum(nonzero)])
    blogb = np.where(nonzero, bins * np.log(np.where(nonzero, bins, 1.0)), 0.0)
    lsum = np.concatenate([[0.0], np.cumsum(blogb)])
    total = csum[n]
    rows = np.arange(cands.size)
    grid = np.arange(num_levels + 1, dtype=np.float64)[None, :] * (cands / num_levels)[:, None]
    grid[:, -1] = cands
    bounds = np.ceil(grid).astype(np.int64)
    mass = csum[bounds[:, 1:]] - csum[bounds[:, :-1]]
    members = zsum[bounds[:, 1:]] - zsum[bounds[:, :-1]]
    avg = np.where(members > 0, mass / np.maximum(members, 1), 0.0)
    log_avg = np.log(np.where(avg > 0, avg, 1.0))
    last = cands - 1
    last_level = (bounds[:, :-1] <= last[:, None]).sum(axis=1) - 1
    mass_before_last = mass.copy()
    mass_before_last[rows, last_level] -= bins[last]
    head_total = csum[cands]
    with np.errstate(divide="ignore", invalid="ignore"):
        body = (lsum[last] - (mass_before_last * log_avg).sum(axis=1)
                + csum[last] * (np.log(head_total) - np.log(total))) / total
        p_last = (bins[last] + tail[cands]) / total
        q_last = np.where(bins[last] != 0, avg[rows, last_level], 0.0) / head_total
        end = np.where(p_last > 0, p_last * np.log(p_last / q_last), 0.0)
    kl = body + end
    kl[(p_last > 0) & (q_last == 0)] = np.inf
    kl[head_total == 0] = np.inf
    return kl


def kl_amax_tensorrt(hist: np.ndarray, edges: np.ndarray, num_levels: int = 128, start_bin: int = 128,
                     stride: int = 1) -> float:
    """The TensorRT-style KL threshold (amax) of a histogram of |x| whose first edge is 0.

    Parameters
    ----------
    hist, edges : ndarray
        Counts [n] and edges [n + 1] of the |x| histogram.
    num_levels : int
        Quantized levels on one side of zero: 2^(bits-1), or 2^bits for unsigned one-sided data.
    start_bin, stride : int
        The first candidate bin count and the step between candidates (128 and 1 in pytorch-quantization).

    All candidates are scored at once from prefix sums; the ones within 1e-9 of the best are then
    re-scored by the definition, so that ties (exact zeros, repeated values) resolve as the reference's
    last-minimum rule does on its own numbers.
    """
    bins = np.asarray(hist, dtype=np.float64).copy()
    n = bins.size
    if n > 1:
        bins[0] = bins[1]
    cands = np.arange(min(start_bin, n), n + 1, stride)
    tail = np.concatenate([np.cumsum(bins[::-1])[::-1], [0.0]])     # tail[i] = sum(bins[i:])
    fast = _tensorrt_all_kl(bins, tail, cands, num_levels)
    best = fast.min()
    if not np.isfinite(best):
        return float(edges[cands[-1]])
    near = np.flatnonzero(fast <= best + 1e-9 * max(1.0, abs(best)))
    exact = np.array([_tensorrt_candidate_kl(bins, tail, int(cands[c]), num_levels) for c in near])
    chosen = near[len(near) - 1 - int(np.argmin(exact[::-1]))]
    return float(edges[cands[chosen]])


def smooth_distribution(p: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """MXNet's smoothing in float32: zeros become ``eps``, non-zeros lose ``eps * n_zeros / n_nonzeros``.

    Returns None for an all-zero vector (the candidate then scores +inf).
    """
    zeros = (p == 0).astype(_F32)
    nonzeros = (p != 0).astype(_F32)
    n_zeros = zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    out = p.astype(_F32)
    out += eps * zeros + (-eps1) * nonzeros
    return out


def _kl_f32(p: np.ndarray, q: np.ndarray) -> np.float32:
    """KL of two positive float32 vectors, rounded as scipy.stats.entropy does for float32 input."""
    p = p / p.sum()
    q = q / q.sum()
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    terms = (p64 * np.log(p64 / q64)).astype(_F32)
    return np.sum(terms)


def kl_range_mxnet(hist: np.ndarray, edges: np.ndarray, num_quantized_bins: int = 255) -> tuple[float, float]:
    """The MXNet / onnxruntime KL clipping range ``(edges[start], edges[end])`` of a signed histogram."""
    hist = np.asarray(hist, dtype=np.int64)
    n = hist.size
    zero_bin = n // 2
    half = num_quantized_bins // 2
    if half > zero_bin:
        return float(edges[0]), float(edges[-1])
    cum = np.concatenate([[0], np.cumsum(hist)])
    best, best_div = None, np.inf
    for i in range(half, zero_bin + 1):
        start, end = zero_bin - i, min(zero_bin + i + 1, n)
        sliced = hist[start:end]
        p = sliced.copy()
        p[0] += cum[start]
        p[-1] += cum[n] - cum[end]
        nonzero = p != 0
        width = sliced.size // num_quantized_bins
        q = np.zeros(p.size, dtype=np.int64)
        if width > 0:
            used = num_quantized_bins * width
            level_mass = sliced[:used].reshape(num_quantized_bins, width).sum(axis=1)
            level_mass[-1] += sliced[used:].sum()
            members = nonzero[:used].reshape(num_quantized_bins, width).sum(axis=1)
            spread = np.where(members > 0, level_mass / np.maximum(members, 1), 0.0)
            # onnxruntime writes the spread value into an int64 array: it is truncated
            q[:used] = np.repeat(spread.astype(np.int64), width)
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        div = np.inf if ps is None or qs is None else float(_kl_f32(ps, qs))
        if best is None or div < best_div:
            best, best_div = (start, end), div
    start, end = best
    return float(edges[start]), float(edges[end])
