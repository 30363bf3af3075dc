"""quantize (float -> int), dequantize (int -> float) and requantize (int -> int)."""

from __future__ import annotations

import numpy as np

from hwsim.numerics.arith import round_float
from hwsim.sim.arith_ort import dequantize_linear
from hwsim.types import Rounding

_F32 = np.float32


def quantize_values(x, qp, dtype, rounding: Rounding) -> np.ndarray:
    """``sat(round(fl32(x / scale)) + zp)`` with the target's rounding.

    onnxruntime QuantizeLinear (half_even) and TFLite's reference Quantize
    (std::round of the float32 quotient: half_away) both divide in float32.
    Per channel along ``qp.axis``.
    """
    x32 = np.asarray(x, dtype=_F32)
    scale = np.asarray(qp.scale, dtype=_F32)
    zp = np.asarray(qp.zero_point, dtype=np.int64)
    if qp.per_channel:
        shape = [1] * x32.ndim
        shape[qp.axis % x32.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    else:
        scale, zp = scale.reshape(()), zp.reshape(())
    info = np.iinfo(dtype)
    v = x32 / scale                                 # float32 division, as both engines
    # clamp before rounding (as MLAS does; after saturation the result is the same for every rule)
    lo = (info.min - zp).astype(_F32)
    hi = (info.max - zp).astype(_F32)
    # float32 bounds are exact integers; NaN becomes the lower bound, as MAXPS(NaN, lo) gives lo in MLAS
    v = np.minimum(np.fmax(v, lo), hi)
    if rounding is Rounding.HALF_EVEN:
        q = np.rint(v)
    elif rounding is Rounding.HALF_AWAY:
        q = np.copysign(np.floor(np.abs(v) + _F32(0.5)), v)   # |v| < 2**23 here: v + 0.5 is exact
    else:
        q = round_float(v.astype(np.float64), rounding).astype(_F32)
    return (q + zp.astype(_F32)).astype(dtype)      # exact integers below 2**24


def _tflite_function(ctx, name: str):
    """arith_tflite's ``name`` when the target is a TFLite-family engine (``elementwise.engine`` set)."""
    if getattr(ctx.profile, "elementwise_engine", None) is None:
        return None
    try:
        from hwsim.sim import arith_tflite
    except ImportError:
        return None
    return getattr(arith_tflite, name, None)


def prepare_quantize(node, ctx):
    """float -> int.  TFLite-family targets: arith_tflite.tflite_quantize with the target's engine
    (LiteRT's optimised int8 kernel multiplies by a reciprocal); otherwise :func:`quantize_values`."""
    y_t = ctx.tensor(node.outputs[0])
    if y_t.quant is None or np.dtype(y_t.dtype).kind not in "iu":
        raise ctx.fail(node, f"output {y_t.name!r} of quantize must be a quantized integer tensor")
    rounding = ctx.profile.quantize_rounding
    x_name, y_name, qp, dt = node.inputs[0], node.outputs[0], y_t.quant, np.dtype(y_t.dtype)
    tfl = _tflite_function(ctx, "tflite_quantize") if not qp.per_channel else None
    engine = getattr(ctx.profile, "elementwise_engine", None)

    def run(env, rctx):
        x = env[x_name]
        if tfl is not None:
            env[y_name] = tfl(np.asarray(x, dtype=np.float32), qp, out_dtype=dt, engine=engine)
        else:
            env[y_name] = quantize_values(x, qp, dt, rounding)
    return run


def prepare_dequantize(node, ctx):
    x_t = ctx.tensor(node.inputs[0])
    if x_t.quant is None:
        raise ctx.fail(node, f"input {x_t.name!r} of dequantize is not quantized")
    x_name, y_name, qp = node.inputs[0], node.outputs[0], x_t.quant
    const = dequantize_linear(x_t.data, qp) if x_t.is_constant else None

    def run(env, rctx):
        env[y_name] = const if const is not None else dequantize_linear(env[x_name], qp)
    return run


def prepare_requantize(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    same = (x_t.quant is not None and y_t.quant is not None and np.array_equal(x_t.quant.scale, y_t.quant.scale)
            and np.array_equal(x_t.quant.zero_point, y_t.quant.zero_point) and x_t.dtype == y_t.dtype)
    x_name, y_name = node.inputs[0], node.outputs[0]
    if same:
        def run(env, rctx):
            env[y_name] = env[x_name]
        return run
    tfl = _tflite_function(ctx, "tflite_requantize")
    if tfl is None or x_t.quant is None or y_t.quant is None:
        raise ctx.fail(node, f"requantize from {x_t.name!r} to {y_t.name!r} (different quantisation) is only "
                             "supported on TFLite-family targets (QUANTIZE int -> int)")
    dt = np.dtype(y_t.dtype)

    def run_tflite(env, rctx):
        env[y_name] = tfl(env[x_name], x_t.quant, y_t.quant, out_dtype=dt)
    return run_tflite
