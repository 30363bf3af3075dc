"""Integer elementwise and pooling ops whose arithmetic the target's ``elementwise`` section names.

A scheme ``s`` for op ``o`` is the function ``s_o`` in ``hwsim.sim.arith_ort``
(schemes ``ort_*``) or ``hwsim.sim.arith_tflite`` (``tflite_*``); see
``docs``/issue 3 for the signatures.  A fused activation clamps the result to
its quantized bounds afterwards (the engines clamp last, so the order is exact).
"""

from __future__ import annotations

import importlib

import numpy as np

from hwsim.sim import arith_ort
from hwsim.sim.ops.common import activation_bounds, per_tensor
from hwsim.sim.ops.linear import _float_step


def scheme_function(ctx, node, op: str, fn_suffix: str | None = None):
    """The arithmetic function the target's ``elementwise.<op>`` scheme names."""
    try:
        scheme = ctx.profile.elementwise_scheme(op)
    except ValueError as exc:
        raise ctx.fail(node, str(exc)) from None
    module_name = "hwsim.sim.arith_ort" if scheme.startswith("ort_") else "hwsim.sim.arith_tflite"
    fn_name = f"{scheme}_{fn_suffix or op}"
    try:
        module = importlib.import_module(module_name)
        return getattr(module, fn_name)
    except (ImportError, AttributeError):
        raise ctx.fail(node, f"target {ctx.profile.name}'s elementwise.{op} scheme {scheme!r} is not implemented "
                             f"in hwsim yet ({module_name}.{fn_name})") from None


def _clamp_step(node, ctx, y_t):
    act = node.attrs.get("activation")
    if act is None:
        return None
    sy, zy = per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    return activation_bounds(act, sy, zy, ctx.profile.quantize_rounding, y_t.dtype)


def _table_maker(fn, a_t, b_t, y_t):
    """For onnxruntime's QLinearAdd on 8-bit tensors: build the 256 x 256 result table once
    (arith_ort.ort_fma_f32_add_table, exact by construction) instead of the float chain per call."""
    if fn is not arith_ort.ort_fma_f32_add:
        return None
    if not (np.dtype(a_t.dtype) == np.dtype(b_t.dtype) == np.dtype(y_t.dtype) and np.dtype(a_t.dtype).itemsize == 1):
        return None
    return lambda swapped: arith_ort.ort_fma_f32_add_table(a_t.quant, b_t.quant, y_t.quant, a_t.dtype, swapped)


def prepare_binary(node, ctx):
    a_t, b_t, y_t = (ctx.tensor(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if y_t.quant is None:
        return _float_step(node, ctx)
    for t, what in ((a_t, "input a"), (b_t, "input b")):
        per_tensor(t.quant, f"{what} {t.name!r}", node, ctx)
    fn = scheme_function(ctx, node, node.op)
    per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    bounds = _clamp_step(node, ctx, y_t)
    consts = {n: t.data for n, t in ((node.inputs[0], a_t), (node.inputs[1], b_t)) if t.is_constant}
    a_name, b_name, y_name = node.inputs[0], node.inputs[1], node.outputs[0]
    a_qp, b_qp, y_qp, dt = a_t.quant, b_t.quant, y_t.quant, np.dtype(y_t.dtype)

    table = _table_maker(fn, a_t, b_t, y_t)
    tables: dict = {}

    def run(env, rctx):
        a = consts[a_name] if a_name in consts else env[a_name]
        b = consts[b_name] if b_name in consts else env[b_name]
        if table is not None:
            swapped = arith_ort._a_is_inner_scalar(a.shape, b.shape)
            if swapped not in tables:
                tables[swapped] = table(swapped).reshape(-1)
            ia = (a.view(np.uint8) ^ np.uint8(0x80)) if a.dtype == np.int8 else a
            ib = (b.view(np.uint8) ^ np.uint8(0x80)) if b.dtype == np.int8 else b
            y = tables[swapped][ia.astype(np.intp) * 256 + ib]
        else:
            y = fn(a, a_qp, b, b_qp, y_qp, dt)
        if bounds is not None:
            y = np.clip(y, *bounds).astype(dt)
        env[y_name] = y
    return run


def prepare_mean(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    per_tensor(x_t.quant, f"input {x_t.name!r}", node, ctx)
    per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    fn = scheme_function(ctx, node, "mean")
    axes = tuple(node.attrs["axes"])
    keep = bool(node.attrs.get("keepdims", True))
    x_name, y_name, dt = node.inputs[0], node.outputs[0], np.dtype(y_t.dtype)

    def run(env, rctx):
        y = fn(env[x_name], x_t.quant, y_t.quant, dt, axes=axes)
        env[y_name] = y if keep else np.squeeze(y, axis=axes)
    return run


def prepare_avg_pool2d(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    fn = scheme_function(ctx, node, "avg_pool2d")
    a = dict(node.attrs)
    bounds = _clamp_step(node, ctx, y_t)
    x_name, y_name, dt = node.inputs[0], node.outputs[0], np.dtype(y_t.dtype)
    a.pop("activation", None)

    def run(env, rctx):
        y = fn(env[x_name], x_t.quant, y_t.quant, dt, **a)
        if bounds is not None:
            y = np.clip(y, *bounds).astype(dt)
        env[y_name] = y
    return run


def prepare_unary(node, ctx):
    """softmax, logistic, tanh, hard_swish, leaky_relu: the target's scheme function."""
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    fn = scheme_function(ctx, node, node.op)
    attrs = {k: v for k, v in node.attrs.items() if k != "activation"}
    x_name, y_name, dt = node.inputs[0], node.outputs[0], np.dtype(y_t.dtype)

    def run(env, rctx):
        env[y_name] = fn(env[x_name], x_t.quant, y_t.quant, dt, **attrs)
    return run
