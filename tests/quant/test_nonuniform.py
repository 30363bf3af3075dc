"""hwsim.quant.nonuniform: power-of-two levels, k-means and binary codes on tiny inputs worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.quant.nonuniform import binary_code_quantize, kmeans_objective, kmeans_quantize, log_quantize
from hwsim.quant.params import QuantFormat
from hwsim.quant.quantizers import to_ir_weights

F32 = np.float32


# --------------------------------------------------------------------------------------------------
# Power-of-two levels
# --------------------------------------------------------------------------------------------------


def test_log_levels_by_hand():
    cb = log_quantize(np.array([0.9, -0.3, 0.05, 0.0, 0.75]), bits=3)
    # max|w| = 0.9: nearest power of two 1 (0.1 away; 0.5 is 0.4 away) -> magnitudes 1, 1/2, 1/4
    assert cb.levels.tolist() == [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
    # 0.9 -> 1; -0.3 -> -0.25; 0.05 -> 0 (0.05 vs 0.2); 0 -> 0; 0.75 is a tie of 0.5 and 1 -> the smaller
    assert cb.indices.tolist() == [6, 2, 3, 3, 5]
    assert cb.dequantize().tolist() == [1.0, -0.25, 0.0, 0.0, 0.5]
    assert cb.indices.dtype == np.uint8 and cb.kind == "log"


def test_log_levels_per_channel_and_peak_tie():
    w = np.array([[0.9, 0.1], [3.0, -0.7]])
    cb = log_quantize(w, bits=2, axis=0)             # one magnitude per sign: {-2^e, 0, 2^e}
    # row 0: 1 is nearest to 0.9; row 1: 3 is as far from 2 as from 4 -> the smaller exponent, 2
    assert cb.levels.tolist() == [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0]]
    assert cb.dequantize().tolist() == [[1.0, 0.0], [2.0, 0.0]]      # -0.7: 0 (0.7) beats -2 (1.3)


# --------------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------------


def test_kmeans_two_clusters_by_hand():
    w = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    cb = kmeans_quantize(w, 2)
    # quantile init: positions 1.25 and 3.75 of the sorted data -> 1.25 and 10.75; then means 1 and 11
    assert cb.levels.tolist() == [1.0, 11.0]
    assert cb.indices.tolist() == [0, 0, 0, 1, 1, 1]
    assert kmeans_objective(w, cb) == 4.0             # (1 + 0 + 1) * 2


def test_kmeans_needs_iterations_by_hand():
    w = np.array([0.0, 2.0, 3.0, 4.0, 10.0])
    h: list = []
    cb = kmeans_quantize(w, 2, history=h)
    # init 2 and 4 (quantiles .25, .75); 3 is a tie -> the lower centre: {0, 2, 3}, {4, 10} -> 5/3, 7
    # then 4 moves: {0, 2, 3, 4}, {10} -> 2.25, 10; stable.
    assert cb.levels.tolist() == [2.25, 10.0]
    assert cb.indices.tolist() == [0, 0, 0, 0, 1]
    assert kmeans_objective(w, cb) == pytest.approx(8.75)   # 2.25^2 + 0.25^2 + 0.75^2 + 1.75^2
    # objectives after each assignment: {0,2,3}->2, {4,10}->4: 4+0+1+0+36 = 41; then 1/3-centred sets: 9.6(6)+9
    assert h[0] == (0, 41.0) and h[-1][1] == pytest.approx(8.75)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), n_levels=st.integers(2, 12), per_channel=st.booleans())
def test_kmeans_objective_never_increases(seed, n_levels, per_channel):
    rng = np.random.default_rng(seed)
    w = rng.standard_t(3, size=(3, 40))
    h: list = []
    cb = kmeans_quantize(w, n_levels, axis=0 if per_channel else None, history=h)
    channels = sorted({c for c, _ in h})
    assert channels == ([0, 1, 2] if per_channel else [0])
    final = 0.0
    for c in channels:
        run = [v for ch, v in h if ch == c]
        assert all(b <= a for a, b in zip(run, run[1:])), run
        final += run[-1]
    # the returned codebook is at least as good as the last recorded assignment
    assert kmeans_objective(w, cb) <= final * (1 + 1e-6)
    assert np.all(np.diff(cb.levels, axis=-1) >= 0)   # ascending tables


def test_kmeans_is_deterministic_and_uint16_above_256_levels():
    w = np.random.default_rng(0).normal(size=600)
    a, b = kmeans_quantize(w, 300, max_iter=3), kmeans_quantize(w, 300, max_iter=3)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.levels, b.levels)
    assert a.indices.dtype == np.uint16


# --------------------------------------------------------------------------------------------------
# Binary codes
# --------------------------------------------------------------------------------------------------


def test_binary_code_one_basis_by_hand():
    cb = binary_code_quantize(np.array([1.0, -1.0, 3.0, -3.0]), n_bases=1)
    # alpha = mean|w| = 2; code word 0 = -alpha, 1 = +alpha
    assert cb.alphas.tolist() == [2.0]
    assert cb.levels.tolist() == [-2.0, 2.0]
    assert cb.indices.tolist() == [1, 0, 1, 0]


def test_binary_code_two_bases_exact_by_hand():
    cb = binary_code_quantize(np.array([3.0, 1.0, -1.0, -3.0]), n_bases=2, als_iters=0)
    # greedy: alpha1 = 2 with b1 = (+, +, -, -); residual (1, -1, 1, -1): alpha2 = 1, b2 = (+, -, +, -)
    assert cb.alphas.tolist() == [2.0, 1.0]
    # code word j: bit i set -> +alpha_i: 0 -> -3, 1 -> 1, 2 -> -1, 3 -> 3
    assert cb.levels.tolist() == [-3.0, 1.0, -1.0, 3.0]
    assert cb.indices.tolist() == [3, 1, 2, 0]
    assert cb.dequantize().tolist() == [3.0, 1.0, -1.0, -3.0]


def test_binary_code_alternating_refinement_by_hand():
    w = np.array([0.0, 1.0, 5.0, 6.0])
    greedy = binary_code_quantize(w, n_bases=1, als_iters=0)
    # greedy: alpha = mean|w| = 3, every sign + -> all 3: error 9 + 4 + 4 + 9 = 26
    assert greedy.alphas.tolist() == [3.0] and kmeans_objective(w, greedy) == 26.0
    refined = binary_code_quantize(w, n_bases=1, als_iters=5)
    # nearest of {-3, 3}: 0 is a tie -> -3 (the lower level); then alpha = (0*-1 + 1 + 5 + 6) / 4 = 3: stable
    assert refined.alphas.tolist() == [3.0] and refined.indices.tolist() == [0, 1, 1, 1]


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), n_bases=st.integers(1, 3))
def test_binary_code_refinement_never_worse_than_greedy(seed, n_bases):
    w = np.random.default_rng(seed).normal(size=(2, 30))
    greedy = binary_code_quantize(w, n_bases, axis=0, als_iters=0)
    refined = binary_code_quantize(w, n_bases, axis=0, als_iters=10)
    assert kmeans_objective(w, refined) <= kmeans_objective(w, greedy) + 1e-9


# --------------------------------------------------------------------------------------------------
# Into the IR and bad input
# --------------------------------------------------------------------------------------------------


def test_codebook_to_ir_int_table_by_hand():
    cb = log_quantize(np.array([[0.9, -0.3, 0.05, 0.5]]), bits=3)
    codes, qp, lookup = to_ir_weights(np.zeros((1, 4)), cb, QuantFormat(8, symmetric=True, narrow=True))
    # levels +-1, +-0.5, +-0.25, 0 on int8 restricted: scale 1/127 -> +-127, +-63.5 -> +-64 (even), +-31.75 -> +-32
    assert lookup.table.tolist() == [-127, -64, -32, 0, 32, 64, 127]
    assert codes.tolist() == [[127, -32, 0, 64]]
    assert qp.scale == F32(1 / 127) and lookup.index_bits == 3
    np.testing.assert_array_equal(lookup.codes(), codes)


def test_bad_input():
    with pytest.raises(ValueError, match=r"weights 'w': holds NaN or Inf"):
        kmeans_quantize(np.array([1.0, np.nan]), 2)
    with pytest.raises(ValueError, match=r"bits: expected an integer in 2\.\.8, got 9"):
        log_quantize(np.ones(3), bits=9)
    with pytest.raises(ValueError, match=r"n_levels: expected an integer in 2\.\.65536, got 1"):
        kmeans_quantize(np.ones(3), 1)
    with pytest.raises(ValueError, match=r"n_bases: expected an integer in 1\.\.8, got 0"):
        binary_code_quantize(np.ones(3), 0)
    with pytest.raises(ValueError, match=r"axis: 3 is out of range"):
        log_quantize(np.ones((2, 2)), axis=3)
    with pytest.raises(ValueError, match=r"a codebook needs fmt"):
        to_ir_weights(np.ones(3), kmeans_quantize(np.arange(3.0), 2))
