"""Integer elementwise and pooling ops whose arithmetic the target's ``elementwise`` section names.

A scheme ``s`` for op ``o`` is the function ``s_o`` in ``hwsim.sim.arith_ort``
(schemes ``ort_*``) or ``hwsim.sim.arith_tflite`` (``tflite_*``, ``xnnpack_*``).
Calling convention: the integer inputs with their QuantParams positionally
(``a, a_qp, b, b_qp, y_qp`` or ``x, x_qp, y_qp``), everything else by keyword
-- ``out_dtype``, the node's attributes (``axes``, ``kernel``, ``beta``, ...),
``activation`` (the real clamp) and the target's ``elementwise.engine`` --
each passed only if the function takes it.  A function without an
``activation`` parameter gets the fused clamp applied afterwards at its
quantized bounds (the engines clamp last, so the order is exact).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from hwsim.sim import arith_ort
from hwsim.sim.ops.common import activation_bounds, per_tensor
from hwsim.sim.ops.linear import _float_step


def _uint8_as_int8(fn):
    """Run an int8-only scheme function on uint8 tensors: every uint8 array becomes int8 (x - 128),
    every zero point moves by -128, and the int8 result comes back as uint8 (+ 128).  Exact: the
    engines' arithmetic depends on q - zero_point only (it is how a u8 model runs on an s8 engine)."""
    from hwsim.graph.ir import QuantParams
    from hwsim.sim.ops.common import flip8

    def conv(v):
        if isinstance(v, np.ndarray) and v.dtype == np.uint8:
            return flip8(v)
        if isinstance(v, QuantParams):
            return QuantParams(v.scale, v.zero_point - 128, v.axis)
        if isinstance(v, (list, tuple)):
            return type(v)(conv(e) for e in v)
        return v

    def run(*args, **kw):
        if np.dtype(kw.get("out_dtype", np.int8)) == np.uint8:
            kw["out_dtype"] = np.dtype(np.int8)
        return flip8(fn(*(conv(a) for a in args), **kw))
    run.__signature__ = inspect.signature(fn)
    run.__name__ = fn.__name__
    return run


def scheme_function(ctx, node, op: str, fn_suffix: str | None = None):
    """The arithmetic function the target's ``elementwise.<op>`` scheme names.

    TFLite-family functions take int8; on an all-uint8 node they run through
    :func:`_uint8_as_int8` (exact)."""
    try:
        scheme = ctx.profile.elementwise_scheme(op)
    except ValueError as exc:
        raise ctx.fail(node, str(exc)) from None
    module_name = "hwsim.sim.arith_ort" if scheme.startswith("ort_") else "hwsim.sim.arith_tflite"
    fn_name = f"{scheme}_{fn_suffix or op}"
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, fn_name)
    except (ImportError, AttributeError):
        raise ctx.fail(node, f"target {ctx.profile.name}'s elementwise.{op} scheme {scheme!r} is not implemented "
                             f"in hwsim yet ({module_name}.{fn_name})") from None
    dtypes = {np.dtype(ctx.tensor(n).dtype) for n in list(node.inputs) + list(node.outputs) if n}
    if module_name.endswith("arith_tflite") and dtypes == {np.dtype(np.uint8)}:
        return _uint8_as_int8(fn)
    return fn


def bind(fn, ctx, node, required=(), **options) -> dict:
    """The keyword arguments of ``options`` (plus ``engine``) that ``fn`` takes.

    ``required`` names options whose value matters: if ``fn`` cannot take one of
    them while it is set (not None / False), the node is refused rather than
    computed without it.
    """
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    engine = getattr(ctx.profile, "elementwise_engine", None)
    if engine is not None and "engine" in params:
        options["engine"] = engine
    for name in required:
        if options.get(name) not in (None, False) and not (takes_all or name in params):
            raise ctx.fail(node, f"{fn.__name__} cannot take {name}={options[name]!r}")
    return {k: v for k, v in options.items() if takes_all or k in params}


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
    kw = bind(fn, ctx, node, out_dtype=np.dtype(y_t.dtype), activation=node.attrs.get("activation"))
    bounds = None if "activation" in kw else _clamp_step(node, ctx, y_t)
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
            y = tables[swapped].take((ia.astype(np.uint16) << 8) | ib)
        else:
            y = fn(a, a_qp, b, b_qp, y_qp, **kw)
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
    kw = bind(fn, ctx, node, out_dtype=dt, axes=axes, keepdims=True)   # reduced axes kept, squeezed below

    def run(env, rctx):
        y = fn(env[x_name], x_t.quant, y_t.quant, **kw)
        env[y_name] = y if keep else np.squeeze(y, axis=axes)
    return run


def prepare_avg_pool2d(node, ctx):
    x_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.outputs[0])
    if y_t.quant is None:
        return _float_step(node, ctx)
    fn = scheme_function(ctx, node, "avg_pool2d")
    a = node.attrs
    x_name, y_name, dt = node.inputs[0], node.outputs[0], np.dtype(y_t.dtype)
    kw = bind(fn, ctx, node, required=("count_include_pad",), out_dtype=dt, kernel=tuple(a["kernel"]),
              stride=tuple(a.get("stride", (1, 1))), padding=tuple(a.get("padding", (0, 0, 0, 0))),
              count_include_pad=bool(a.get("count_include_pad", False)), activation=a.get("activation"))
    bounds = None if "activation" in kw else _clamp_step(node, ctx, y_t)

    def run(env, rctx):
        y = fn(env[x_name], x_t.quant, y_t.quant, **kw)
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
    kw = bind(fn, ctx, node, required=tuple(attrs), out_dtype=dt, **attrs)

    def run(env, rctx):
        env[y_name] = fn(env[x_name], x_t.quant, y_t.quant, **kw)
    return run
