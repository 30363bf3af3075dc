"""Non-uniform weight quantizers: power-of-two levels, k-means codebooks, binary codes.

Each returns a frozen :class:`Codebook`: float32 ``levels`` ([L] for the whole
tensor, or [C, L] per channel along ``axis``) and ``indices`` (uint8 or uint16,
the weight's shape), so that ``levels[indices]`` is the quantized tensor
(:meth:`Codebook.dequantize`).  Every method is deterministic and seed-free.

* :func:`log_quantize` -- power-of-two (logarithmic) levels ``{0, +-2^e_max,
  +-2^(e_max-1), ..., +-2^(e_max-m+1)}`` with m = 2^(bits-1) - 1 magnitudes
  (2^bits - 1 levels).  ``e_max`` is the exponent of the power of two nearest
  to max|w| (in linear distance; a tie takes the smaller exponent).  Each weight
  goes to its nearest level in linear distance (a tie takes the smaller level).
* :func:`kmeans_quantize` -- a learned codebook of L levels by Lloyd's
  algorithm in one dimension: initial centres are the quantiles (i + 0.5) / L
  of the weights (``numpy.quantile``, linear interpolation); then at most
  ``max_iter`` rounds of (assign each weight to its nearest centre, ties to the
  lower index; move each centre to the mean of its weights, an empty centre
  stays).  It stops early when no assignment changes.  The objective
  sum (w - level)^2 never increases.
* :func:`binary_code_quantize` -- ``w ~ sum_i alpha_i * b_i`` with b_i in {-1, +1}
  and M bases: greedy residual initialisation (alpha_i = mean|r|, b_i = sign(r),
  sign(0) = +1, r -= alpha_i b_i), then ``als_iters`` rounds of alternating
  minimisation as in Xu et al. 2018 ("Alternating multi-bit quantization"):
  with the alphas fixed, each weight takes the nearest of the 2^M level sums
  (the optimal codes); with the codes fixed, the alphas are the least-squares
  solution.  The index of a weight is its code read as bits (bit i = 1 means
  +alpha_i), so the levels table is indexed by the code word.

Non-uniform weights run on a target through its lookup stage
(``operands.weights.lookup`` in the profile): :func:`hwsim.quant.quantizers.to_ir_weights`
maps the float levels to the target's integer weight format and the executor
runs ``table[indices]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Codebook", "log_quantize", "kmeans_quantize", "binary_code_quantize", "kmeans_objective"]


@dataclass(frozen=True)
class Codebook:
    """A non-uniformly quantized tensor: ``levels[indices]``.

    Attributes
    ----------
    levels : ndarray, float32
        [L] (one table for the tensor) or [C, L] (one per channel along ``axis``).
    indices : ndarray, uint8 or uint16
        The tensor's shape; each entry indexes its table.
    axis : int or None
        The channel axis of per-channel tables.
    kind : str
        ``log``, ``kmeans`` or ``binary_code``.
    alphas : ndarray or None
        For ``binary_code``: the basis weights [M] or [C, M].
    """

    levels: np.ndarray
    indices: np.ndarray
    axis: int | None
    kind: str
    alphas: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("levels", "indices", "alphas"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.array(arr)
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    @property
    def n_levels(self) -> int:
        return int(self.levels.shape[-1])

    def dequantize(self) -> np.ndarray:
        """The quantized tensor, float32, the shape of ``indices``."""
        if self.levels.ndim == 1:
            return self.levels[self.indices].astype(np.float32)
        moved = np.moveaxis(self.indices, self.axis, 0)
        flat = np.take_along_axis(self.levels, moved.reshape(moved.shape[0], -1).astype(np.int64), axis=1)
        return np.moveaxis(flat.reshape(moved.shape), 0, self.axis).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _weights(w, name: str) -> np.ndarray:
    arr = np.asarray(w)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"weights {name!r}: expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"weights {name!r}: empty tensor (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"weights {name!r}: holds NaN or Inf; expected finite values")
    return arr


def _rows(arr: np.ndarray, axis: int | None, name: str) -> tuple[np.ndarray, int | None]:
    """[1, n] for per-tensor, [C, n] with ``axis`` first for per-channel."""
    if axis is None:
        return arr.reshape(1, -1), None
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis: {axis} is out of range for weights {name!r} of shape {arr.shape}")
    axis %= arr.ndim
    moved = np.moveaxis(arr, axis, 0)
    return moved.reshape(moved.shape[0], -1), axis


def _result(levels: np.ndarray, idx_rows: np.ndarray, shape: tuple, axis: int | None, kind: str,
            alphas=None) -> Codebook:
    n = levels.shape[-1]
    dtype = np.uint8 if n <= 256 else np.uint16
    if axis is None:
        indices = idx_rows.reshape(shape).astype(dtype)
        levels, alphas = levels[0], (None if alphas is None else alphas[0])
    else:
        moved_shape = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
        indices = np.moveaxis(idx_rows.reshape(moved_shape), 0, axis).astype(dtype)
    return Codebook(np.asarray(levels, np.float32), indices, axis, kind,
                    None if alphas is None else np.asarray(alphas, np.float32))


def _nearest(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest of sorted ``levels`` for each value; a tie takes the lower index."""
    hi = np.clip(np.searchsorted(levels, values, side="left"), 1, len(levels) - 1) if len(levels) > 1 else \
        np.zeros(values.shape, dtype=np.int64)
    if len(levels) == 1:
        return hi
    lo = hi - 1
    take_hi = np.abs(levels[hi] - values) < np.abs(values - levels[lo])
    return np.where(take_hi, hi, lo)


def _check_count(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name}: expected an integer in {lo}..{hi}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Power-of-two levels
# --------------------------------------------------------------------------------------------------


def _pow2_exponent(peak: float) -> int:
    """Exponent of the power of two nearest to ``peak`` > 0 (a tie takes the smaller)."""
    e = int(np.floor(np.log2(peak)))
    # guard log2 rounding at exact powers of two
    while 2.0 ** (e + 1) <= peak:
        e += 1
    while 2.0 ** e > peak:
        e -= 1
    return e + 1 if (2.0 ** (e + 1) - peak) < (peak - 2.0 ** e) else e


def log_quantize(w, bits: int = 4, axis: int | None = None, *, name: str = "w") -> Codebook:
    """Power-of-two (logarithmic) levels with zero: see the module docstring.

    Parameters
    ----------
    w : array_like
        Weights.
    bits : int
        2..8: 2^bits - 1 levels (zero and 2^(bits-1) - 1 magnitudes of each sign).
    axis : int, optional
        Per-channel tables along this axis; None = one table for the tensor.

    Examples
    --------
    >>> cb = log_quantize(np.array([0.9, -0.3, 0.05, 0.0]), bits=3)
    >>> cb.levels.tolist()          # e_max = 0 (1 is nearest to 0.9), 3 magnitudes 1, 1/2, 1/4
    [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
    >>> cb.dequantize().tolist()
    [1.0, -0.25, 0.0, 0.0]
    """
    bits = _check_count(bits, "bits", 2, 8)
    arr = _weights(w, name)
    rows, axis = _rows(arr, axis, name)
    m = (1 << (bits - 1)) - 1
    levels = np.empty((rows.shape[0], 2 * m + 1))
    idx = np.empty(rows.shape, dtype=np.int64)
    for c, row in enumerate(rows):
        peak = float(np.abs(row).max())
        e_max = _pow2_exponent(peak) if peak > 0 else 0
        mags = 2.0 ** (e_max - np.arange(m))[::-1]                  # ascending
        table = np.concatenate([-mags[::-1], [0.0], mags])
        levels[c] = table
        idx[c] = _nearest(row, table)
    return _result(levels, idx, arr.shape, axis, "log")


# --------------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------------


def kmeans_objective(w, codebook: Codebook) -> float:
    """sum (w - codebook.dequantize())^2 in float64."""
    return float(((np.asarray(w, np.float64) - codebook.dequantize().astype(np.float64)) ** 2).sum())


def _lloyd(row: np.ndarray, n_levels: int, max_iter: int, history: list | None, channel: int):
    centres = np.quantile(row, (np.arange(n_levels) + 0.5) / n_levels)
    assign = None
    for _ in range(max_iter + 1):
        order = np.argsort(centres, kind="stable")
        sorted_c = centres[order]
        new_assign = order[_nearest(row, sorted_c)]
        if history is not None:
            history.append((channel, float(((row - centres[new_assign]) ** 2).sum())))
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        sums = np.bincount(assign, weights=row, minlength=n_levels)
        counts = np.bincount(assign, minlength=n_levels)
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    # re-index so that the levels table is ascending
    order = np.argsort(centres, kind="stable")
    rank = np.empty(n_levels, dtype=np.int64)
    rank[order] = np.arange(n_levels)
    return centres[order], rank[assign]


def kmeans_quantize(w, n_levels: int = 16, axis: int | None = None, max_iter: int = 50, *,
                    name: str = "w", history: list | None = None) -> Codebook:
    """A k-means codebook of ``n_levels`` levels (Lloyd, quantile initialisation): module docstring.

    Parameters
    ----------
    n_levels : int
        2..65536 levels (indices uint8 up to 256 levels, else uint16).
    max_iter : int
        1..10000 Lloyd rounds at most.
    history : list, optional
        If given, ``(channel, objective)`` after each assignment step is appended
        (channel 0 for a per-tensor codebook).
    """
    n_levels = _check_count(n_levels, "n_levels", 2, 65536)
    max_iter = _check_count(max_iter, "max_iter", 1, 10000)
    arr = _weights(w, name)
    rows, axis = _rows(arr, axis, name)
    levels = np.empty((rows.shape[0], n_levels))
    idx = np.empty(rows.shape, dtype=np.int64)
    for c, row in enumerate(rows):
        levels[c], idx[c] = _lloyd(row, n_levels, max_iter, history, c)
    return _result(levels, idx, arr.shape, axis, "kmeans")


# --------------------------------------------------------------------------------------------------
# Binary codes
# --------------------------------------------------------------------------------------------------


def _code_matrix(n_bases: int) -> np.ndarray:
    """[2^M, M] of +-1: row j is code word j (bit i set -> +1 for basis i)."""
    j = np.arange(1 << n_bases)[:, None]
    return np.where((j >> np.arange(n_bases)[None, :]) & 1, 1.0, -1.0)


def _binary_row(row: np.ndarray, n_bases: int, als_iters: int):
    codes_all = _code_matrix(n_bases)
    residual = row.copy()
    alphas = np.empty(n_bases)
    bits = np.zeros(row.shape, dtype=np.int64)
    for i in range(n_bases):              # greedy: each basis fits what the previous ones left
        b = np.where(residual >= 0, 1.0, -1.0)
        alphas[i] = np.abs(residual).mean()
        residual -= alphas[i] * b
        bits |= (b > 0).astype(np.int64) << i
    for _ in range(als_iters):
        levels = codes_all @ alphas
        order = np.argsort(levels, kind="stable")
        bits = order[_nearest(row, levels[order])]          # optimal codes for these alphas
        basis = codes_all[bits]                             # [n, M]
        new_alphas, *_ = np.linalg.lstsq(basis, row, rcond=None)
        if np.allclose(new_alphas, alphas, rtol=0, atol=0):
            break
        alphas = new_alphas
    return codes_all @ alphas, bits, alphas


def binary_code_quantize(w, n_bases: int = 2, axis: int | None = None, als_iters: int = 10, *,
                         name: str = "w") -> Codebook:
    """Binary-code quantization ``w ~ sum_i alpha_i b_i`` (module docstring).

    Parameters
    ----------
    n_bases : int
        M, 1..8 bases (2^M levels).
    als_iters : int
        0..1000 rounds of alternating minimisation after the greedy start (0 = greedy only).
    """
    n_bases = _check_count(n_bases, "n_bases", 1, 8)
    als_iters = _check_count(als_iters, "als_iters", 0, 1000)
    arr = _weights(w, name)
    rows, axis = _rows(arr, axis, name)
    levels = np.empty((rows.shape[0], 1 << n_bases))
    alphas = np.empty((rows.shape[0], n_bases))
    idx = np.empty(rows.shape, dtype=np.int64)
    for c, row in enumerate(rows):
        levels[c], idx[c], alphas[c] = _binary_row(row, n_bases, als_iters)
    return _result(levels, idx, arr.shape, axis, "binary_code", alphas)
