"""QAT pieces: hand-computed forward values, clipped regions, and every gradient against central differences.

How the gradients are checked.  A straight-through estimator is, by definition,
the exact derivative of the forward function with the rounding residual held
constant (module docstring of hwsim.quant.qat).  So each test builds that
surrogate *here, from the paper's forward formula*: it freezes
r = round(t) - t at the base point (t = x in the real domain for fake
quantization and PACT; t = v/s in the code domain for LSQ and LSQ+) and
differentiates L = sum(c * surrogate) by central differences in float64 with
h = 1e-6.  Where the clamp is active the STE gradient is also the derivative of
the real forward function, and that is checked directly (no surrogate).

Points are drawn away from rounding ties (t not within 1e-3 of k + 0.5) and
from the clamp kinks (not within 1e-3 of a code range end or of alpha): at a tie
the real forward jumps by one step, and the base value of round() itself
depends on the last bit of v/s, so neither the surrogate's frozen residual nor
the forward value is well defined there; near a kink a +-h step would cross it.
With |t| <= 20 and h = 1e-6 a step moves t by < 1e-4, far less than 1e-3.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from hwsim.quant import qat
from hwsim.quant.params import AffineParams, QuantFormat
from hwsim.quant.qat import LSQ, PACT, FakeQuantize, LSQPlus, lsq_code_range, lsq_init_scale

H = 1e-6
RTOL, ATOL = 1e-6, 1e-7     # central differences on piecewise-linear functions are exact up to float64 noise


def _fd(f, p: float) -> float:
    return (f(p + H) - f(p - H)) / (2 * H)


def _away_from_ties(t: np.ndarray) -> np.ndarray:
    return np.abs(np.abs(t - np.floor(t)) - 0.5) > 1e-3


def _away_from(t: np.ndarray, *kinks: float) -> np.ndarray:
    ok = np.ones(t.shape, bool)
    for k in kinks:
        ok &= np.abs(t - k) > 1e-3
    return ok


def test_docstring_examples():
    # the hand-worked examples in the docstrings (values derived in the docstring text)
    assert doctest.testmod(qat, raise_on_error=False).failed == 0


# ---------------------------------------------------------------- fake quantization with STE

def test_fake_quantize_forward_hand_values():
    # uint4 (0..15), scale 0.25, zero point 4: real range [(0-4)*0.25, (15-4)*0.25] = [-1, 2.75]
    fq = FakeQuantize(AffineParams(0.25, 4, QuantFormat(bits=4, signed=False)))
    x = np.array([-3.0, -1.0, -0.1, 0.37, 0.38, 2.75, 2.9])
    # x/s + zp = -8, 0, 3.6, 5.48, 5.52, 15, 15.6 -> codes 0, 0, 4, 5, 6, 15, 15 -> (code - 4) * 0.25
    np.testing.assert_array_equal(fq.forward(x), [-1.0, -1.0, 0.0, 0.25, 0.5, 2.75, 2.75])
    # clipped STE: gradient 1 on [-1, 2.75] (ends included), 0 outside
    np.testing.assert_array_equal(fq.backward(np.full(7, 2.0)), [0, 2, 2, 2, 2, 2, 0])
    plain = FakeQuantize(fq.params, clipped=False)
    plain.forward(x)
    np.testing.assert_array_equal(plain.backward(np.full(7, 2.0)), np.full(7, 2.0))


def test_fake_quantize_ties_round_half_even():
    fq = FakeQuantize(AffineParams(1.0, 0, QuantFormat(bits=8, signed=True)))
    np.testing.assert_array_equal(fq.forward(np.array([0.5, 1.5, 2.5, -0.5, -1.5])), [0, 2, 2, -0, -2])


def test_fake_quantize_per_channel():
    # channel 0: scale 1, channel 1: scale 0.1; int8 symmetric
    params = AffineParams(np.array([1.0, 0.1]), np.array([0, 0]), QuantFormat(bits=8, signed=True), axis=1)
    fq = FakeQuantize(params)
    x = np.array([[0.26, 0.26], [200.0, 20.0]])
    # [0.26, 2.6 -> 3 * 0.1], [127 (clamped), 127 * 0.1 (clamped)]
    np.testing.assert_allclose(fq.forward(x), [[0.0, 0.3], [127.0, 12.7]], rtol=1e-6)
    np.testing.assert_array_equal(fq.backward(np.ones((2, 2))), [[1, 1], [0, 0]])
    with pytest.raises(ValueError, match="axis 1"):
        fq.forward(np.zeros((2, 3)))


def test_fake_quantize_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    s, zp = 0.125, 3
    fmt = QuantFormat(bits=4, signed=True)           # codes -8..7: real range [-1.375, 0.5]
    x = rng.uniform(-2.5, 1.5, 400)
    t = x / s + zp
    x = x[_away_from_ties(t) & _away_from(t, fmt.qmin, fmt.qmax)]
    c = rng.standard_normal(x.size)
    fq = FakeQuantize(AffineParams(s, zp, fmt))
    y0 = fq.forward(x)
    grad = fq.backward(c)
    resid = y0 - np.clip(x, (fmt.qmin - zp) * s, (fmt.qmax - zp) * s)     # frozen rounding residual

    def loss_at(i, xi):
        xx = x.copy()
        xx[i] = xi
        return float(np.sum(c * (np.clip(xx, (fmt.qmin - zp) * s, (fmt.qmax - zp) * s) + resid)))

    fd = np.array([_fd(lambda v, i=i: loss_at(i, v), x[i]) for i in range(0, x.size, 7)])
    np.testing.assert_allclose(grad[::7], fd, rtol=RTOL, atol=ATOL)
    assert np.any(grad == 0) and np.any(grad != 0)       # both regions were exercised


# ---------------------------------------------------------------- PACT

def test_pact_forward_hand_values():
    # k = 3: n = 7 levels over [0, alpha = 2.8], step 0.4
    p = PACT(bits=3, alpha=2.8)
    x = np.array([-5.0, 0.0, 0.19, 0.21, 1.5, 2.79, 2.8, 9.0])
    # y/step = 0, 0, 0.475, 0.525, 3.75, 6.975, 7, 7 -> 0, 0, 0, 1, 4, 7, 7, 7 levels
    np.testing.assert_allclose(p.forward(x), [0, 0, 0, 0.4, 1.6, 2.8, 2.8, 2.8], rtol=1e-12)
    gx, ga = p.backward(np.ones(8))
    # dx: 1 on [0, alpha), dalpha: 1 where x >= alpha (2.8 and 9.0)
    np.testing.assert_array_equal(gx, [0, 1, 1, 1, 1, 1, 0, 0])
    assert ga == 2.0


def test_pact_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    alpha, bits, l2 = 1.7, 4, 0.01
    n = 2 ** bits - 1
    x = rng.uniform(-1.0, 3.0, 300)
    x = x[_away_from_ties(np.clip(x, 0, alpha) * n / alpha) & _away_from(x, 0.0, alpha)]
    c = rng.standard_normal(x.size)
    p = PACT(bits, alpha=alpha, l2=l2)
    y0 = p.forward(x)
    gx, ga = p.backward(c)
    resid = y0 - np.clip(x, 0, alpha)          # PACT's STE holds the residual in the real domain

    def loss(xx, a):
        return float(np.sum(c * (np.clip(xx, 0, a) + resid))) + l2 * a * a

    np.testing.assert_allclose(ga, _fd(lambda a: loss(x, a), alpha), rtol=RTOL, atol=ATOL)
    for i in range(0, x.size, 9):
        def f(v, i=i):
            xx = x.copy()
            xx[i] = v
            return loss(xx, alpha)
        np.testing.assert_allclose(gx[i], _fd(f, x[i]), rtol=RTOL, atol=ATOL)
    assert math.isclose(p.penalty(), l2 * alpha ** 2)


def test_pact_alpha_gradient_is_real_derivative_above_alpha():
    # where x >= alpha the output is alpha exactly (no rounding residual), so the STE gradient is the
    # derivative of the real forward: d/dalpha sum(c * alpha) = sum(c)
    x = np.array([2.0, 3.5, 10.0])
    c = np.array([0.5, -2.0, 1.25])
    p = PACT(bits=2, alpha=1.5)
    p.forward(x)
    fd = _fd(lambda a: float(np.sum(c * PACT(2, alpha=a).forward(x))), 1.5)
    assert math.isclose(p.backward(c)[1], fd, rel_tol=1e-9)
    assert math.isclose(fd, -0.25, rel_tol=1e-9)         # 0.5 - 2 + 1.25


# ---------------------------------------------------------------- LSQ

def test_lsq_code_ranges_and_init():
    assert lsq_code_range(2, True) == (2, 1)
    assert lsq_code_range(4, True) == (8, 7)
    assert lsq_code_range(3, False) == (0, 7)
    # mean|v| = (1 + 3 + 2 + 2) / 4 = 2 -> s = 2 * 2 / sqrt(Q_P)
    v = np.array([1.0, -3.0, 2.0, -2.0])
    assert lsq_init_scale(v, 2, True) == 4.0                       # Q_P = 1
    assert math.isclose(lsq_init_scale(v, 4, False), 4 / math.sqrt(15))
    q = LSQ(bits=3, signed=True)                                   # scale from the first forward
    q.forward(v)
    assert math.isclose(q.scale, 4 / math.sqrt(3))


def test_lsq_forward_hand_values_unsigned():
    # 3-bit unsigned (codes 0..7), s = 0.3: v/s = -1, 0.5 (tie -> 0), 1.5 (tie -> 2), 2.2, 9
    q = LSQ(bits=3, signed=False, scale=0.3, grad_scale=1.0)
    v = np.array([-0.3, 0.15, 0.45, 0.66, 2.7])
    np.testing.assert_allclose(q.forward(v), [0.0, 0.0, 0.6, 0.6, 2.1], rtol=1e-12)
    gv, gs = q.backward(np.ones(5))
    np.testing.assert_array_equal(gv, [0, 1, 1, 1, 0])
    # ds: below -> -Q_N = 0; 0 - 0.5; 2 - 1.5; 2 - 2.2; above -> Q_P = 7: total 7 - 0.5 + 0.5 - 0.2
    assert math.isclose(gs, 6.8, rel_tol=1e-9)


@pytest.mark.parametrize("bits,signed", [(2, True), (3, True), (4, False), (8, True)])
def test_lsq_gradients_match_finite_differences(bits, signed):
    rng = np.random.default_rng(bits + 10 * signed)
    qn, qp = lsq_code_range(bits, signed)
    s = 0.37
    v = rng.uniform(-(qn + 3) * s, (qp + 3) * s, 500)
    t = v / s
    v = v[_away_from_ties(t) & _away_from(t, -qn, qp)]
    c = rng.standard_normal(v.size)
    q = LSQ(bits, signed, scale=s, grad_scale=1.0)
    y0 = q.forward(v)
    gv, gs = q.backward(c)
    cl = np.clip(v / s, -qn, qp)
    resid = np.rint(cl) - cl                   # LSQ holds the residual in the code domain (v / s)

    def loss(vv, ss):
        return float(np.sum(c * ss * (np.clip(vv / ss, -qn, qp) + resid)))

    assert math.isclose(loss(v, s), float(np.sum(c * y0)), rel_tol=1e-12)   # the surrogate is the forward
    np.testing.assert_allclose(gs, _fd(lambda ss: loss(v, ss), s), rtol=RTOL, atol=ATOL)
    for i in range(0, v.size, 11):
        def f(x, i=i):
            vv = v.copy()
            vv[i] = x
            return loss(vv, s)
        np.testing.assert_allclose(gv[i], _fd(f, v[i]), rtol=RTOL, atol=ATOL)


def test_lsq_clipped_region_gradients_are_real_derivatives():
    # all values clamped: v^ = s * Q_P or -s * Q_N exactly, so d/ds of the real forward is the
    # STE gradient (Q_P above, -Q_N below) and d/dv is 0
    v = np.array([5.0, 7.0, -9.0])
    c = np.array([1.0, 2.0, 0.5])
    q = LSQ(bits=3, signed=True, scale=0.5, grad_scale=1.0)         # codes -4..3
    q.forward(v)
    gv, gs = q.backward(c)
    fd = _fd(lambda ss: float(np.sum(c * LSQ(3, True, scale=ss, grad_scale=1.0).forward(v))), 0.5)
    assert math.isclose(gs, fd, rel_tol=1e-9) and math.isclose(gs, 3 * 3 - 4 * 0.5)
    np.testing.assert_array_equal(gv, 0)


def test_lsq_gradient_scale():
    # g = 1 / sqrt(N Q_P): weights 4-bit signed (Q_P = 7), N = 100 -> 1/sqrt(700);
    # activations 2-bit unsigned (Q_P = 3), batch 5 of 4 x 6 features -> N = 24, 1/sqrt(72)
    rng = np.random.default_rng(3)
    w = rng.standard_normal((10, 10))
    c = rng.standard_normal(w.shape)
    ref = LSQ(4, True, scale=0.3, grad_scale=1.0)
    ref.forward(w)
    _, gs1 = ref.backward(c)
    q = LSQ(4, True, scale=0.3)
    q.forward(w)
    assert math.isclose(q.backward(c)[1], gs1 / math.sqrt(700), rel_tol=1e-12)
    a = np.abs(rng.standard_normal((5, 4, 6)))
    qa = LSQ(2, False, scale=0.5, grad_scale="activation")
    assert math.isclose(qa.gradient_scale(a), 1 / math.sqrt(72))


def test_lsq_per_channel():
    # weights [3, 4], one step per output row (axis 0), 3-bit signed (codes -4..3)
    w = np.array([[0.1, -0.2, 0.3, -0.4],            # mean|w| 0.25 -> s = 2 * 0.25 / sqrt(3)
                  [1.0, 2.0, -3.0, 2.0],             # mean|w| 2    -> s = 4 / sqrt(3)
                  [0.0, 0.0, 0.0, 0.0]])             # all zero: the per-tensor value 2 * (9.0 / 12) / sqrt(3)
    q = LSQ(3, True, axis=0)
    q.forward(w)
    np.testing.assert_allclose(q.scale, np.array([0.5, 4.0, 1.5]) / math.sqrt(3), rtol=1e-12)
    # gradient scale: N = 4 weights per channel -> 1 / sqrt(4 * 3)
    assert math.isclose(q.gradient_scale(w), 1 / math.sqrt(12))
    with pytest.raises(ValueError, match="2 step sizes do not fit the 3 channels"):
        LSQ(3, True, scale=[0.1, 0.2], axis=0).forward(w)


def test_lsq_per_channel_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    qn, qp = lsq_code_range(4, True)
    scales = np.array([0.05, 0.3, 0.11])
    w = rng.standard_normal((3, 200)) * scales[:, None] * 6       # some codes beyond +-8: both regions
    t = w / scales[:, None]
    keep = np.all(_away_from_ties(t) & _away_from(t, -qn, qp), axis=0)
    w = w[:, keep]
    c = rng.standard_normal(w.shape)
    q = LSQ(4, True, scale=scales, grad_scale=1.0, axis=0)
    y0 = q.forward(w)
    gw, gs = q.backward(c)
    assert gs.shape == (3,)
    cl = np.clip(w / scales[:, None], -qn, qp)
    resid = np.rint(cl) - cl

    def loss(ss):
        return float(np.sum(c * ss[:, None] * (np.clip(w / ss[:, None], -qn, qp) + resid)))

    assert math.isclose(loss(scales), float(np.sum(c * y0)), rel_tol=1e-12)
    for k in range(3):
        def f(sk, k=k):
            ss = scales.copy()
            ss[k] = sk
            return loss(ss)
        np.testing.assert_allclose(gs[k], _fd(f, scales[k]), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(gw, c * ((t[:, keep] >= -qn) & (t[:, keep] <= qp)))


# ---------------------------------------------------------------- LSQ+

@pytest.mark.parametrize("bits,signed", [(3, False), (4, True)])
def test_lsq_plus_gradients_match_finite_differences(bits, signed):
    rng = np.random.default_rng(20 + bits)
    qn, qp = lsq_code_range(bits, signed)
    s, beta = 0.21, -0.4
    x = rng.uniform(beta - (qn + 3) * s, beta + (qp + 3) * s, 500)
    t = (x - beta) / s
    x = x[_away_from_ties(t) & _away_from(t, -qn, qp)]
    c = rng.standard_normal(x.size)
    q = LSQPlus(bits, signed, scale=s, offset=beta, grad_scale=1.0)
    y0 = q.forward(x)
    gx, gs, gb = q.backward(c)
    cl = np.clip((x - beta) / s, -qn, qp)
    resid = np.rint(cl) - cl

    def loss(xx, ss, bb):
        return float(np.sum(c * (ss * (np.clip((xx - bb) / ss, -qn, qp) + resid) + bb)))

    assert math.isclose(loss(x, s, beta), float(np.sum(c * y0)), rel_tol=1e-12)
    np.testing.assert_allclose(gs, _fd(lambda ss: loss(x, ss, beta), s), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gb, _fd(lambda bb: loss(x, s, bb), beta), rtol=RTOL, atol=ATOL)
    for i in range(0, x.size, 13):
        def f(v, i=i):
            xx = x.copy()
            xx[i] = v
            return loss(xx, s, beta)
        np.testing.assert_allclose(gx[i], _fd(f, x[i]), rtol=RTOL, atol=ATOL)


def test_lsq_plus_offset_gradient_hand_values():
    # 2-bit unsigned (codes 0..3), s = 1, beta = 1: x = 0 (below), 2.2 (inside), 9 (above)
    q = LSQPlus(2, False, scale=1.0, offset=1.0, grad_scale=1.0)
    np.testing.assert_allclose(q.forward(np.array([0.0, 2.2, 9.0])), [1.0, 2.0, 4.0])
    gx, gs, gb = q.backward(np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(gx, [0, 1, 0])
    assert math.isclose(gs, 0 + (1 - 1.2) + 3)       # -Q_N = 0; round(1.2) - 1.2; Q_P = 3
    assert gb == 2.0                                   # 1 below + 1 above, 0 inside


def test_lsq_plus_init():
    # weights: mu = 0, sigma = 1 -> max(|-3|, |3|) / 2^(3-1) = 0.75
    q = LSQPlus(3, True)
    q.init_weights(np.array([-1.0, 1.0]))
    assert (q.scale, q.offset) == (0.75, 0.0)
    # activations: Laplace(0, 1), 3-bit signed.  The MSE-optimal clip of a Laplace at 3 bits is about
    # +-3.9 b (ACIQ, SEMANTICS.md 4.7), far inside max|x| ~ ln(20000) ~ 9.9: the search must clip
    # (range well under 0.6 of min-max's) and its error must be below min-max's
    rng = np.random.default_rng(4)
    x = rng.laplace(0.0, 1.0, 20000)
    a = LSQPlus(3, True)
    a.init_activations(x)
    width = a.scale * 7
    assert width < 0.6 * (x.max() - x.min())
    assert 2 * 2.5 < width < 2 * 5.5                  # around ACIQ's 2 * 3.9 (the grid is coarse)
    mse = float(np.mean((a.forward(x) - x) ** 2))
    s_mm = (x.max() - x.min()) / 7
    minmax = LSQPlus(3, True, scale=s_mm, offset=x.min() + 4 * s_mm).forward(x)
    assert mse < float(np.mean((minmax - x) ** 2))


# ---------------------------------------------------------------- errors

def test_bad_arguments_and_order():
    with pytest.raises(ValueError, match="bits"):
        LSQ(bits=0, signed=False)
    with pytest.raises(ValueError, match="at least 2 bits"):
        LSQ(bits=1, signed=True)
    with pytest.raises(ValueError, match="alpha"):
        PACT(bits=4, alpha=0.0)
    with pytest.raises(ValueError, match="grad_scale"):
        LSQ(4, True, grad_scale="layer")
    with pytest.raises(RuntimeError, match="forward first"):
        LSQ(4, True, scale=1.0).backward(np.ones(3))
    with pytest.raises(ValueError, match="all zeros"):
        LSQ(4, True).forward(np.zeros(3))
    q = LSQ(4, True, scale=1.0)
    q.scale = -1.0
    with pytest.raises(ValueError, match="positive"):
        q.forward(np.ones(2))
