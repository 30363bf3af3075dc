"""TensorRT-style KL calibration: a histogram worked by hand and a slow reference written from the slides.

The slow reference below follows Migacz's GTC 2017 description step by step with Python lists and
explicit level boundaries (a level of candidate i covers source bins j with
floor(j * levels / i) == level), which for the sizes used here equals pytorch-quantization's
np.digitize over linspace(0, i, levels + 1).  It shares no code with hwsim.quant.kl.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsim.quant.kl import kl_amax_tensorrt
from hwsim.quant.observers import make_observer
from hwsim.quant.params import QuantFormat


def _slow_tensorrt_amax(hist, edges, levels, start_bin):
    bins = [float(v) for v in hist]
    bins[0] = bins[1]                     # pytorch-quantization drops the zero spike this way
    divergences = {}
    for i in range(start_bin, len(bins) + 1):
        reference = bins[:i]
        reference[-1] += sum(bins[i:])     # clipped outliers fold into the last kept bin
        candidate = [0.0] * i
        for level in range(levels):
            members = [j for j in range(i) if (j * levels) // i == level]
            nonzero = [j for j in members if bins[j] != 0]
            if nonzero:
                share = sum(bins[j] for j in nonzero) / len(nonzero)
                for j in nonzero:
                    candidate[j] = share
        p_total, q_total = sum(reference), sum(candidate)
        kl = 0.0
        for pj, qj in zip(reference, candidate):
            if pj > 0:
                kl = math.inf if qj == 0 else kl + pj / p_total * math.log((pj / p_total) / (qj / q_total))
        divergences[i] = kl
    smallest = min(divergences.values())
    best_i = max(i for i, kl in divergences.items() if kl <= smallest + 1e-12)     # the last minimum wins
    return float(edges[best_i])


def test_hand_worked_histogram():
    # hist [5, 4, 2, 1], edges 0..4, 2 levels, candidates i = 2, 3, 4; bins[0] := bins[1] -> [4, 4, 2, 1]
    # i=2: P = [4, 7]/11,        Q = [4, 4]/8            KL = 4/11 ln(8/11) + 7/11 ln(14/11)        = 0.03767
    # i=3: P = [4, 4, 3]/11,     Q = [4, 4, 2]/10        KL = 8/11 ln(10/11) + 3/11 ln(15/11)       = 0.01527
    # i=4: P = [4, 4, 2, 1]/11,  Q = [4, 4, 1.5, 1.5]/11 KL = 2/11 ln(4/3) + 1/11 ln(2/3)           = 0.01545
    # minimum at i = 3 -> amax = edges[3] = 3
    hist = np.array([5, 4, 2, 1])
    edges = np.arange(5, dtype=np.float32)
    assert kl_amax_tensorrt(hist, edges, num_levels=2, start_bin=2) == 3.0


def test_last_minimum_wins():
    # [2, 2, 2, 2, 0, 0, 0, 0] with 2 levels: every i in 4..8 reproduces P exactly (KL = 0), i = 2, 3 do not;
    # pytorch-quantization takes the last minimum -> i = 8 -> amax = edges[8] = 8
    hist = np.array([2, 2, 2, 2, 0, 0, 0, 0])
    edges = np.arange(9, dtype=np.float32)
    assert kl_amax_tensorrt(hist, edges, num_levels=2, start_bin=2) == 8.0


@pytest.mark.parametrize("seed", range(8))
def test_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 90))
    x = np.abs(rng.laplace(size=4000)) if seed % 2 else np.abs(rng.normal(size=4000))
    hist, edges = np.histogram(x, bins=n, range=(0, x.max()))
    hist[rng.random(n) < 0.15] = 0                         # empty bins inside the range
    levels = int(rng.choice([4, 8, 16]))
    start = int(rng.integers(levels, 30))
    assert kl_amax_tensorrt(hist, edges, levels, start) == _slow_tensorrt_amax(hist, edges, levels, start)


def test_observer_threshold_is_a_bin_edge_of_abs_histogram():
    rng = np.random.default_rng(11)
    x = rng.laplace(size=20000).astype(np.float32)
    obs = make_observer("entropy", QuantFormat(8, signed=True, symmetric=True))
    obs.observe(x)
    lo, hi = obs.range()
    edges = np.histogram(np.abs(x), bins=2048, range=(0, np.abs(x).max()))[1].astype(np.float32)
    assert hi in edges.tolist() or hi == float(x.max())
    assert lo == max(-hi, float(x.min()))
    # a heavy-tailed sample: KL clips well inside max|x|, but keeps more than the 128-bin minimum
    assert edges[128] <= hi < 0.9 * float(np.abs(x).max())


@pytest.mark.parametrize("seed", range(4))
def test_ties_from_discrete_data_match_slow_reference(seed):
    # a few distinct values: most bins are empty and many candidates score exactly alike, so the
    # last-minimum rule decides; the fast scoring must hand the tie to the same candidate
    rng = np.random.default_rng(100 + seed)
    values = rng.choice(np.arange(6) * 1.7, size=3000, p=[0.4, 0.25, 0.15, 0.1, 0.07, 0.03])
    hist, edges = np.histogram(values, bins=140, range=(0, values.max()))
    assert kl_amax_tensorrt(hist, edges, 16, 20) == _slow_tensorrt_amax(hist, edges, 16, 20)
