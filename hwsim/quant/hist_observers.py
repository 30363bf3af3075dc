"""The histogram-based calibration observers: percentile, entropy (two flavours), MSE, PyTorch L2 histogram.

Each keeps one streaming histogram (:mod:`hwsim.quant.histogram`) and searches it when the range is
asked for.  SEMANTICS.md sections 4.2 - 4.5 are the specification; each class says which reference it
follows and where it knowingly differs.
"""

from __future__ import annotations

import numpy as np

from hwsim.quant.histogram import AbsHistogram, RangeHistogram, SignedHistogram
from hwsim.quant.kl import kl_amax_tensorrt, kl_range_mxnet
from hwsim.quant.l2_search import l2_search
from hwsim.quant.observer_base import Observer
from hwsim.quant.params import QuantFormat, params_from_range

__all__ = ["PercentileObserver", "EntropyObserver", "EntropyMxnetObserver", "MseObserver", "HistogramObserver"]


def _clip_to_seen(lo: float, hi: float, seen_lo: float, seen_hi: float) -> tuple[float, float]:
    """A threshold range never extends beyond the values actually seen (onnxruntime does the same).

    When the threshold window misses the data altogether (e.g. a single value, which a KL search may
    clip away), onnxruntime returns lo > hi; here the seen range is returned instead.
    """
    lo, hi = max(float(lo), float(seen_lo)), min(float(hi), float(seen_hi))
    return (lo, hi) if lo <= hi else (float(seen_lo), float(seen_hi))


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


class _HistogramBased(Observer):
    """An observer whose whole state is ``self.hist``, one of the streaming histograms."""

    hist: AbsHistogram | SignedHistogram | RangeHistogram

    def _update(self, x: np.ndarray) -> None:
        self.hist.add(x)


class _BinnedRange(_HistogramBased):
    """A range chosen from an |x| or signed histogram, which has no bins while it has seen only zeros."""

    def _compute_range(self) -> tuple[float, float]:
        h = self.hist
        if h.hist is None:                         # only zeros (or subnormal values) so far
            return float(h.min_val), float(h.max_val)
        return self._range_from(h)

    def _range_from(self, h) -> tuple[float, float]:
        raise NotImplementedError


class PercentileObserver(_BinnedRange):
    """onnxruntime's ``compute_percentile``: cut the histogram where its CDF reaches ``percentile``.

    Symmetric formats (or ``symmetric=True``) histogram |x| (starting at the first batch's min|x|, as
    onnxruntime does) and take ``(-t, t)`` with ``t = edges[searchsorted(cdf, p / 100)]``; asymmetric
    ones histogram x over [-max|x|, max|x|] and cut ``(100 - p) / 200`` of the mass from each side.
    The result is clipped to the observed [min, max].  Difference from onnxruntime: values of a later
    batch below the first batch's min|x| are counted in the first bin (onnxruntime drops them).
    """

    name = "percentile"

    def __init__(self, fmt: QuantFormat, percentile: float = 99.999, num_bins: int = 2048,
                 symmetric: bool | None = None) -> None:
        super().__init__(fmt)
        p = float(percentile)
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile observer: percentile must be in [0, 100], got {percentile!r}")
        self.percentile = p
        self.symmetric = fmt.symmetric if symmetric is None else bool(symmetric)
        bins = _positive_int("percentile observer: num_bins", num_bins)
        self.hist = AbsHistogram(bins) if self.symmetric else SignedHistogram(bins)

    def _range_from(self, h) -> tuple[float, float]:
        cdf = np.cumsum(h.hist / h.hist.sum())
        if self.symmetric:
            t = h.edges[np.searchsorted(cdf, self.percentile / 100.0)]
            lo, hi = -t, t
        else:
            cut = (100.0 - self.percentile) / 200.0
            lo = h.edges[np.searchsorted(cdf, cut)]
            hi = h.edges[np.searchsorted(cdf, 1.0 - cut)]
        return _clip_to_seen(lo, hi, h.min_val, h.max_val)


class EntropyObserver(_BinnedRange):
    """TensorRT-style KL calibration (pytorch-quantization flavour), see :func:`~hwsim.quant.kl.kl_amax_tensorrt`.

    A ``num_bins`` histogram of |x| from 0; candidates from ``start_bin`` bins; ``num_levels``
    defaults to 2^(bits-1) (128 for 8 bits: the codes one side of a symmetric range has), or 2^bits
    when the format is asymmetric and no negative value was seen (a one-sided range uses every code,
    pytorch-quantization's ``unsigned``).  Range: ``(-amax, amax)`` clipped to the observed [min, max].
    """

    name = "entropy"

    def __init__(self, fmt: QuantFormat, num_bins: int = 2048, start_bin: int = 128,
                 num_levels: int | None = None) -> None:
        super().__init__(fmt)
        self.hist = AbsHistogram(_positive_int("entropy observer: num_bins", num_bins), from_zero=True)
        self.start_bin = _positive_int("entropy observer: start_bin", start_bin)
        self.num_levels = None if num_levels is None else _positive_int("entropy observer: num_levels", num_levels)

    def _range_from(self, h) -> tuple[float, float]:
        levels = self.num_levels
        if levels is None:
            one_sided = not self.fmt.symmetric and h.min_val >= 0
            levels = 1 << (self.fmt.bits if one_sided else self.fmt.bits - 1)
        amax = kl_amax_tensorrt(h.hist, h.edges, levels, self.start_bin)
        return _clip_to_seen(-amax, amax, h.min_val, h.max_val)


class EntropyMxnetObserver(_BinnedRange):
    """MXNet / onnxruntime KL calibration, see :func:`~hwsim.quant.kl.kl_range_mxnet`.

    A signed histogram over [-max|x|, max|x|] of ``num_bins`` bins; ``num_quantized_bins`` levels
    (default 2^bits - 1 = 255 for 8 bits, MXNet's choice).  onnxruntime's own defaults (128 bins,
    128 levels) leave a single candidate, the full range, i.e. MinMax; pass them to reproduce it.
    The result is clipped to the observed [min, max].
    """

    name = "entropy_mxnet"

    def __init__(self, fmt: QuantFormat, num_bins: int = 2048, num_quantized_bins: int | None = None) -> None:
        super().__init__(fmt)
        self.hist = SignedHistogram(_positive_int("entropy_mxnet observer: num_bins", num_bins))
        nq = (1 << fmt.bits) - 1 if num_quantized_bins is None else num_quantized_bins
        self.num_quantized_bins = _positive_int("entropy_mxnet observer: num_quantized_bins", nq)

    def _range_from(self, h) -> tuple[float, float]:
        lo, hi = kl_range_mxnet(h.hist, h.edges, self.num_quantized_bins)
        return _clip_to_seen(lo, hi, h.min_val, h.max_val)


class MseObserver(_HistogramBased):
    """OMSE-style search: the clipping range whose fake quantization has the least squared error.

    The data is kept as a :class:`~hwsim.quant.histogram.RangeHistogram` of ``num_bins`` bins over
    [min, max]; candidate ranges shrink the observed range (widened to hold 0) by t = k / num_bins,
    k = start_bin .. num_bins (asymmetric formats: ``t * [min(lo, 0), max(hi, 0)]``; symmetric ones:
    ``t * [-m, m]``, m = max|x|); the result is clipped to the values seen.
    Each candidate's error is ``sum(count_j * (fq(c_j) - c_j)^2)`` over bin centres c_j, fq the
    quantize-dequantize in this format with the candidate's own scale and zero point
    (:func:`~hwsim.quant.params.params_from_range`); the smallest error wins (the first on a tie).
    """

    name = "mse"

    def __init__(self, fmt: QuantFormat, num_bins: int = 2048, start_bin: int = 128) -> None:
        super().__init__(fmt)
        self.hist = RangeHistogram(_positive_int("mse observer: num_bins", num_bins))
        self.start_bin = _positive_int("mse observer: start_bin", start_bin)

    def _compute_range(self) -> tuple[float, float]:
        h = self.hist
        lo, hi = min(h.seen_min, 0.0), max(h.seen_max, 0.0)     # the quantized range always holds 0
        if self.fmt.symmetric:
            m = max(-lo, hi)
            lo, hi = -m, m
        if hi - lo <= 0:
            return float(h.seen_min), float(h.seen_max)
        edges = h.edges
        centres = (edges[:-1] + edges[1:]) / 2
        counts = h.hist
        keep = counts > 0
        centres, counts = centres[keep], counts[keep]
        ks = np.arange(min(self.start_bin, h.bins), h.bins + 1)
        t = ks / h.bins
        params = params_from_range(t * lo, t * hi, self.fmt)
        scale = params.scale.astype(np.float64)[:, None]
        zp = params.zero_point.astype(np.float64)[:, None]
        errors = np.empty(ks.size)
        for s in range(0, ks.size, 256):            # 256 candidates at a time bound the memory
            sc, z = scale[s:s + 256], zp[s:s + 256]
            q = np.clip(np.rint(centres / sc) + z, self.fmt.qmin, self.fmt.qmax)
            errors[s:s + 256] = ((sc * (q - z) - centres) ** 2 * counts).sum(axis=1)
        best = t[int(np.argmin(errors))]
        return _clip_to_seen(best * lo, best * hi, h.seen_min, h.seen_max)


class HistogramObserver(_HistogramBased):
    """PyTorch's HistogramObserver: ``bins`` = 2048, ``upsample_rate`` = 128, L2 search into 2^bits levels.

    See :mod:`hwsim.quant.l2_search`.  Like PyTorch, the level count ignores restricted range.
    """

    name = "histogram"

    def __init__(self, fmt: QuantFormat, bins: int = 2048, upsample_rate: int = 128) -> None:
        super().__init__(fmt)
        self.hist = RangeHistogram(_positive_int("histogram observer: bins", bins),
                                   _positive_int("histogram observer: upsample_rate", upsample_rate))

    def _compute_range(self) -> tuple[float, float]:
        h = self.hist
        if h.max_val - h.min_val <= 0:
            return h.min_val, h.max_val
        return l2_search(h.hist, h.min_val, h.max_val, 1 << self.fmt.bits)
