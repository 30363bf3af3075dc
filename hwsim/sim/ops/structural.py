"""Ops that move or select integer values without arithmetic: reshape, transpose, concat, pad,
max_pool2d, relu, clip (exact on the quantized values when input and output share quantisation)."""

from __future__ import annotations

import numpy as np

from hwsim.sim.arith_ort import quantize_linear
from hwsim.sim.ops.common import activation_bounds, per_tensor
from hwsim.sim.ops.linear import _float_step


def _same_quant(node, ctx, x_t, y_t):
    if x_t.quant is None or y_t.quant is None:
        raise ctx.fail(node, f"input {x_t.name!r} and output {y_t.name!r} must both be quantized")
    same = (np.array_equal(x_t.quant.scale, y_t.quant.scale) and np.array_equal(x_t.quant.zero_point,
            y_t.quant.zero_point) and np.dtype(x_t.dtype) == np.dtype(y_t.dtype))
    if not same:
        raise ctx.fail(node, f"input {x_t.name!r} and output {y_t.name!r} have different quantisation; "
                             f"hwsim runs {node.op} on integers only when they are equal")


def _simple(node, ctx, fn):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    if x_t.quant is not None:
        _same_quant(node, ctx, x_t, y_t)
    x_name, y_name = node.inputs[0], node.outputs[0]

    def run(env, rctx):
        env[y_name] = fn(env[x_name])
    return run


def prepare_reshape(node, ctx):
    shape = tuple(node.attrs["shape"])
    return _simple(node, ctx, lambda x: x.reshape(shape))


def prepare_transpose(node, ctx):
    perm = tuple(node.attrs["perm"])
    return _simple(node, ctx, lambda x: np.ascontiguousarray(np.transpose(x, perm)))


def prepare_concat(node, ctx):
    """Concatenation; inputs quantized unlike the output are requantised by the target's
    ``elementwise.concat`` scheme (onnxruntime QLinearConcat: a table per input)."""
    y_t = ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    axis = int(node.attrs["axis"])
    names, y_name = list(node.inputs), node.outputs[0]
    consts = {n: ctx.tensor(n).data for n in names if ctx.tensor(n).is_constant}
    fn, kw = None, {}
    try:
        for name in names:
            _same_quant(node, ctx, ctx.tensor(name), y_t)
    except ValueError:
        from hwsim.sim.ops.elementwise import scheme_function

        fn = scheme_function(ctx, node, "concat")
        from hwsim.sim.ops.elementwise import bind

        kw = bind(fn, ctx, node, out_dtype=np.dtype(y_t.dtype), axis=axis)
        for name in names:
            per_tensor(ctx.tensor(name).quant, f"input {name!r}", node, ctx)
    qps = [ctx.tensor(n).quant for n in names]
    dt = np.dtype(y_t.dtype)

    def run(env, rctx):
        xs = [consts[n] if n in consts else env[n] for n in names]
        env[y_name] = np.concatenate(xs, axis=axis) if fn is None else fn(xs, qps, y_t.quant, **kw)
    return run


def prepare_pad(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    _same_quant(node, ctx, x_t, y_t)
    value = quantize_linear(np.float32(node.attrs.get("constant", 0.0)), y_t.quant, y_t.dtype)
    pads = tuple(tuple(p) for p in node.attrs["pads"])
    return _simple(node, ctx, lambda x: np.pad(x, pads, constant_values=value))


def prepare_max_pool2d(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    _same_quant(node, ctx, x_t, y_t)
    a = node.attrs
    kh, kw = a["kernel"]
    sh, sw = a.get("stride", (1, 1))
    top, left, bottom, right = a.get("padding", (0, 0, 0, 0))
    info = np.iinfo(y_t.dtype)
    sy, zy = per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    lo, hi = activation_bounds(a.get("activation"), sy, zy, ctx.profile.quantize_rounding, y_t.dtype)

    def pool(x):
        n, h, w, c = x.shape
        oh = (h + top + bottom - kh) // sh + 1
        ow = (w + left + right - kw) // sw + 1
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=info.min)
        out = np.full((n, oh, ow, c), info.min, dtype=x.dtype)
        for ky in range(kh):
            for kx in range(kw):
                np.maximum(out, xp[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :], out=out)
        return np.clip(out, lo, hi).astype(x.dtype)
    return _simple(node, ctx, pool)


def _clamp_op(node, ctx, lo_real, hi_real):
    y_t = ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    sy, zy = per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    lo, hi = activation_bounds((lo_real, hi_real), sy, zy, ctx.profile.quantize_rounding, y_t.dtype)
    dt = np.dtype(y_t.dtype)
    return _simple(node, ctx, lambda x: np.clip(x, lo, hi).astype(dt))


def prepare_relu(node, ctx):
    return _clamp_op(node, ctx, 0.0, np.inf)


def prepare_clip(node, ctx):
    return _clamp_op(node, ctx, node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf))
