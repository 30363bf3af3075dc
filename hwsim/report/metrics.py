"""Error metrics between a float reference and what a target computed (plain numpy, float64 sums).

Every function takes the float reference first and the approximation second,
both as real values of the same shape.  The error is ``e = approx - ref``, so a
positive mean error means the target reads high.

.. math::

    \\mathrm{SQNR} = 10 \\log_{10} \\frac{\\sum r^2}{\\sum e^2} \\ \\mathrm{dB}, \\qquad
    \\cos = \\frac{\\sum r a}{\\lVert r \\rVert \\, \\lVert a \\rVert}

.. note:: An exact result (``e == 0`` everywhere) has SQNR ``+inf``; a zero
   reference with a nonzero error has ``-inf``; both zero gives ``+inf``.
   Cosine similarity of two zero vectors is 1, of a zero and a nonzero one 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ErrorMetrics", "error_metrics", "sqnr_db", "cosine_similarity", "rails_share", "clip_share",
           "channel_clip_share", "topk_agreement", "accuracy", "error_histogram"]


@dataclass(frozen=True)
class ErrorMetrics:
    """The error of one tensor (a layer's output or a model output) against the float reference.

    Attributes
    ----------
    mse : mean of e^2 (real units squared)
    sqnr_db : signal-to-quantisation-noise ratio in dB (may be +-inf, see the module note)
    max_abs_error : max |e| in real units
    max_error_lsb : max |e| / scale: in steps of the quantized tensor (None if it has no scale)
    mean_error : mean of e, the bias of the target's result
    cosine : cosine similarity of reference and approximation
    rails_share : share of integer codes at the format's qmin or qmax (None for a float tensor)
    clip_share : share of reference values beyond the rails (more than half a step outside the
        representable range): the outputs that had to saturate (None for a float tensor)
    """

    mse: float
    sqnr_db: float
    max_abs_error: float
    max_error_lsb: float | None
    mean_error: float
    cosine: float
    rails_share: float | None = None
    clip_share: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _same_shape(ref: np.ndarray, approx: np.ndarray) -> None:
    if ref.shape != approx.shape:
        raise ValueError(f"reference shape {list(ref.shape)} differs from approximation shape {list(approx.shape)}")


def sqnr_db(ref, approx) -> float:
    """10 log10(sum ref^2 / sum (approx - ref)^2) in dB; see the module note for the degenerate cases.

    >>> sqnr_db([3.0, 4.0], [3.0, 4.5])   # 25 / 0.25 = 100 -> 20 dB
    20.0
    """
    r, a = _f64(ref), _f64(approx)
    _same_shape(r, a)
    noise = float(np.sum((a - r) ** 2))
    signal = float(np.sum(r * r))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine_similarity(ref, approx) -> float:
    """sum(r a) / (|r| |a|); 1 for two zero vectors, 0 when exactly one is zero."""
    r, a = _f64(ref).reshape(-1), _f64(approx).reshape(-1)
    _same_shape(r, a)
    # plain reductions rather than BLAS dot / norm: a BLAS thread pool on a busy machine is slower here
    nr2, na2 = float(np.sum(r * r)), float(np.sum(a * a))
    if nr2 == 0.0 or na2 == 0.0:
        return 1.0 if nr2 == na2 else 0.0
    if np.array_equal(r, a):      # exactly 1, not 1 - 2^-52 from rounding
        return 1.0
    return float(np.clip(float(np.sum(r * a)) / math.sqrt(nr2 * na2), -1.0, 1.0))


def rails_share(q, qmin: int, qmax: int) -> float:
    """Share of integer codes equal to ``qmin`` or ``qmax``."""
    q = np.asarray(q)
    if q.size == 0:
        return 0.0
    return float(np.count_nonzero((q == qmin) | (q == qmax))) / q.size


def _beyond(ref, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    """True where the real value lies more than half a step outside [scale (qmin - zp), scale (qmax - zp)]."""
    r = _f64(ref)
    s, z = _f64(scale), _f64(zero_point)
    return (r < s * (qmin - z - 0.5)) | (r > s * (qmax - z + 0.5))


def clip_share(ref, scale, zero_point, qmin: int, qmax: int) -> float:
    """Share of reference values that no code in [qmin, qmax] can represent (they saturate).

    ``scale`` and ``zero_point`` broadcast against ``ref`` (per channel: shape them for it).
    """
    r = _f64(ref)
    if r.size == 0:
        return 0.0
    return float(np.count_nonzero(_beyond(r, scale, zero_point, qmin, qmax))) / r.size


def channel_clip_share(ref, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    """:func:`clip_share` per channel of the last axis (the IR's channel axis): float64 [C]."""
    r = _f64(ref)
    if r.ndim < 2:
        r = r.reshape(1, -1)
    beyond = _beyond(r, scale, zero_point, qmin, qmax).reshape(-1, r.shape[-1])
    return beyond.mean(axis=0) if beyond.shape[0] else np.zeros(r.shape[-1])


def error_metrics(ref, approx, lsb=None) -> ErrorMetrics:
    """MSE, SQNR, max / mean error and cosine of ``approx`` against ``ref`` (rails fields left None).

    ``lsb`` is the quantisation step (scale) of the tensor, a scalar or an array
    that broadcasts against ``ref``; without it ``max_error_lsb`` is None.
    """
    r, a = _f64(ref), _f64(approx)
    _same_shape(r, a)
    e = a - r
    if e.size == 0:
        raise ValueError("error_metrics: empty tensors")
    abs_e = np.abs(e)
    lsb_err = None
    if lsb is not None:
        lsb_err = float(np.max(abs_e / _f64(lsb)))
    return ErrorMetrics(
        mse=float(np.mean(e * e)),
        sqnr_db=sqnr_db(r, a),
        max_abs_error=float(np.max(abs_e)),
        max_error_lsb=lsb_err,
        mean_error=float(np.mean(e)),
        cosine=cosine_similarity(r, a),
    )


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    # stable sort of -logits: among equal logits the lower class index ranks first (as np.argmax)
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def topk_agreement(ref_logits, logits, k: int = 1) -> float:
    """Share of samples whose float top-1 class is among the target's top ``k`` classes.

    ``ref_logits``, ``logits``: [N, C].  Ties rank the lower class index first.
    """
    r, a = np.asarray(ref_logits), np.asarray(logits)
    _same_shape(r, a)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ValueError(f"topk_agreement: expected [N, C] logits with N >= 1, got shape {list(r.shape)}")
    ref_top1 = _topk(r, 1)[:, 0]
    return float(np.mean(np.any(_topk(a, k) == ref_top1[:, None], axis=1)))


def accuracy(logits, labels, k: int = 1) -> float:
    """Share of samples whose label is among the top ``k`` classes of ``logits`` [N, C]."""
    a, y = np.asarray(logits), np.asarray(labels).reshape(-1)
    if a.ndim != 2 or a.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: expected [N, C] logits and N labels, got {list(a.shape)} and {y.shape[0]} labels")
    return float(np.mean(np.any(_topk(a, k) == y[:, None], axis=1)))


def error_histogram(errors, edges) -> np.ndarray:
    """Counts of ``errors`` in the bins ``edges``; values outside land in the end bins (int64 [len(edges)-1])."""
    e = _f64(errors).reshape(-1)
    edges = _f64(edges)
    e = np.clip(e, edges[0], edges[-1])
    counts, _ = np.histogram(e, bins=edges)
    return counts.astype(np.int64)
