"""The observer base class: input checks, the frozen-result cache, ``qparams`` from ``range``.

The observers themselves and their registry are in :mod:`hwsim.quant.observers`.
"""

from __future__ import annotations

import numpy as np

from hwsim.quant.params import AffineParams, QuantFormat, params_from_range

__all__ = ["Observer"]


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
            if max(abs(lo), abs(hi)) < float(np.finfo(np.float32).tiny) * (self.fmt.qmax - self.fmt.qmin):
                lo = hi = 0.0     # a range this close to 0 has no normal float32 scale: treat it as zero
            self._params = params_from_range(lo, hi, self.fmt)
        return self._params

    def _update(self, x: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute_range(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fmt={self.fmt}, observed={self.count})"
