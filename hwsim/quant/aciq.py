"""ACIQ analytic clipping (Banner, Nahshan, Soudry, arXiv:1810.05723; SEMANTICS.md 4.7).

For an M-bit uniform quantizer on [-alpha, alpha] the expected squared error is approximately
``clip_noise(alpha) + alpha^2 / (3 * 4^M)``, with

* Laplace(0, b):  ``clip_noise = 2 b^2 exp(-alpha / b)``
* Gauss(0, sigma): ``clip_noise = (alpha^2 + sigma^2)(1 - erf(alpha / (sqrt2 sigma)))
  - sqrt(2/pi) alpha sigma exp(-alpha^2 / (2 sigma^2))``.

The minimiser is ``alpha* = ratio(M) * b`` (or ``* sigma``).  :data:`ALPHA_RATIO` holds the ratios for
M = 2..8 as SEMANTICS.md 4.7 lists them (computed there with scipy); other widths are found by
:func:`optimal_ratio`, a bounded golden-section search (tests check it reproduces the table).

Estimators, as the authors' code: b = mean|x - mean(x)|, here from the observer's histogram (bin
centres; the mean itself is exact); sigma from the range,
``sigma = (max - min) * 0.5 * 0.35 * (1 + sqrt(pi * ln 4)) / sqrt(2 ln N)``.  Clip range: width
2 alpha starting at ``max(min, mean - alpha)``, or the whole [min, max] when alpha >= (max - min) / 2.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from hwsim.quant.histogram import RangeHistogram
from hwsim.quant.observer_base import Observer
from hwsim.quant.params import QuantFormat

__all__ = ["AciqObserver", "ALPHA_RATIO", "expected_mse", "optimal_ratio", "alpha_ratio"]

#: alpha* / b (Laplace) and alpha* / sigma (Gauss) for M = 2..8 bits (SEMANTICS.md 4.7, computed rows)
ALPHA_RATIO = {
    "laplace": {2: 2.831, 3: 3.897, 4: 5.029, 5: 6.205, 6: 7.413, 7: 8.646, 8: 9.897},
    "gauss": {2: 1.711, 3: 2.152, 4: 2.559, 5: 2.936, 6: 3.287, 7: 3.615, 8: 3.924},
}

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def expected_mse(alpha: float, bits: int, prior: str) -> float:
    """ACIQ's approximate quantization MSE at clip ``alpha`` for a unit-scale prior (b = 1 or sigma = 1)."""
    rounding = alpha * alpha / (3.0 * 4.0 ** bits)
    if prior == "laplace":
        return 2.0 * math.exp(-alpha) + rounding
    if prior == "gauss":
        clip = ((alpha * alpha + 1.0) * math.erfc(alpha / math.sqrt(2.0))      # erfc: 1 - erf loses the tail
                - math.sqrt(2.0 / math.pi) * alpha * math.exp(-alpha * alpha / 2.0))
        return clip + rounding
    raise ValueError(f"aciq prior: expected 'laplace' or 'gauss', got {prior!r}")


@lru_cache(maxsize=None)
def optimal_ratio(bits: int, prior: str, tol: float = 1e-10) -> float:
    """The alpha minimising :func:`expected_mse`, by golden-section search on [0, 4 + 2 * bits].

    The objective is unimodal on that bracket (clipping noise falls, rounding noise grows).  It is flat
    at the minimum, so comparing its values pins alpha down to about 1e-7, far below the table's 1e-3.
    """
    expected_mse(1.0, bits, prior)       # validates the prior
    a, b = 0.0, 4.0 + 2.0 * bits
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = expected_mse(c, bits, prior), expected_mse(d, bits, prior)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = expected_mse(c, bits, prior)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = expected_mse(d, bits, prior)
    return (a + b) / 2.0


def alpha_ratio(bits: int, prior: str) -> float:
    """alpha* / b or alpha* / sigma for ``bits``: the table for 2..8, the golden-section search otherwise."""
    if prior not in ALPHA_RATIO:
        raise ValueError(f"aciq prior: expected 'laplace' or 'gauss', got {prior!r}")
    return ALPHA_RATIO[prior].get(bits) or optimal_ratio(bits, prior)


class AciqObserver(Observer):
    """Analytic clipping for a Laplace (default) or Gaussian prior, M = the format's bits."""

    name = "aciq"

    def __init__(self, fmt: QuantFormat, prior: str = "laplace", bins: int = 2048) -> None:
        super().__init__(fmt)
        prior = {"gaussian": "gauss"}.get(prior, prior)
        if prior not in ALPHA_RATIO:
            raise ValueError(f"aciq observer: prior must be 'laplace' or 'gauss', got {prior!r}")
        self.prior = prior
        self.hist = RangeHistogram(bins)
        self.total = 0.0

    def _update(self, x: np.ndarray) -> None:
        self.hist.add(x)
        self.total += float(np.sum(x, dtype=np.float64))

    def scale_estimate(self) -> float:
        """b (Laplace) or sigma (Gauss) of the data seen."""
        h = self.hist
        lo, hi = h.seen_min, h.seen_max
        if self.prior == "gauss":
            n = self.count
            if n < 2:
                return 0.0
            return (hi - lo) * 0.5 * 0.35 * (1.0 + math.sqrt(math.pi * math.log(4.0))) / math.sqrt(2.0 * math.log(n))
        mean = self.total / self.count
        edges = h.edges
        centres = (edges[:-1] + edges[1:]) / 2
        return float(np.sum(h.hist * np.abs(centres - mean)) / h.hist.sum())

    def _compute_range(self) -> tuple[float, float]:
        h = self.hist
        lo, hi = h.seen_min, h.seen_max
        alpha = alpha_ratio(self.fmt.bits, self.prior) * self.scale_estimate()
        if alpha >= (hi - lo) / 2:
            return lo, hi
        start = max(lo, self.total / self.count - alpha)
        return start, start + 2 * alpha
