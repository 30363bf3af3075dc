"""Accumulator headroom: hand-worked cases and an exhaustive check on small formats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.headroom import Headroom, headroom, max_safe_k, min_safe_acc_bits, signed_bits
from hwsim.targets import load_target
from hwsim.types import AccumSpec, IntFormat, Overflow

S8 = IntFormat(8, True)
U8 = IntFormat(8, False)
S8R = (-127, 127)            # TFLite weights, restricted range
X_MINUS_ZX = (-255, 255)     # int8 x - zx with the zero point inside the MAC
ACC32 = AccumSpec(acc_bits=32)


# ---------------------------------------------------------------------------------------------
# signed_bits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lo,hi,bits", [
    (0, 0, 1), (-1, 0, 1), (0, 1, 2), (-2, 1, 2), (-128, 127, 8), (-129, 0, 9), (0, 128, 9),
    (-(1 << 31), (1 << 31) - 1, 32), (0, 1 << 30, 32), (-(1 << 30), 0, 31), (-(1 << 63), 0, 64),
])
def test_signed_bits(lo, hi, bits):
    assert signed_bits(lo, hi) == bits


@given(st.integers(-(1 << 70), 1 << 70), st.integers(0, 1 << 70))
def test_signed_bits_is_the_smallest_width(lo, width):
    hi = lo + width
    n = signed_bits(lo, hi)
    assert -(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1
    if n > 1:
        assert not (-(1 << (n - 2)) <= lo and hi <= (1 << (n - 2)) - 1)


# ---------------------------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------------------------


def test_tflm_comment_2_to_16_restricted_products_fit_31_bits():
    # 127 * 127 = 16129; 16129 * 2**16 = 1_057_030_144 <= 2**30 - 1 = 1_073_741_823: 31 bits, 1 spare in int32
    h = headroom(1 << 16, S8R, S8R, ACC32)
    assert (h.product_min, h.product_max) == (-16129, 16129)
    assert (h.acc_min, h.acc_max) == (-1_057_030_144, 1_057_030_144)
    assert (h.acc_bits_needed, h.headroom_bits, h.acc_can_overflow) == (31, 1, False)
    assert h.exact and not h.group_can_overflow


def test_full_range_int8_reaches_2_to_30_and_needs_32_bits():
    # (-128) * (-128) = 16384 = 2**14; * 2**16 = 2**30, one more than 31 bits hold.
    # most negative product -128 * 127 = -16256; * 2**16 = -1_065_353_216
    h = headroom(1 << 16, S8, S8, ACC32)
    assert (h.product_min, h.product_max) == (-16256, 16384)
    assert (h.acc_min, h.acc_max) == (-1_065_353_216, 1 << 30)
    assert (h.acc_bits_needed, h.headroom_bits, h.acc_can_overflow) == (32, 0, False)
    assert min_safe_acc_bits(1 << 16, S8, S8) == 32


def test_tflite_zero_point_in_mac_with_restricted_weights():
    # |x - zx| <= 255, |w| <= 127: 255 * 127 = 32385 per product.
    # k = 2**16: 32385 * 65536 = 2_122_383_360 <= 2**31 - 1 = 2_147_483_647: fits int32.
    h = headroom(1 << 16, X_MINUS_ZX, S8R, ACC32)
    assert h.max_abs_acc == 2_122_383_360 and h.acc_bits_needed == 32 and not h.acc_can_overflow
    # 32385 * 66311 = 2_147_481_735 fits, 32385 * 66312 = 2_147_514_120 does not
    assert not headroom(66311, X_MINUS_ZX, S8R, ACC32).acc_can_overflow
    assert headroom(66312, X_MINUS_ZX, S8R, ACC32).acc_can_overflow
    assert max_safe_k(X_MINUS_ZX, S8R, ACC32) == 66311


def test_bias_counts_toward_the_accumulator():
    # 1_057_030_144 + 16_711_680 = 1_073_741_824 = 2**30: one more bit than without the bias
    assert headroom(1 << 16, S8R, S8R, ACC32, bias_max=16_711_679).acc_bits_needed == 31
    assert headroom(1 << 16, S8R, S8R, ACC32, bias_max=16_711_680).acc_bits_needed == 32


def test_vpmaddubsw_pair_saturates_with_full_u8_times_s8():
    # SEMANTICS 3.2: 255*127 + 255*127 = 64770 > 32767; 255*(-128)*2 = -65280; both need 17 bits
    # (2**16 = 65536 > 65280)
    avx2 = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE)
    h = headroom(64, U8, S8, avx2)
    assert (h.group_min, h.group_max) == (-65280, 64770)
    assert (h.group_bits_needed, h.group_can_overflow) == (17, True)
    assert h.exact  # saturated pair sums stay within [-32768, 32767] and reach both ends
    assert (h.acc_min, h.acc_max) == (-32768 * 32, 32767 * 32)
    assert max_safe_k(U8, S8, avx2) == 1  # a single product (short group) never saturates


@pytest.mark.parametrize("x,w,lo,hi", [
    ((0, 127), S8, -32512, 32258),   # u7 x s8: 127 * 128 * 2 = 32512
    (U8, (-64, 63), -32640, 32130),  # u8 x s7: 255 * 64 * 2 = 32640
])
def test_vpmaddubsw_is_safe_with_seven_bit_operands(x, w, lo, hi):
    h = headroom(1024, x, w, AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE))
    assert (h.group_min, h.group_max, h.group_can_overflow) == (lo, hi, False)
    assert h.group_bits_needed == 16


def test_smlal_pairs_are_safe_only_with_restricted_weights():
    # SEMANTICS 2.4: (-128)(-128) * 2 = 32768 wraps int16; (-128)(-127) * 2 = 32512 fits
    mlal = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.WRAP)
    safe = headroom(256, S8, S8R, mlal)
    assert (safe.group_min, safe.group_max, safe.group_can_overflow) == (-32512, 32512, False)
    unsafe = headroom(256, S8, S8, mlal)
    assert (unsafe.group_max, unsafe.group_bits_needed, unsafe.group_can_overflow) == (32768, 17, True)
    assert not unsafe.exact  # wrapped pair sums: the accumulator range is only a bound
    assert (unsafe.acc_min, unsafe.acc_max) == (-32768 * 128, 32767 * 128)


def test_short_last_group():
    # k = 5 in groups of 4: one full group [-4, 4], then one product [-1, 1]
    h = headroom(5, (-1, 1), (-1, 1), AccumSpec(group=4, group_bits=3, group_overflow=Overflow.SATURATE))
    assert (h.group_min, h.group_max, h.group_bits_needed) == (-4, 4, 4)
    assert h.group_can_overflow  # 4 does not fit 3 bits
    assert (h.acc_min, h.acc_max) == (-5, 4)  # saturated group [-4, 3] plus the last product
    h = headroom(3, (-1, 1), (-1, 1), AccumSpec(group=4, group_bits=3, group_overflow=Overflow.SATURATE))
    assert (h.group_min, h.group_max, h.group_can_overflow) == (-3, 3, False)  # only a short group


def test_npu_acc16():
    # products of s8 [-128, 127] and restricted weights: [-16256, 16256];
    # 2 products 32512 fit int16, 3 do not; a 300 bias on top of 2 products does not either
    sem = load_target("npu-acc16").for_op("conv2d")
    assert not headroom(2, sem.input, sem.weights, sem.accum).acc_can_overflow
    assert headroom(3, sem.input, sem.weights, sem.accum).acc_can_overflow
    assert headroom(2, sem.input, sem.weights, sem.accum, bias_max=300).acc_can_overflow
    assert max_safe_k(sem.input, sem.weights, sem.accum) == 2
    assert max_safe_k(sem.input, sem.weights, sem.accum, bias_max=300) == 1
    assert max_safe_k(sem.input, sem.weights, sem.accum, bias_max=20000) == 0


def test_builtin_mlal_profile_never_overflows_its_pairs():
    sem = load_target("arm-neon-mlal").for_op("conv2d")
    h = headroom(4096, sem.input, sem.weights, sem.accum)
    assert not h.group_can_overflow and not h.acc_can_overflow


def test_builtin_avx2_profile_can_saturate_its_pairs():
    sem = load_target("x86-avx2").for_op("conv2d")
    assert headroom(2, sem.input, sem.weights, sem.accum).group_can_overflow


@pytest.mark.parametrize("bias_first", [False, True])
def test_bias_alone_can_overflow(bias_first):
    h = headroom(1, (0, 0), (0, 0), AccumSpec(acc_bits=8, bias_first=bias_first), bias_max=128)
    assert (h.acc_min, h.acc_max, h.acc_can_overflow) == (-128, 128, True)


def test_partial_sums_before_a_late_bias_are_checked():
    # every product is 100: the partial sum 2 * 100 = 200 overflows int8 even if a bias of -100 would
    # bring the final value back to 100; the values are 0 (start), 100, 200, then 200 + [-100, 100]
    h = headroom(2, (10, 10), (10, 10), AccumSpec(acc_bits=8, bias_first=False), bias_max=100)
    assert (h.acc_min, h.acc_max, h.acc_can_overflow) == (0, 300, True)
    h = headroom(2, (10, 10), (10, 10), AccumSpec(acc_bits=8, bias_first=True), bias_max=100)
    assert (h.acc_min, h.acc_max, h.acc_can_overflow) == (-100, 300, True)


def test_all_zero_products_never_overflow():
    assert max_safe_k((0, 0), S8, ACC32) is None


def test_str_mentions_the_verdict():
    text = str(headroom(64, U8, S8, AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE)))
    assert "can overflow" in text and "needs 17 of 16 bits" in text


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=0), "k must be"), (dict(k=True), "k must be"), (dict(k=1.5), "k must be"),
    (dict(bias_max=-1), "bias_max"), (dict(x_fmt=(3, 2)), "x_fmt"), (dict(w_fmt="s8"), "w_fmt"),
    (dict(x_fmt=(1,)), "x_fmt"), (dict(accum=32), "accum"),
])
def test_bad_arguments(kwargs, match):
    args = dict(k=4, x_fmt=S8, w_fmt=S8, accum=ACC32, bias_max=0) | kwargs
    with pytest.raises(ValueError, match=match):
        headroom(**args)


# ---------------------------------------------------------------------------------------------
# The rule of thumb (STYLE.md 8.3) is an upper bound, exact for symmetric ranges
# ---------------------------------------------------------------------------------------------


def rule_of_thumb(k, xmax, wmax, bias_max):
    m = k * xmax * wmax + bias_max
    return m.bit_length() + 1  # ceil(log2(m + 1)) + 1, computed exactly


@given(st.integers(1, 1 << 20), st.integers(0, 1 << 15), st.integers(0, 1 << 15), st.integers(0, 1 << 31),
       st.integers(-(1 << 15), 1 << 15), st.integers(-(1 << 15), 1 << 15))
def test_rule_of_thumb_bounds_the_exact_bits(k, a, b, bias, x0, w0):
    assert headroom(k, (-a, a), (-b, b), AccumSpec(acc_bits=64), bias).acc_bits_needed == rule_of_thumb(k, a, b, bias)
    xlo, wlo = min(x0, a), min(w0, b)
    exact = headroom(k, (xlo, a), (wlo, b), AccumSpec(acc_bits=64), bias).acc_bits_needed
    assert exact <= rule_of_thumb(k, max(a, -xlo), max(b, -wlo), bias)


# ---------------------------------------------------------------------------------------------
# Exhaustive check on small formats
# ---------------------------------------------------------------------------------------------


def narrow(v, bits, mode):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= v <= hi:
        return v
    if mode is Overflow.SATURATE:
        return min(max(v, lo), hi)
    return (v - lo) % (1 << bits) + lo


def brute_force(k, xs, ws, acc: AccumSpec, bias_max):
    """Every reachable value, computed by enumerating all operand choices (as sets of sums)."""
    products = {x * w for x in xs for w in ws}
    sizes = [acc.group] * (k // acc.group) + ([k % acc.group] if k % acc.group else [])
    sums = {1: set(products)}
    for m in range(2, acc.group + 1):
        sums[m] = {s + p for s in sums[m - 1] for p in products}
    group_over = any(narrow(s, acc.group_bits, acc.group_overflow) != s for m in set(sizes) for s in sums[m])
    groups = {m: {narrow(s, acc.group_bits, acc.group_overflow) for s in sums[m]} for m in set(sizes)}
    biases = range(-bias_max, bias_max + 1)

    seen = []  # every accumulator value before its narrowing

    def step(values):
        seen.extend(values)
        return {narrow(v, acc.acc_bits, acc.acc_overflow) for v in values}

    state = step(set(biases) if acc.bias_first else {0})
    for m in sizes:
        state = step({s + g for s in state for g in groups[m]})
    if not acc.bias_first:
        state = step({s + b for s in state for b in biases})
    lo, hi = -(1 << (acc.acc_bits - 1)), (1 << (acc.acc_bits - 1)) - 1
    exact_group = sums[sizes[0]]
    return dict(group_min=min(exact_group), group_max=max(exact_group), group_over=group_over,
                acc_min=min(seen), acc_max=max(seen), acc_over=any(not lo <= v <= hi for v in seen))


small_range = st.tuples(st.integers(-5, 5), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1]))


@given(
    k=st.integers(1, 6),
    x=small_range,
    w=small_range,
    group=st.sampled_from([1, 2, 4]),
    group_bits=st.sampled_from([4, 5, 6, 7, 64]),
    group_overflow=st.sampled_from(list(Overflow)),
    acc_bits=st.sampled_from([8, 9]),
    acc_overflow=st.sampled_from(list(Overflow)),
    bias_first=st.booleans(),
    bias_max=st.sampled_from([0, 1, 7, 40, 130]),
)
def test_headroom_matches_brute_force(k, x, w, group, group_bits, group_overflow, acc_bits, acc_overflow,
                                      bias_first, bias_max):
    acc = AccumSpec(group=group, group_bits=group_bits, group_overflow=group_overflow, acc_bits=acc_bits,
                    acc_overflow=acc_overflow, bias_first=bias_first)
    h: Headroom = headroom(k, x, w, acc, bias_max)
    bf = brute_force(k, range(x[0], x[1] + 1), range(w[0], w[1] + 1), acc, bias_max)
    assert (h.group_min, h.group_max, h.group_can_overflow) == (bf["group_min"], bf["group_max"], bf["group_over"])
    if h.exact and not h.acc_can_overflow:
        # nothing narrowed the accumulator, so the reachable extremes are the exact ones
        assert (h.acc_min, h.acc_max) == (bf["acc_min"], bf["acc_max"])
    if h.exact:
        assert h.acc_can_overflow == bf["acc_over"]
    elif not h.acc_can_overflow:
        assert not bf["acc_over"]  # a bound is safe
        assert h.acc_min <= bf["acc_min"] and bf["acc_max"] <= h.acc_max


@pytest.mark.parametrize("group,group_bits,mode", [(2, 5, Overflow.WRAP), (4, 6, Overflow.SATURATE),
                                                   (1, 64, Overflow.WRAP)])
def test_max_safe_k_matches_brute_force(group, group_bits, mode):
    acc = AccumSpec(group=group, group_bits=group_bits, group_overflow=mode, acc_bits=8)
    xs, ws = (-3, 3), (-4, 2)
    expected = 0
    for k in range(1, 40):
        bf = brute_force(k, range(xs[0], xs[1] + 1), range(ws[0], ws[1] + 1), acc, 5)
        if bf["group_over"] or bf["acc_over"]:
            break
        expected = k
    assert max_safe_k(xs, ws, acc, bias_max=5) == expected


def test_docstring_examples():
    import doctest

    import hwsim.headroom
    import hwsim.targets

    for module in (hwsim.headroom, hwsim.targets):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
