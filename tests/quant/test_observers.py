"""Observers: hand-computed ranges, the registry, frozen results and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.quant.histogram import RangeHistogram
from hwsim.quant.l2_search import l2_error, l2_search
from hwsim.quant.observers import OBSERVERS, Observer, make_observer
from hwsim.quant.params import AffineParams, QuantFormat

S8 = QuantFormat(8, signed=True, symmetric=True)
A8 = QuantFormat(8, signed=True, symmetric=False)
U8 = QuantFormat(8, signed=False, symmetric=False)
NAMES = ["minmax", "moving_average", "percentile", "entropy", "entropy_mxnet", "mse", "aciq", "histogram"]


def test_registry_names():
    assert sorted(OBSERVERS) == sorted(NAMES)
    for name, cls in OBSERVERS.items():
        assert issubclass(cls, Observer) and cls.name == name


def test_minmax_hand_computed():
    # batches [-1, 2] and [0.5, 3.5]: range [-1, 3.5]; uint8 asymmetric: scale = 4.5 / 255 = 0.0176470..,
    # zero point = round(0 - (-1) / scale) = round(56.667) = 57
    obs = make_observer("minmax", U8)
    obs.observe(np.array([-1.0, 2.0]))
    obs.observe(np.array([[0.5], [3.5]]))
    assert obs.range() == (-1.0, 3.5)
    p = obs.qparams()
    assert p.scale == np.float32(4.5 / 255) and p.zero_point == 57


def test_moving_average_hand_computed():
    # first batch sets [0, 1]; second batch [-1, 3]: min = 0 + 0.01 * (-1 - 0) = -0.01,
    # max = 1 + 0.01 * (3 - 1) = 1.02; third batch [0, 1]: min = -0.01 + 0.01 * 0.01 = -0.0099,
    # max = 1.02 + 0.01 * (1 - 1.02) = 1.0198
    obs = make_observer("moving_average", A8)
    obs.observe(np.array([0.0, 1.0]))
    obs.observe(np.array([-1.0, 3.0]))
    assert obs.range() == pytest.approx((-0.01, 1.02))
    obs.observe(np.array([0.0, 1.0]))
    assert obs.range() == pytest.approx((-0.0099, 1.0198))
    half = make_observer("moving_average", A8, averaging_constant=0.5)
    half.observe(np.array([0.0, 1.0]))
    half.observe(np.array([-1.0, 3.0]))
    assert half.range() == (-0.5, 2.0)


def test_percentile_hand_computed():
    # |x| = 1..100 in 100 bins over [1, 100] (width 0.99): one value per bin, cdf[j] = (j + 1) / 100;
    # p = 90.5 -> first cdf >= 0.905 is j = 90 -> t = edges[90] = 1 + 90 * 0.99 = 90.1;
    # (-90.1, 90.1) clipped to the data's [1, 100] -> (1, 90.1)
    obs = make_observer("percentile", S8, percentile=90.5, num_bins=100)
    obs.observe(np.arange(1, 101, dtype=np.float32))
    lo, hi = obs.range()
    assert lo == 1.0 and hi == pytest.approx(90.1, rel=1e-6)
    # asymmetric: x = -50..49 over [-50, 50] in 100 bins of width 1, cut 4.5% from each side:
    # left: first cdf >= 0.045 is bin 4 -> edge -46; right: first cdf >= 0.955 is bin 95 -> edge 45
    asym = make_observer("percentile", A8, percentile=91.0, num_bins=100)
    asym.observe(np.arange(-50, 50, dtype=np.float32))
    assert asym.range() == (-46.0, 45.0)


def _omse_bruteforce(x, fmt, lo, hi):
    """OMSE's objective on the raw data: the best t on a fine grid of t * [lo, hi] (SEMANTICS 4.4)."""
    best = None
    for t in np.linspace(0.0625, 1.0, 1921):
        from hwsim.quant.params import params_from_range
        p = params_from_range(t * lo, t * hi, fmt)
        s, z = float(p.scale), float(p.zero_point)
        fq = s * (np.clip(np.rint(x / s) + z, fmt.qmin, fmt.qmax) - z)
        err = float(np.sum((fq - x) ** 2))
        if best is None or err < best[0]:
            best = (err, t)
    return best[1]


@pytest.mark.parametrize("fmt", [S8, U8, QuantFormat(4, signed=True, symmetric=True)])
def test_mse_close_to_raw_data_omse(fmt):
    rng = np.random.default_rng(4)
    x = rng.laplace(size=6000).astype(np.float64)
    if not fmt.signed:
        x = np.abs(x)
    obs = make_observer("mse", fmt)
    obs.observe(x[:3000])
    obs.observe(2 * x[3000:])            # a wider second batch: the histogram re-bins
    data = np.concatenate([x[:3000], 2 * x[3000:]]).astype(np.float32).astype(np.float64)
    lo, hi = data.min(), data.max()
    if fmt.symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    t = _omse_bruteforce(data, fmt, lo, hi)
    got_lo, got_hi = obs.range()
    # (a symmetric format's range is reported clipped to the data; its reach is max(|lo|, |hi|))
    reach = max(-got_lo, got_hi) if fmt.symmetric else got_hi
    # the histogram (2048 bins) approximates the data: the chosen clip is within 3% of the raw optimum
    assert reach == pytest.approx(t * hi, rel=0.03)
    if fmt.bits == 4:
        assert reach < 0.8 * hi            # 16 levels: the optimum clips Laplace tails hard (not MinMax)


def test_l2_error_against_numeric_integration():
    # the error of quantizing a uniform density per source bin into 4 levels over bins 2..9 of 12,
    # integrated numerically on a fine grid (levels clamp at the window's ends)
    rng = np.random.default_rng(5)
    hist = rng.integers(0, 20, 12).astype(np.float64)
    lo, width = -1.0, 0.25
    start, end, levels = 2, 9, 4
    dst = width * (end - start + 1) / levels
    fine = 4000
    total = 0.0
    for j, count in enumerate(hist):
        xs = lo + width * (j + (np.arange(fine) + 0.5) / fine)
        rel = xs - (lo + width * start)
        level = np.clip(np.floor(rel / dst), 0, levels - 1)
        centre = (level + 0.5) * dst
        total += count / width * np.sum((rel - centre) ** 2) * (width / fine)
    assert l2_error(hist, width, start, end, levels) == pytest.approx(total, rel=1e-5)


def test_histogram_observer_clips_outlier_only_when_it_pays():
    # 10000 values uniform in [0, 1) and one at 3.  4 bits (16 levels): keeping the outlier costs
    # rounding error ~ 10000 * (3/16)^2 / 12 = 29.3; clipping it at 1 costs (3 - 1)^2 = 4 plus
    # 10000 * (1/16)^2 / 12 = 3.3 -> the search clips it.  8 bits (256 levels): 0.11 vs 4.01 -> it stays.
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.random(10000), [3.0]]).astype(np.float32)
    obs4 = make_observer("histogram", QuantFormat(4, signed=False))
    obs4.observe(x)
    lo, hi = obs4.range()
    assert lo == pytest.approx(float(x.min()), abs=3 / 2048) and 0.95 < hi < 1.05
    obs8 = make_observer("histogram", U8)
    obs8.observe(x)
    assert obs8.range()[1] > 2.99


def test_l2_search_keeps_uniform_range():
    # uniform counts: trimming soon costs more clipping error than it saves in rounding error,
    # so the search stops within a few bins of the full range
    hist = np.full(2048, 10.0)
    lo, hi = l2_search(hist, 0.0, 1.0, 256)
    assert lo == 0.0 and hi >= 1.0 - 4 / 2048


def test_range_histogram_rebin_keeps_mass_and_place():
    # 1000 values at 0.25 over [0, 1], then a batch reaching 3: the old mass (1000) stays near 0.25
    h = RangeHistogram(bins=64, upsample_rate=16)
    h.add(np.concatenate([np.full(1000, 0.25), [0.0, 1.0]]).astype(np.float32))
    h.add(np.array([3.0], np.float32))
    assert h.hist.sum() == pytest.approx(1003)
    assert h.min_val == 0.0 and h.max_val >= 3.0
    centres = (h.edges[:-1] + h.edges[1:]) / 2
    peak = centres[np.argmax(h.hist)]
    assert abs(peak - 0.25) <= (h.max_val - h.min_val) / 64


@pytest.mark.parametrize("name", NAMES)
def test_ranges_grow_across_batches(name):
    # a second batch four times wider must widen every range but moving_average's (which moves 1%)
    rng = np.random.default_rng(8)
    x = rng.normal(size=4000).astype(np.float32)
    obs = make_observer(name, A8)
    obs.observe(x)
    first = obs.range()
    obs.observe(4 * x)
    second = obs.range()
    if name == "moving_average":
        assert second[1] == pytest.approx(first[1] + 0.01 * (4 * x.max() - first[1]))
    else:
        assert second[1] > 1.5 * first[1] and second[0] < 1.5 * first[0]


@pytest.mark.parametrize("name", NAMES)
def test_frozen_results(name):
    obs = make_observer(name, A8)
    obs.observe(np.random.default_rng(1).normal(size=500))
    p1, p2 = obs.qparams(), obs.qparams()
    assert isinstance(p1, AffineParams) and p1.fmt == A8 and p1.axis is None
    assert p1.scale == p2.scale and p1.zero_point == p2.zero_point and obs.range() == obs.range()
    with pytest.raises(ValueError):
        p1.scale[...] = 2.0                      # read-only arrays


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name):
    obs = make_observer(name, S8)
    with pytest.raises(ValueError, match=f"{name} observer: no data observed"):
        obs.qparams()
    with pytest.raises(ValueError, match=f"{name} observer: no data observed"):
        obs.range()
    with pytest.raises(ValueError, match=f"{name} observer: empty"):
        obs.observe(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=f"{name} observer: .*NaN"):
        obs.observe(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=f"{name} observer: .*Inf"):
        obs.observe(np.array([1.0, -np.inf]))
    with pytest.raises(ValueError, match=f"{name} observer: expected a numeric array"):
        obs.observe(np.array(["a", "b"]))
    assert obs.count == 0                         # rejected batches leave no trace


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_data(name):
    # all zeros: the range is (0, 0), which params_from_range turns into scale 1, zero point 0 / midpoint
    obs = make_observer(name, A8)
    obs.observe(np.zeros(100))
    assert obs.range() == (0.0, 0.0)
    assert obs.qparams().scale == 1.0


def test_unknown_method_lists_names():
    with pytest.raises(ValueError, match="unknown 'kl'.*minmax, moving_average, percentile, entropy"):
        make_observer("kl", S8)


def test_bad_options():
    with pytest.raises(ValueError, match="percentile observer: bad options"):
        make_observer("percentile", S8, bins=12)
    with pytest.raises(ValueError, match="percentile must be in"):
        make_observer("percentile", S8, percentile=101)
    with pytest.raises(ValueError, match="num_bins"):
        make_observer("entropy", S8, num_bins=0)
    with pytest.raises(ValueError, match="averaging_constant"):
        make_observer("moving_average", S8, averaging_constant=2)
    with pytest.raises(TypeError, match="QuantFormat"):
        make_observer("minmax", "int8")


@pytest.mark.parametrize("name", ["percentile", "entropy"])
def test_all_zero_first_batch_does_not_skew_the_abs_histogram(name):
    # zeros first, then 0..9: the result equals observing the zeros together with the data
    data = np.arange(10, dtype=np.float32)
    late = make_observer(name, S8, num_bins=200)
    late.observe(np.zeros(50, np.float32))
    late.observe(data)
    together = make_observer(name, S8, num_bins=200)
    together.observe(np.concatenate([np.zeros(50, np.float32), data]))
    assert late.range() == together.range()
