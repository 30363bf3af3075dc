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
        self.from_zero = from_zero
        self.hist: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.min_val = _F32(np.inf)
        self.max_val = _F32(-np.inf)

    def add(self, x: np.ndarray) -> None:
        self.min_val = min(self.min_val, x.min())
        self.max_val = max(self.max_val, x.max())
        a = np.abs(x)
        if self.hist is None:
            rng = (_F32(0), a.max()) if self.from_zero else None
            hist, edges = np.histogram(a, bins=self.num_bins, range=rng)
            self.hist, self.edges = hist.astype(np.int64), edges.astype(_F32)
            return
        edges = self.edges
        amax = a.max()
        if amax > edges[-1]:
            # append bins of the old width until amax is covered (arange may add one bin beyond it)
            width = edges[1] - edges[0]
            edges = np.hstack((edges, np.arange(edges[-1] + width, amax + width, width)))
        # values below the first edge (onnxruntime's histogram starts at the first batch's min|x|) go to
        # bin 0 rather than being lost; with from_zero there are none
        a = np.maximum(a, edges[0])
        hist, edges = np.histogram(a, bins=edges)
        hist = hist.astype(np.int64)
        hist[: self.hist.size] += self.hist
        self.hist, self.edges = hist, edges.astype(_F32)


class SignedHistogram:
    """Histogram of x over [-t, t] (t = max|x| seen, bins centred on 0 for an odd count) that grows both ways."""

    def __init__(self, num_bins: int = 2048) -> None:
        if int(num_bins) < 1:
            raise ValueError(f"num_bins: expected a positive integer, got {num_bins!r}")
        self.num_bins = int(num_bins)
        self.hist: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.threshold = _F32(0)
        self.min_val = _F32(np.inf)
        self.max_val = _F32(-np.inf)

    def add(self, x: np.ndarray) -> None:
        lo, hi = x.min(), x.max()
        self.min_val = min(self.min_val, lo)
        self.max_val = max(self.max_val, hi)
        t = _F32(max(abs(lo), abs(hi)))
        if self.hist is None:
            hist, edges = np.histogram(x, self.num_bins, range=(-t, t))
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
        extra = int((t - old_t) // stride + 1)
        new_t = _F32(extra * stride + old_t)
        hist, edges = np.histogram(x, old.size + 2 * extra, range=(-new_t, new_t))
        hist[extra: extra + old.size] += old
        self.hist, self.edges, self.threshold = hist.astype(np.int64), edges, new_t


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
        self.hist = np.histogram(x, self.bins, range=(lo, hi))[0].astype(np.float64)

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
                self.hist += np.histogram([old_lo], self.bins, range=(self.min_val, self.max_val))[0] * old_count
            return
        new_lo, new_hi = min(lo, old_lo), max(hi, old_hi)
        if new_lo == old_lo and new_hi == old_hi:
            self.hist = self.hist + np.histogram(x, self.bins, range=(old_lo, old_hi))[0]
            return
        old_w = old_hi - old_lo
        # one fine grid of width old_w / (bins * upsample_rate): the new range spans bins * down fine bins
        down = int(math.ceil((new_hi - new_lo) / old_w * self.upsample_rate))
        new_hi = new_lo + down / self.upsample_rate * old_w
        start = int(round((old_lo - new_lo) / old_w * self.bins * self.upsample_rate))
        if self.bins * down * 8 > 1e9:
            # the fine grid would not fit in memory (a tiny old range): keep only the new batch, as PyTorch
            self._reset(x, lo, hi)
            return
        fine = np.zeros(self.bins * down)
        fine[start: start + self.bins * self.upsample_rate] = np.repeat(self.hist, self.upsample_rate)
        integral = np.cumsum(fine)[down - 1:: down]
        rebinned = np.diff(integral, prepend=0.0) / self.upsample_rate
        self.hist = rebinned + np.histogram(x, self.bins, range=(new_lo, new_hi))[0]
        self.min_val, self.max_val = new_lo, new_hi
