"""dynamic_quantize (ONNX DynamicQuantizeLinear) and cast: the run-time half of dynamic quantization.

``dynamic_quantize`` is ONNX's op whatever the target: parameters from
:func:`hwsim.quant.dynamic.dynamic_qparams`, then QuantizeLinear's float32
division, clamp and round-half-even (MLAS ``MlasQuantizeLinear``).  The integer
layer after it takes the zero point at run time (see
:func:`hwsim.sim.ops.linear.prepare_fully_connected`).
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import QuantParams
from hwsim.quant.dynamic import dynamic_qparams
from hwsim.sim.ops.common import SimulationError
from hwsim.sim.ops.quant import quantize_values
from hwsim.types import Rounding

_F32 = np.float32


def prepare_dynamic_quantize(node, ctx):
    x_t = ctx.tensor(node.inputs[0])
    if np.dtype(x_t.dtype).kind != "f":
        raise ctx.fail(node, f"input {x_t.name!r} must be a float tensor, got {x_t.dtype}")
    if len(node.outputs) != 3 or np.dtype(ctx.tensor(node.outputs[0]).dtype) != np.uint8:
        raise ctx.fail(node, "expected outputs (y uint8, scale, zero point)")
    x_name = node.inputs[0]
    y_name, s_name, z_name = node.outputs
    # messages are built here, not from ctx inside run(): a plan must not keep its graph alive
    empty = str(ctx.fail(node, f"input {x_name!r} is empty; DynamicQuantizeLinear needs at least one value"))
    not_finite = str(ctx.fail(node, f"input {x_name!r} holds NaN or Inf; its dynamic range is undefined"))
    too_wide = str(ctx.fail(node, f"input {x_name!r}: max - min overflows float32; no finite scale exists"))

    def run(env, rctx):
        x = np.asarray(env[x_name], dtype=_F32)
        if x.size == 0:
            raise SimulationError(empty)
        if not np.all(np.isfinite(x)):
            raise SimulationError(not_finite)
        scale, zp = dynamic_qparams(x)
        if not np.isfinite(scale):
            raise SimulationError(too_wide)
        env[y_name] = quantize_values(x, QuantParams(scale, zp), np.uint8, Rounding.HALF_EVEN)
        env[s_name] = np.array(scale, dtype=_F32)
        env[z_name] = np.array(zp, dtype=np.uint8)
    return run


def prepare_cast(node, ctx):
    """Numpy's conversion, which rounds int32 -> float32 to nearest even like C++'s static_cast."""
    dtype = np.dtype(node.attrs["dtype"])
    x_name, y_name = node.inputs[0], node.outputs[0]

    def run(env, rctx):
        env[y_name] = np.asarray(env[x_name]).astype(dtype)
    return run
