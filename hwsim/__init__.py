"""hwsim: what a quantized neural network computes on a given chip, bit for bit."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
