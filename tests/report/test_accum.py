"""Worst-case accumulator bounds from actual weights, worked out by hand."""

from __future__ import annotations

import numpy as np

from hwsim.headroom import headroom
from hwsim.report.accum import accumulator_bound, observed_headroom_bits
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

W = np.array([[1, -2, 3], [0, 0, -1]], np.int8)
BIAS = np.array([10, -5], np.int32)


def test_zero_point_in_the_mac():
    # int8 input, zx = -3: max|x - zx| = max(|-128 + 3|, 127 + 3) = 130
    # B = [(1 + 2 + 3) * 130 + 10, 1 * 130 + 5] = [790, 135]; 790 < 2^10 -> 10 magnitude bits + sign = 11
    b = accumulator_bound(W, 0, BIAS, (-128, 127), -3, AccumSpec(acc_bits=16))
    assert (b.worst_case_abs_acc, b.min_safe_bits, b.k, b.group_can_overflow) == (790, 11, 3, False)


def test_zero_point_folded_into_the_bias():
    # raw u8 input [0, 255], zx = 128: B_c = sum|w| * 255 + |b| + |128 * sum w|
    # row 0: 6 * 255 + 10 + 128 * 2 = 1796; row 1: 255 + 5 + 128 = 388
    spec = AccumSpec(acc_bits=32, input_zero_point=ZeroPointPlacement.FOLDED_INTO_BIAS)
    b = accumulator_bound(W, 0, BIAS, (0, 255), 128, spec)
    assert (b.worst_case_abs_acc, b.min_safe_bits) == (1796, 12)


def test_weight_zero_point_is_subtracted():
    # per-channel zw = [1, -1]: |w - zw| sums to (0 + 3 + 2) = 5 and (1 + 1 + 0) = 2; x - zx in [-128, 127]
    b = accumulator_bound(W, np.array([1, -1]), None, (-128, 127), 0, AccumSpec())
    assert b.worst_case_abs_acc == 5 * 128


def test_int16_pair_stage_overflow_follows_the_weights():
    # x86-avx2: raw u8 times s8 summed in saturating int16 pairs; 2 * 255 * 127 = 64770 > 32767, but
    # 2 * 255 * 64 = 32640 fits
    spec = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE, acc_bits=32,
                     input_zero_point=ZeroPointPlacement.FOLDED_INTO_BIAS)
    big = np.array([[127, 127, 127, 127]], np.int8)
    small = np.array([[64, -64, 64, 64]], np.int8)
    assert accumulator_bound(big, 0, None, (0, 255), 128, spec).group_can_overflow
    assert not accumulator_bound(small, 0, None, (0, 255), 128, spec).group_can_overflow


def test_uniform_weights_meet_the_format_bound_of_hwsim_headroom():
    # all weights at 127: the actual-weight bound equals hwsim.headroom's bound for the weight format
    w = np.full((3, 50), 127, np.int8)
    b = accumulator_bound(w, 0, None, (-128, 127), 0, AccumSpec())
    h = headroom(50, (-128, 127), (-127, 127), AccumSpec())
    assert b.worst_case_abs_acc == h.max_abs_acc == 50 * 128 * 127
    assert b.min_safe_bits == h.acc_bits_needed


def test_observed_headroom_bits():
    assert observed_headroom_bits(32767, 16) == 0
    assert observed_headroom_bits(32768, 16) == 0       # only the negative rail has |acc| = 2^15
    assert observed_headroom_bits(1000, 32) == 21       # 1000 needs 10 + 1 bits
    assert observed_headroom_bits(0, 24) == 23


def test_per_group_weights_bound_each_group_separately():
    # K = 6 in groups of 4 and 2; zero points per (channel, group); int8 input, zx = 0: max|x| = 128
    w = np.array([[7, -8, 7, 7, 1, 1], [0, 0, 0, 1, -8, -8]], np.int8)
    zw = np.array([[0, 0], [0, 1]])
    # channel 0: groups sum |w - zw| = 29 and 2; channel 1: 1 and |-9| + |-9| = 18 -> worst 29 * 128 = 3712
    b = accumulator_bound(w, zw, None, (-128, 127), 0, AccumSpec(), group_size=4)
    assert (b.worst_case_abs_acc, b.min_safe_bits, b.k) == (3712, 13, 4)
