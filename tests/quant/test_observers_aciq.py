"""ACIQ: the alpha*/b table of SEMANTICS.md 4.7 reproduced, closed forms, and the observer's estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import lambertw

from hwsim.quant.aciq import ALPHA_RATIO, AciqObserver, expected_mse, optimal_ratio
from hwsim.quant.observers import make_observer
from hwsim.quant.params import QuantFormat

# SEMANTICS.md 4.7, rows "computed" (bits 2..8)
PAPER_LAPLACE = [2.831, 3.897, 5.029, 6.205, 7.413, 8.646, 9.897]
PAPER_GAUSS = [1.711, 2.152, 2.559, 2.936, 3.287, 3.615, 3.924]
# the authors' code comment (submission2019/cnn-quantization int_quantizer.py), 8 decimals
AUTHORS_LAPLACE = [2.83068299, 3.89722946, 5.02864014, 6.20476633, 7.41312622, 8.64561995, 9.89675982]


@pytest.mark.parametrize("bits", range(2, 9))
def test_golden_section_reproduces_the_table(bits):
    assert round(optimal_ratio(bits, "laplace"), 3) == PAPER_LAPLACE[bits - 2]
    assert round(optimal_ratio(bits, "gauss"), 3) == PAPER_GAUSS[bits - 2]
    assert abs(optimal_ratio(bits, "laplace") - AUTHORS_LAPLACE[bits - 2]) < 5e-7
    assert ALPHA_RATIO["laplace"][bits] == PAPER_LAPLACE[bits - 2]
    assert ALPHA_RATIO["gauss"][bits] == PAPER_GAUSS[bits - 2]


@pytest.mark.parametrize("bits", [2, 5, 8, 10, 12, 16])
def test_laplace_optimum_closed_form(bits):
    # d/da [2 e^-a + a^2 / (3 * 4^M)] = 0  <=>  a e^a = 3 * 4^M  <=>  a = W0(3 * 4^M) (Lambert W)
    closed = float(lambertw(3.0 * 4.0 ** bits).real)
    # (the objective is flat at its minimum: comparing its values resolves alpha to ~1e-7)
    assert optimal_ratio(bits, "laplace") == pytest.approx(closed, abs=1e-6)


@pytest.mark.parametrize("bits", [3, 10, 16])
def test_gauss_optimum_against_scipy(bits):
    ref = minimize_scalar(lambda a: expected_mse(a, bits, "gauss"), bounds=(0.1, 40), method="bounded",
                          options={"xatol": 1e-10}).x
    assert optimal_ratio(bits, "gauss") == pytest.approx(ref, abs=1e-6)


def test_laplace_clip_range():
    # values -1 and +1 (1000 each) and one pair of outliers -60, +60: mean 0,
    # b = mean|x| = (2000 * 1 + 120) / 2002 = 1.058941; the histogram over [-60, 60] (2048 bins of
    # 0.0586) puts +-1 within half a bin of its centre, so b is estimated to within 0.0293.
    # 8 bits: alpha = 9.897 * b = 10.4803 (< 60): range [mean - alpha, mean + alpha]
    x = np.concatenate([np.full(1000, -1.0), np.full(1000, 1.0), [-60.0, 60.0]]).astype(np.float32)
    obs = make_observer("aciq", QuantFormat(8, signed=True, symmetric=False))
    obs.observe(x)
    assert obs.scale_estimate() == pytest.approx(2120 / 2002, abs=120 / 2048 / 2)
    lo, hi = obs.range()
    assert hi - lo == pytest.approx(2 * 9.897 * obs.scale_estimate())
    assert lo == pytest.approx(-9.897 * 2120 / 2002, abs=9.897 * 0.0293)


def test_gauss_sigma_from_range():
    # sigma = (max - min) * 0.5 * 0.35 * (1 + sqrt(pi ln 4)) / sqrt(2 ln N); N = 10000, range [-1, 9]:
    # sqrt(pi ln 4) = 2.086906, 1 + that = 3.086906, * 0.175 * 10 = 5.402086, sqrt(2 ln 1e4) = 4.291932
    # sigma = 1.258662; 4 bits: alpha = 2.559 * sigma = 3.220916 < (9 - -1)/2 = 5
    # mean = (9 - 1) / 10000 = 0.0008: start = max(-1, 0.0008 - 3.220916) = -1, range [-1, 5.441832]
    x = np.zeros(10000, np.float32)
    x[0], x[1] = -1.0, 9.0
    obs = AciqObserver(QuantFormat(4, signed=True), prior="gaussian")
    obs.observe(x[:5000])
    obs.observe(x[5000:])
    assert obs.scale_estimate() == pytest.approx(1.258662, abs=2e-6)
    lo, hi = obs.range()
    assert lo == -1.0
    assert hi == pytest.approx(-1.0 + 2 * 2.559 * 1.258662, abs=1e-5)


def test_wide_alpha_keeps_the_full_range():
    # 8-bit Laplace on uniform data: alpha = 9.897 * b is far beyond (max - min) / 2 -> [min, max]
    x = np.linspace(-2.0, 3.0, 1001, dtype=np.float32)
    obs = make_observer("aciq", QuantFormat(8))
    obs.observe(x)
    assert obs.range() == (-2.0, 3.0)


def test_unknown_prior():
    with pytest.raises(ValueError, match="prior"):
        make_observer("aciq", QuantFormat(8), prior="cauchy")
    with pytest.raises(ValueError, match="prior"):
        optimal_ratio(8, "cauchy")


def test_expected_mse_is_the_formula():
    # Laplace, M = 2, alpha = 3: 2 e^-3 + 9 / 48 = 0.099574 + 0.1875 = 0.287074
    assert expected_mse(3.0, 2, "laplace") == pytest.approx(0.287074, abs=1e-6)
    # Gauss, M = 8, alpha = 0: (0 + 1)(1 - 0) - 0 + 0 = 1 (clipping everything to 0 costs E[x^2] = 1)
    assert expected_mse(0.0, 8, "gauss") == pytest.approx(1.0)
    assert math.isfinite(expected_mse(40.0, 16, "gauss"))
