"""Calibration observers: watch a tensor's values over calibration batches, then pick its clipping range.

Every observer is a small numpy class with the same three methods:

* ``observe(x)`` -- fold one batch into the observer's state (may be called many times; the state
  is O(bins), never the data itself);
* ``range() -> (lo, hi)`` -- the chosen clipping range in real units (for reports);
* ``qparams() -> AffineParams`` -- per-tensor scale and zero point of ``range()`` in the observer's
  :class:`~hwsim.quant.params.QuantFormat`, through :func:`~hwsim.quant.params.params_from_range`.

Results are frozen: ``range()`` and ``qparams()`` are computed once and return equal values until the
next ``observe``.  Asking before any data was observed raises ``ValueError("... no data observed")``;
NaN or Inf in a batch raises ``ValueError`` naming the observer.

Observers by CLI method name (SEMANTICS.md section 4 is the specification):

=================  ==========================================================================
``minmax``         running min / max of everything seen
``moving_average`` PyTorch MovingAverageMinMaxObserver: the first batch sets min / max, later
                   batches move them by ``averaging_constant`` (0.01) times the difference
``percentile``     onnxruntime ``compute_percentile``: 2048-bin histogram (of |x| for symmetric
                   formats, of x for asymmetric ones), cut at ``percentile`` = 99.999
``entropy``        TensorRT-style KL divergence, pytorch-quantization flavour
``entropy_mxnet``  the MXNet / onnxruntime KL variant on a signed histogram with smoothing
``mse``            OMSE-style search of the range minimising the histogram-weighted squared error
``aciq``           analytic clipping for a Laplace or Gaussian prior (Banner et al.)
``histogram``      PyTorch HistogramObserver L2-norm search
=================  ==========================================================================
"""

from __future__ import annotations

import numpy as np

from hwsim.quant.aciq import AciqObserver
from hwsim.quant.hist_observers import (EntropyMxnetObserver, EntropyObserver, HistogramObserver, MseObserver,
                                        PercentileObserver)
from hwsim.quant.observer_base import Observer
from hwsim.quant.params import QuantFormat

__all__ = ["Observer", "MinMaxObserver", "MovingAverageObserver", "PercentileObserver", "EntropyObserver",
           "EntropyMxnetObserver", "MseObserver", "AciqObserver", "HistogramObserver", "OBSERVERS", "make_observer"]


class MinMaxObserver(Observer):
    """The smallest and largest value seen over all batches."""

    name = "minmax"

    def __init__(self, fmt: QuantFormat) -> None:
        super().__init__(fmt)
        self.min_val = np.inf
        self.max_val = -np.inf

    def _update(self, x: np.ndarray) -> None:
        self.min_val = min(self.min_val, float(x.min()))
        self.max_val = max(self.max_val, float(x.max()))

    def _compute_range(self) -> tuple[float, float]:
        return self.min_val, self.max_val


class MovingAverageObserver(Observer):
    """PyTorch's MovingAverageMinMaxObserver (also onnxruntime's MinMax ``moving_average`` option).

    The first batch sets ``min`` and ``max``; each later batch moves them towards its own:
    ``min += c * (batch_min - min)``, likewise ``max``, with ``c = averaging_constant``.
    """

    name = "moving_average"

    def __init__(self, fmt: QuantFormat, averaging_constant: float = 0.01) -> None:
        super().__init__(fmt)
        c = float(averaging_constant)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"moving_average observer: averaging_constant must be in [0, 1], got {averaging_constant!r}")
        self.averaging_constant = c
        self.min_val: float | None = None
        self.max_val: float | None = None

    def _update(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
            return
        c = self.averaging_constant
        self.min_val = self.min_val + c * (lo - self.min_val)
        self.max_val = self.max_val + c * (hi - self.max_val)

    def _compute_range(self) -> tuple[float, float]:
        return self.min_val, self.max_val


#: CLI method name -> observer class
OBSERVERS: dict[str, type] = {cls.name: cls for cls in (
    MinMaxObserver, MovingAverageObserver, PercentileObserver, EntropyObserver, EntropyMxnetObserver,
    MseObserver, AciqObserver, HistogramObserver)}


def make_observer(method: str, fmt: QuantFormat, **options) -> Observer:
    """A new observer for calibration ``method`` (a key of :data:`OBSERVERS`) in format ``fmt``.

    ``options`` go to the observer's constructor (e.g. ``percentile=99.99``, ``num_bins=8001``).

    Raises
    ------
    ValueError
        For an unknown method (the message lists the known ones) or an unknown option.
    """
    try:
        cls = OBSERVERS[method]
    except (KeyError, TypeError):
        raise ValueError(f"calibration method: unknown {method!r}; expected one of {', '.join(OBSERVERS)}") from None
    if not isinstance(fmt, QuantFormat):
        raise TypeError(f"{method} observer: fmt must be a QuantFormat, got {type(fmt).__name__}")
    try:
        return cls(fmt, **options)
    except TypeError as exc:
        raise ValueError(f"{method} observer: bad options {sorted(options)}: {exc}") from None

