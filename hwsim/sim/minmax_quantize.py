"""A simple MinMax post-training quantizer: float graph + calibration data -> quantized graph.

``minmax_quantize(graph, target, calibration)`` is :func:`hwsim.quantize` with
``method="minmax"`` and the target's own formats and granularity (the graph
rewrite lives in :mod:`hwsim.quant.rewrite`); the result has ``kind`` "minmax".
For a target profile:

* **Activations**, per tensor: the range [min(0, lo), max(0, hi)] of the float
  reference over the calibration data, mapped onto the target's
  ``operands.input`` format by :func:`hwsim.quant.params.params_from_range`.
* **Weights**, symmetric, per output channel or per tensor as the target's
  ``operands.weights.granularity`` says (:func:`hwsim.quant.quantizers.weight_params`).
* **Bias**: ``rne(b / (s_x * s_w[c]))``, saturated to the target's bias width.
* ``scale: power_of_two`` operands get their scale rounded up to a power of two.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, QuantParams

__all__ = ["minmax_quantize"]


def _activation_params(lo: float, hi: float, fmt) -> QuantParams:
    """The QuantParams of an activation with real range [lo, hi] in target operand format ``fmt``."""
    from hwsim.quant.params import params_from_range
    from hwsim.quant.quantize import quant_format

    p = params_from_range(lo, hi, quant_format(fmt))
    return QuantParams(p.scale, p.zero_point)


def _quantize_weights(w: np.ndarray, fmt) -> tuple[np.ndarray, QuantParams]:
    """Weights quantized MinMax at the granularity of target operand format ``fmt``: (codes, QuantParams)."""
    from hwsim.quant.quantize import _granularity_name, quant_format
    from hwsim.quant.quantizers import to_ir_weights, weight_params

    codes, qp, _ = to_ir_weights(w, weight_params(w, quant_format(fmt), _granularity_name(fmt)))
    return codes, qp


def minmax_quantize(graph: Graph, target, calibration: dict) -> Graph:
    """Quantize a float ``graph`` for ``target`` with MinMax ranges from ``calibration``.

    Parameters
    ----------
    graph : Graph
        A float graph (``graph.kind == "float"``).
    target : str, path or TargetProfile
    calibration : dict name -> ndarray
        One array per graph input, batch first, in the model's layout.

    Returns
    -------
    Graph
        A new quantized graph (float inputs and outputs) that :func:`hwsim.simulate` runs.
    """
    from hwsim.quant.quantize import quantize

    return quantize(graph, target, calibration, method="minmax", kind="minmax")
