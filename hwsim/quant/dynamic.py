"""Dynamic quantization: activation ranges computed per input at run time, as onnxruntime's path runs it.

onnxruntime's ``quantize_dynamic`` turns ``y = x @ W + b`` into::

    x_q, x_scale, x_zp = DynamicQuantizeLinear(x)          # uint8, parameters from this very input
    acc  = MatMulInteger(x_q, W_q, x_zp, W_zp)             # int32, exact
    y    = Cast(acc, float) * (x_scale * W_scale) + b      # float32, three separately rounded steps

hwsim's IR mirrors it one to one: ``dynamic_quantize`` -> ``fully_connected`` (int32 output, the
run-time zero point as its fourth input) -> ``cast`` -> ``mul`` -> ``add`` (SEMANTICS.md 3.7 for the
quantize itself).  :func:`dynamic_qparams` is the single place the run-time parameters are computed.

:func:`dynamic_quantize_graph` builds that structure from a float graph for any target; the
importer builds the same from an onnxruntime-quantized model file.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor
from hwsim.quant.params import QuantFormat, params_from_range

__all__ = ["dynamic_qparams", "dynamic_quantize_graph"]

_F32 = np.float32
_U8_MIN, _U8_MAX = _F32(0), _F32(255)


def dynamic_qparams(x: np.ndarray) -> tuple[np.float32, int]:
    """The uint8 (scale, zero point) DynamicQuantizeLinear picks for ``x``, in onnxruntime's float32 order.

    ``lo = min(min(x), 0)``, ``hi = max(max(x), 0)`` (so 0 is exact);
    ``scale = fl32(fl32(hi - lo) / 255)``, or 1 when ``hi == lo`` (an all-zero input);
    ``zero_point = round_half_even(clamp(fl32(0 - fl32(lo / scale)), 0, 255))``
    (onnxruntime ``GetQuantizationParameter``, core/util/qmath.h).  ``x`` must be finite float32.
    """
    lo = min(_F32(x.min()), _F32(0))
    hi = max(_F32(x.max()), _F32(0))
    scale = _F32(1) if hi == lo else _F32(_F32(hi - lo) / _U8_MAX)
    initial = _F32(_U8_MIN - _F32(lo / scale))
    zero_point = int(np.rint(max(_U8_MIN, min(_U8_MAX, initial))))
    return scale, zero_point
