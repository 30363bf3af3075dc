"""Hand-checked vectors of reference/SEMANTICS.md section 8, each row literal.

Every row is checked on all three implementations: C (hwsim._native), the
numpy mirror (hwsim.numerics.arith) and the pure-Python oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwsim._native import primitives as C
from hwsim.numerics import arith as A
from hwsim.numerics.requant_params import RequantParams
from hwsim.oracle import primitives as O
from hwsim.oracle.requantize import requantize_one

I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# ---- 8.2 SRDHM / RDBPOT / SRSHL ----
SRDHM_ROWS = [  # (a, b, result)
    (I32_MIN, I32_MIN, 2147483647),
    (I32_MIN, I32_MAX, -2147483647),
    (-1, 2**30, 0),
    (1, 2**30, 1),
    (-3, 2**30, -1),
    (3, 2**30, 2),
]


@pytest.mark.parametrize("a, b, want", SRDHM_ROWS)
def test_8_2_srdhm(a, b, want):
    arr_a, arr_b = np.array([a], np.int32), np.array([b], np.int32)
    assert C.srdhm(arr_a, arr_b)[0] == want
    assert A.srdhm(arr_a, arr_b)[0] == want
    assert O.srdhm(a, b) == want


RDBPOT_ROWS = [  # (x, e, RDBPOT, SRSHL(x, -e), NEON fixup)
    (5, 1, 3, 3, 3),
    (-5, 1, -3, -2, -3),
    (-6, 2, -2, -1, -2),
    (-7, 2, -2, -2, -2),
    (I32_MIN, 31, -1, None, None),
    (I32_MAX, 1, 1073741824, None, None),
]


@pytest.mark.parametrize("x, e, want, want_srshl, want_fixup", RDBPOT_ROWS)
def test_8_2_rdbpot_srshl(x, e, want, want_srshl, want_fixup):
    arr_x, arr_e = np.array([x], np.int32), np.array([e], np.int32)
    assert C.rdbpot(arr_x, arr_e)[0] == want
    assert A.rdbpot(arr_x, arr_e)[0] == want
    assert O.rdbpot(x, e) == want
    if want_srshl is not None:
        assert A.srshl(arr_x, -e)[0] == want_srshl
        assert O.srshl(x, -e) == want_srshl
        fixup = -1 if x < 0 and e > 0 else 0         # gemmlowp NEON fixup (SEMANTICS 2.2)
        assert O.srshl(O.saturate_signed(x + fixup, 32), -e) == want_fixup


# ---- 8.3 QuantizeMultiplier-driven requantisation ----
MBQM_ROWS = [  # (x, M, shift, double, single, NEON double without fixup, NEON single)
    (-6, 2**30, -1, -2, -1, -1, -1),
    (6, 2**30, -1, 2, 2, 2, 2),
    (-5, 2**30, -1, -1, -1, -1, -1),
    (-7, 2**30, 0, -3, -3, -3, -3),
    (-14056, 1223755207, -2, -2003, -2002, -2002, -2002),
    (-1001, 1610612736, 1, -1501, -1501, None, -1501),
    (12345, 1590891970, -10, 9, 9, None, None),
    (2**30, 2**30, 0, 536870912, 536870912, 536870912, -536870912),
]
SCHEMES = ["double_rounding", "single_rounding", "srdhm_half_up", "neon_single"]


def _all_three(acc: int, params: RequantParams) -> set[int]:
    arr = np.array([acc], np.int64)
    return {
        int(C.requantize(arr, params)[0]),
        int(A.requantize(arr, params)[0]),
        requantize_one(acc, 0, 0, params)[0],
    }


# cells the table leaves empty ("—") are not tested
MBQM_CELLS = [(row[:3], k, row[3 + k]) for row in MBQM_ROWS for k in range(4) if row[3 + k] is not None]


@pytest.mark.parametrize("row, k, want", MBQM_CELLS)
def test_8_3_multiply_by_quantized_multiplier(row, k, want):
    x, m, shift = row
    params = RequantParams(SCHEMES[k], multiplier=m, shift=shift, out_bits=32)
    assert _all_three(x, params) == {want}


def test_8_3_int64_overload():
    # M = 1992150143, shift = -7, x = -123456789: int64 overload -894747, 32-bit single -894741
    red = RequantParams("int64_reduced", multiplier=1992150143, shift=-7, out_bits=32)
    assert _all_three(-123456789, red) == {-894747}
    single = RequantParams("single_rounding", multiplier=1992150143, shift=-7, out_bits=32)
    assert _all_three(-123456789, single) == {-894741}


# ---- 8.4 float32 requantisation vs Q31 (zp = 0 unless given) ----
FLOAT_ROWS = [  # (acc, scale, zp, fp32 rint, TFLite double, TFLite single); 0.5 = 2^30 * 2^(0-31), 1.0 = 2^30 * 2^(1-31)
    (5, 0.5, 0, 2, 3, 3),
    (7, 0.5, 0, 4, 4, 4),
    (-5, 0.5, 0, -2, -2, -2),
    (-7, 0.5, 0, -4, -3, -3),
    (300, 1.0, 3, 127, 127, 127),
]


@pytest.mark.parametrize("acc, scale, zp, want_f32, want_double, want_single", FLOAT_ROWS)
def test_8_4_float32_vs_q31(acc, scale, zp, want_f32, want_double, want_single):
    shift = 0 if scale == 0.5 else 1
    assert _all_three(acc, RequantParams("float32", scale=scale, zero_point=zp)) == {want_f32}
    fixed = dict(multiplier=2**30, shift=shift, zero_point=zp)
    assert _all_three(acc, RequantParams("double_rounding", **fixed)) == {want_double}
    assert _all_three(acc, RequantParams("single_rounding", **fixed)) == {want_single}


def test_8_4_float32_of_2_pow_24_plus_1():
    # float32(16777217) = 16777216: the accumulator loses bits before the multiply
    assert _all_three(16777217, RequantParams("float32", scale=1.0, out_bits=32)) == {16777216}


# ---- 8.6 / 8.7: the narrowing stages of x86 and ARM MAC arrays ----
NARROW_ROWS = [  # (exact value, bits, overflow, result, where)
    (64770, 16, "saturate", 32767, "VPMADDUBSW 255*127*2"),
    (-65280, 16, "saturate", -32768, "VPMADDUBSW 255*(-128)*2"),
    (32258, 16, "saturate", 32258, "VPMADDUBSW 127*127*2 fits"),
    (-32640, 16, "saturate", -32640, "VPMADDUBSW 255*(-64)*2 fits"),
    (33278, 16, "saturate", 32767, "pytorch#44939 211*71 + 171*107"),
    (2**31, 32, "wrap", -(2**31), "VPMADDWD (-32768)^2 * 2"),
    (2147483000 + 4 * 255 * 127, 32, "wrap", -2147354756, "VPDPBUSD"),
    (2147483000 + 4 * 255 * 127, 32, "saturate", 2147483647, "VPDPBUSDS"),
    (32768, 16, "wrap", -32768, "SMULL+SMLAL2 (-128)^2 * 2"),
    (32512, 16, "wrap", 32512, "SMLAL (-127)(-128) * 2 fits"),
    (2147483600 + 4 * 127 * 127, 32, "wrap", -2147419180, "SDOT lane"),
]


@pytest.mark.parametrize("value, bits, overflow, want, where", NARROW_ROWS, ids=[r[4] for r in NARROW_ROWS])
def test_8_6_8_7_narrowing(value, bits, overflow, want, where):
    arr = np.array([value], np.int64)
    out, events = C.narrow(arr, bits, True, overflow)
    assert out[0] == want and events == int(want != value)
    assert A.narrow(arr, bits, True, overflow)[0][0] == want
    assert O.narrow(value, bits, True, overflow) == want


# ---- 8.10 ap_fixed and 8.11 APyTypes (rounding of the dropped bits, then overflow) ----
AP_INPUTS = [1.25, -1.25, 1.75, -1.75, 0.25, -0.25, 0.75, -0.75]
AP_ROWS = {  # ap_fixed<3,2,Q,AP_SAT>, LSB 0.5: value * 4 (2 fraction bits) -> drop 1 bit -> saturate to 3 bits
    "half_up": [1.5, -1.0, 1.5, -1.5, 0.5, 0.0, 1.0, -0.5],      # AP_RND
    "half_zero": [1.0, -1.0, 1.5, -1.5, 0.0, 0.0, 0.5, -0.5],    # AP_RND_ZERO
    "half_down": [1.0, -1.5, 1.5, -2.0, 0.0, -0.5, 0.5, -1.0],   # AP_RND_MIN_INF
    "half_away": [1.5, -1.5, 1.5, -2.0, 0.5, -0.5, 1.0, -1.0],   # AP_RND_INF
    "half_even": [1.0, -1.0, 1.5, -2.0, 0.0, 0.0, 1.0, -1.0],    # AP_RND_CONV
    "floor": [1.0, -1.5, 1.5, -2.0, 0.0, -0.5, 0.5, -1.0],       # AP_TRN
    "trunc": [1.0, -1.0, 1.5, -1.5, 0.0, 0.0, 0.5, -0.5],        # AP_TRN_ZERO
}


@pytest.mark.parametrize("mode", sorted(AP_ROWS))
def test_8_10_ap_fixed_quantization(mode):
    raw = np.array([int(v * 4) for v in AP_INPUTS], np.int64)
    want = np.array([int(v * 2) for v in AP_ROWS[mode]], np.int64)
    for rounded in (C.round_shift(raw, 1, mode), A.round_shift(raw, 1, mode)):
        np.testing.assert_array_equal(C.narrow(rounded, 3, True, "saturate")[0], want)
    assert [O.saturate_signed(O.round_div_pow2(int(r), 1, mode), 3) for r in raw] == want.tolist()


AP_OVF_ROWS = [  # ap_fixed<4,4,AP_TRN,O> / ap_ufixed<4,4> on 19, -19, 8, -9
    (True, "saturate", [7, -8, 7, -8]),
    (True, "wrap", [3, -3, -8, 7]),
    (False, "saturate", [15, 0, 8, 0]),
    (False, "wrap", [3, 13, 8, 7]),
]


@pytest.mark.parametrize("signed, overflow, want", AP_OVF_ROWS)
def test_8_10_ap_fixed_overflow(signed, overflow, want):
    x = np.array([19, -19, 8, -9], np.int64)
    np.testing.assert_array_equal(C.narrow(x, 4, signed, overflow)[0], want)
    np.testing.assert_array_equal(A.narrow(x, 4, signed, overflow)[0], want)
    assert [O.narrow(int(v), 4, signed, overflow) for v in x] == want


APY_ROWS = {  # cast (3 int, 2 frac) -> 1 frac bit, inputs 1.25, -1.25, 0.75, -0.75
    "floor": [1.0, -1.5, 0.5, -1.0],
    "trunc": [1.0, -1.0, 0.5, -0.5],
    "half_up": [1.5, -1.0, 1.0, -0.5],
    "half_zero": [1.0, -1.0, 0.5, -0.5],
    "half_away": [1.5, -1.5, 1.0, -1.0],
    "half_down": [1.0, -1.5, 0.5, -1.0],
    "half_even": [1.0, -1.0, 1.0, -1.0],
}


@pytest.mark.parametrize("mode", sorted(APY_ROWS))
def test_8_11_apytypes_cast(mode):
    raw = np.array([5, -5, 3, -3], np.int64)        # 1.25, -1.25, 0.75, -0.75 with 2 fraction bits
    want = [int(v * 2) for v in APY_ROWS[mode]]
    np.testing.assert_array_equal(C.round_shift(raw, 1, mode), want)
    np.testing.assert_array_equal(A.round_shift(raw, 1, mode), want)
    assert [O.round_div_pow2(int(r), 1, mode) for r in raw] == want


def test_8_11_apytypes_overflow():
    # 19 (6 int bits) cast to 4 int bits: WRAP 3, SAT 7
    x = np.array([19], np.int64)
    assert C.narrow(x, 4, True, "wrap")[0][0] == 3
    assert C.narrow(x, 4, True, "saturate")[0][0] == 7


def test_splitmix64_published_outputs():
    # SplitMix64 seeded with 0 (Steele, Lea & Flood 2014; the reference generator's first outputs)
    want = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert [O.stochastic_bits(0, i) for i in range(3)] == want
    assert A.stochastic_bits(0, np.arange(3)).tolist() == want


# ---- 8.6 complete rows: VPMADDUBSW (pairs, sat16) then VPMADDWD with ones (wrap32) ----
X86_ROWS = [  # (a u8, b s8, VPMADDUBSW words, VPMADDWD sum)
    ([255, 255, 0, 0], [127, 127, 0, 0], [32767, 0], 32767),
    ([255, 255, 255, 255], [-128, -128, -128, -128], [-32768, -32768], -65536),
    ([127, 127, 127, 127], [127, 127, 127, 127], [32258, 32258], 64516),
    ([255, 255, 3, 4], [-64, -64, 5, 6], [-32640, 39], -32601),
]


@pytest.mark.parametrize("narrow", [C.narrow, A.narrow], ids=["C", "numpy"])
@pytest.mark.parametrize("a, b, words, dword", X86_ROWS)
def test_8_6_vpmaddubsw_vpmaddwd(narrow, a, b, words, dword):
    pair_sums = np.array([a[0] * b[0] + a[1] * b[1], a[2] * b[2] + a[3] * b[3]], np.int64)
    w = narrow(pair_sums, 16, True, "saturate")[0]
    assert w.tolist() == words
    assert narrow(np.array([w.sum()], np.int64), 32, True, "wrap")[0].tolist() == [dword]
    assert [O.saturate_signed(int(p), 16) for p in pair_sums] == words


def test_8_6_onednn_s8s8_compensation():
    # a_s8 = b_s8 = [127,127,0,0]: VPMADDUBSW([255,255,128,128],[127,127,0,0]) = 32767, minus 128*254 = 255
    pair = np.array([255 * 127 + 255 * 127, 128 * 0 + 128 * 0], np.int64)
    w = C.narrow(pair, 16, True, "saturate")[0]
    assert int(w.sum()) - 128 * 254 == 255
