"""Streaming histograms for the calibration observers: O(bins) state, ranges that grow across batches.

Three layouts, each the one its reference calibrator uses, so thresholds land on the same bin edges:

* :class:`AbsHistogram` -- |x| in equal bins; a later batch beyond the last edge appends bins of the
  same width (onnxruntime ``collect_absolute_value``; pytorch-quantization's ``HistogramCalibrator`` when
  ``from_zero``).  onnxruntime starts the first histogram at min|x|; ``from_zero`` starts it at 0.
* :class:`SignedHistogram` -- x in equal bins over [-t, t], t = max|x|; a larger later t adds the same
  number of bins of the old width on both sides (onnxruntime ``collect_value`` / ``merge_histogram``).
* :class:`RangeHistogram` -- x in ``bins`` equal bins over [min, max]; when a batch widens the range the
  old counts are spread uniformly over ``upsample_rate`` sub-bins each and re-binned into the new grid
  (PyTorch ``HistogramObserver``, SEMANTICS.md 4.5).  Counts become fractional after a re-bin.

All bin arithmetic is done in float32 where the reference does it in float32 (numpy's histogram of
float32 data with float32 bounds), so the edges equal the reference's edges bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AbsHistogram", "SignedHistogram", "RangeHistogram"]

_F32 = np.float32


_F32_EPS = float(np.finfo(_F32).eps)


def _smallest_range(num_bins: int) -> float:
    """Below this width ``num_bins`` float32 bins would be subnormal: such data is treated as zeros."""
    return float(np.finfo(_F32).tiny) * num_bins


def max_bins_for(num_bins: int) -> int:
    """How far a growing histogram may extend before it is re-binned coarser: 16 x its initial bins.

    (The references grow without bound: a first batch of tiny values followed by a large one asks them
    for billions of bins.)
    """
    return 16 * num_bins


class AbsHistogram:
    """Histogram of |x| with equal bins that grows to the right.

    Attributes
    ----------
    hist : int64 [n]
    edges : float32 [n + 1]
    min_val, max_val : float32
        The smallest / largest *signed* value seen (the percentile and KL thresholds are clipped to them).
    """

    def __init__(self, num_bins: int = 2048, from_zero: bool = False) -> None:
        if int(num_bins) < 1:
            raise ValueError(f"num_bins: expected a positive integer, got {num_bins!r}")
        self.num_bins = int(num_bins)
        self.max_bins = max_bins_for(self.num_bins)
        self.from_zero = from_zero
        self.hist: np.ndarray | None = None      # None until a batch with some x != 0 arrives
        self.edges: np.ndarray | None = None
        self.zeros_before = 0                    # zeros seen before that batch (they join bin 0)
        self.min_val = _F32(np.inf)
        self.max_val = _F32(-np.inf)

    def add(self, x: np.ndarray) -> None:
        self.min_val = min(self.min_val, x.min())
        self.max_val = max(self.max_val, x.max())
        a = np.abs(x)
        if self.hist is None:
            amax = a.max()
            if amax < _smallest_range(self.num_bins):
                # an all-zero batch (or one below float32's normal range) has no scale to lay bins out
                # with (numpy would invent [-0.5, 0.5], or fail): count it as zeros
                self.zeros_before += a.size
                return
            # onnxruntime starts at min|x|; a (nearly) constant |x| gives bins narrower than float32 can
            # hold (numpy refuses), so then, and with from_zero, the bins start at 0
            narrow = (amax - a.min()) < amax * _F32_EPS * self.num_bins
            rng = (_F32(0), amax) if self.from_zero or narrow else None
            hist, edges = np.histogram(a, bins=self.num_bins, range=rng)
            hist[0] += self.zeros_before
            self.hist, self.edges = hist.astype(np.int64), edges.astype(_F32)
            return
        edges = self.edges
        amax = a.max()
        if amax > edges[-1]:
            width = edges[1] - edges[0]
            if (amax - edges[-1]) / width > self.max_bins - edges.size:
                # appending old-width bins would exceed max_bins: start num_bins over [edges[0], amax]
                # and move the old counts there by their bin centres (the references would run out of memory)
                self._rebin(np.linspace(edges[0], amax, self.num_bins + 1).astype(_F32))
                edges = self.edges
            else:
                # append bins of the old width until amax is covered (arange may add one bin beyond it)
                edges = np.hstack((edges, np.arange(edges[-1] + width, amax + width, width)))
        # values below the first edge (onnxruntime's histogram starts at the first batch's min|x|) go to
        # bin 0 rather than being lost; with from_zero there are none
        a = np.maximum(a, edges[0])
        hist, edges = np.histogram(a, bins=edges)
        hist = hist.astype(np.int64)
        hist[: self.hist.size] += self.hist
        self.hist, self.edges = hist, edges.astype(_F32)

    def _rebin(self, edges: np.ndarray) -> None:
        centres = (self.edges[:-1].astype(np.float64) + self.edges[1:]) / 2
        self.hist = _counts_at(centres, self.hist, edges)
        self.edges = edges


def _counts_at(centres: np.ndarray, counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Integer counts placed at ``centres`` re-binned into ``edges`` (values outside go to the end bins)."""
    idx = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, edges.size - 2)
    return np.bincount(idx, weights=counts, minlength=edges.size - 1).astype(counts.dtype)


class SignedHistogram:
    """Histogram of x over [-t, t] (t = max|x| seen, bins centred on 0 for an odd count) that grows both ways."""

    def __init__(self, num_bins: int = 2048) -> None:
        if int(num_bins) < 1:
            raise ValueError(f"num_bins: expected a positive integer, got {num_bins!r}")
        self.num_bins = int(num_bins)
        self.max_bins = max_bins_for(self.num_bins)
        self.hist: np.ndarray | None = None      # None until a batch with some |x| in float32's normal range
        self.edges: np.ndarray | None = None
        self.zeros_before = 0
        self.threshold = _F32(0)
        self.min_val = _F32(np.inf)
        self.max_val = _F32(-np.inf)

    def add(self, x: np.ndarray) -> None:
        lo, hi = x.min(), x.max()
        self.min_val = min(self.min_val, lo)
        self.max_val = max(self.max_val, hi)
        t = _F32(max(abs(lo), abs(hi)))
        if self.hist is None:
            if t < _smallest_range(self.num_bins):
                self.zeros_before += x.size        # as AbsHistogram: no scale to lay bins out with yet
                return
            hist, edges = np.histogram(x, self.num_bins, range=(-t, t))
            hist[self.num_bins // 2] += self.zeros_before
            self.hist, self.edges, self.threshold = hist.astype(np.int64), edges, t
            return
        old_t, old = self.threshold, self.hist
        if t <= old_t:
            hist, _ = np.histogram(x, old.size, range=(-old_t, old_t))
            self.hist = old + hist
            return
        if old_t == 0:
            hist, edges = np.histogram(x, old.size, range=(-t, t))
            self.hist, self.edges, self.threshold = hist + old, edges, t
            return
        # widen by whole old-width bins on both sides so the old bins keep their place in the new grid
        stride = 2 * old_t / old.size
        if (t - old_t) / stride > (self.max_bins - old.size) / 2:
            # that many bins would exceed max_bins: num_bins over [-t, t], old counts moved by bin centres
            hist, edges = np.histogram(x, self.num_bins, range=(-t, t))
            centres = (self.edges[:-1].astype(np.float64) + self.edges[1:]) / 2
            self.hist = hist.astype(np.int64) + _counts_at(centres, old, edges)
            self.edges, self.threshold = edges, t
            return
        extra = int((t - old_t) // stride + 1)
        new_t = _F32(extra * stride + old_t)
        hist, edges = np.histogram(x, old.size + 2 * extra, range=(-new_t, new_t))
        hist[extra: extra + old.size] += old
        self.hist, self.edges, self.threshold = hist.astype(np.int64), edges, new_t


def _range_counts(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """Counts of x in ``bins`` equal bins over [lo, hi], laid out in float64 (a narrow range of large
    float32 values would need bins finer than float32 holds)."""
    return np.histogram(x, bins, range=(np.float64(lo), np.float64(hi)))[0].astype(np.float64)


class RangeHistogram:
    """Histogram of x in ``bins`` equal bins over [min, max], re-binned when the range grows (PyTorch style).

    Attributes
    ----------
    hist : float64 [bins]
        Counts (fractional after a re-bin).
    min_val, max_val : float
        The histogram's range (after a re-bin ``max_val`` may lie a little beyond the largest value seen,
        so that old and new bins share one fine grid).
    """

    def __init__(self, bins: int = 2048, upsample_rate: int = 128) -> None:
        if int(bins) < 1 or int(upsample_rate) < 1:
            raise ValueError(f"bins / upsample_rate: expected positive integers, got {bins!r} / {upsample_rate!r}")
        self.bins = int(bins)
        self.upsample_rate = int(upsample_rate)
        self.hist = np.zeros(self.bins)
        self.min_val = math.inf
        self.max_val = -math.inf
        self.seen_min = math.inf        # the extreme values actually seen (max_val may lie beyond seen_max)
        self.seen_max = -math.inf

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.min_val, self.max_val, self.bins + 1)

    def _reset(self, x: np.ndarray, lo: float, hi: float) -> None:
        self.min_val, self.max_val = lo, hi
        self.hist = _range_counts(x, self.bins, lo, hi)

    def add(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        self.seen_min, self.seen_max = min(self.seen_min, lo), max(self.seen_max, hi)
        old_lo, old_hi = self.min_val, self.max_val
        # an empty or (nearly) zero-width old range carries no shape worth re-binning: start again
        if not math.isfinite(old_lo) or old_hi - old_lo < 1e-6:
            # (PyTorch drops the old counts here; they all sit near old_lo, so put them back there)
            old_count = self.hist.sum()
            self._reset(x, min(lo, old_lo), max(hi, old_hi))
            if old_count:
                self.hist += _counts_at(np.array([old_lo]), np.array([old_count]), self.edges)
            return
        new_lo, new_hi = min(lo, old_lo), max(hi, old_hi)
        if new_lo == old_lo and new_hi == old_hi:
            self.hist = self.hist + _range_counts(x, self.bins, old_lo, old_hi)
            return
        old_w = old_hi - old_lo
        # one fine grid of width old_w / (bins * upsample_rate): the new range spans bins * down fine bins
        down = int(math.ceil((new_hi - new_lo) / old_w * self.upsample_rate))
        new_hi = new_lo + down / self.upsample_rate * old_w
        start = int(round((old_lo - new_lo) / old_w * self.bins * self.upsample_rate))
        if self.bins * down * 8 > 1e9:
            # the fine grid would not fit in memory (a tiny old range next to a huge new one); PyTorch then
            # drops the old counts, here they move to the new grid by their bin centres
            old_edges = self.edges
            centres = (old_edges[:-1] + old_edges[1:]) / 2
            old_hist = self.hist
            self._reset(x, new_lo, max(hi, old_hi))
            self.hist += _counts_at(centres, old_hist, self.edges)
            return
        fine = np.zeros(self.bins * down)
        fine[start: start + self.bins * self.upsample_rate] = np.repeat(self.hist, self.upsample_rate)
        integral = np.cumsum(fine)[down - 1:: down]
        rebinned = np.diff(integral, prepend=0.0) / self.upsample_rate
        self.hist = rebinned + _range_counts(x, self.bins, new_lo, new_hi)
        self.min_val, self.max_val = new_lo, new_hi
