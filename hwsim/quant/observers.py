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

from hwsim.quant.params import AffineParams, QuantFormat, params_from_range

__all__ = ["Observer", "MinMaxObserver", "MovingAverageObserver", "OBSERVERS", "make_observer"]


class Observer:
    """Base class: input checks, the frozen result cache and ``qparams`` from ``range``.

    Subclasses implement ``_update(x)`` (x is a finite, non-empty float32 1-D array) and
    ``_compute_range() -> (lo, hi)``.
    """

    #: the CLI / registry name
    name = "observer"

    def __init__(self, fmt: QuantFormat) -> None:
        if not isinstance(fmt, QuantFormat):
            raise TypeError(f"{self.name} observer: fmt must be a QuantFormat, got {type(fmt).__name__}")
        self.fmt = fmt
        self.count = 0                 # elements observed so far
        self._range: tuple[float, float] | None = None
        self._params: AffineParams | None = None

    def observe(self, x) -> None:
        """Fold one batch of values into the observer's state.

        Raises
        ------
        ValueError
            If ``x`` is empty, not numeric, or holds NaN / Inf.
        """
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"{self.name} observer: expected a numeric array, got dtype {arr.dtype}")
        if arr.size == 0:
            raise ValueError(f"{self.name} observer: empty array (shape {arr.shape}); nothing to observe")
        arr = arr.astype(np.float32, copy=False).reshape(-1)
        if not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            raise ValueError(f"{self.name} observer: the data holds {bad} values; calibration data must be finite")
        self._update(arr)
        self.count += arr.size
        self._range = None
        self._params = None

    def range(self) -> tuple[float, float]:
        """The chosen clipping range ``(lo, hi)`` in real units (frozen until the next ``observe``)."""
        if self.count == 0:
            raise ValueError(f"{self.name} observer: no data observed; call observe(x) first")
        if self._range is None:
            lo, hi = self._compute_range()
            self._range = (float(lo), float(hi))
        return self._range

    def qparams(self) -> AffineParams:
        """Per-tensor scale and zero point of :meth:`range` in this observer's format."""
        if self._params is None:
            lo, hi = self.range()
            self._params = params_from_range(lo, hi, self.fmt)
        return self._params

    def _update(self, x: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute_range(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fmt={self.fmt}, observed={self.count})"


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


def _registry() -> dict[str, type]:
    from hwsim.quant.aciq import AciqObserver
    from hwsim.quant.hist_observers import (EntropyMxnetObserver, EntropyObserver, HistogramObserver,
                                            MseObserver, PercentileObserver)

    classes = [MinMaxObserver, MovingAverageObserver, PercentileObserver, EntropyObserver,
               EntropyMxnetObserver, MseObserver, AciqObserver, HistogramObserver]
    return {cls.name: cls for cls in classes}


#: CLI method name -> observer class
OBSERVERS: dict[str, type] = {}


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
    try:
        return cls(fmt, **options)
    except TypeError as exc:
        raise ValueError(f"{method} observer: bad options {sorted(options)}: {exc}") from None


OBSERVERS.update(_registry())
