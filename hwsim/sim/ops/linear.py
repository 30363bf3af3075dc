"""conv2d (incl. depthwise), fully_connected and matmul: integer through hwsim.kernels, else float32.

Preparation (once per graph and target) checks that the target can express the
layer's parameters, derives the kernel specs with :func:`hwsim.layer_specs`
and packs the weights, zero points and bias as the kernels take them; a run
only calls the C kernel.
"""

from __future__ import annotations

import numpy as np

from hwsim import kernels
from hwsim.layer_specs import SplitRequant, layer_specs
from hwsim.sim.packed import PreparedConv2d, PreparedGemm
from hwsim.sim.float_ref import FLOAT_OPS, dequantize_constant
from hwsim.sim.ops.common import activation_bounds, flip8, per_tensor, rebias_needed
from hwsim.sim.ops.grouped import check_lookup, prepare_grouped


def _float_step(node, ctx):
    fn = FLOAT_OPS[node.op]
    consts = {i: dequantize_constant(ctx.tensor(i)) for i in node.inputs if i and ctx.tensor(i).is_constant}

    def run(env, rctx):
        xs = [consts[i] if i in consts else (env[i] if i else None) for i in node.inputs]
        env[node.outputs[0]] = fn(node, xs)
    return run


def _check_weights(node, ctx, w_t, sem, op):
    """The target's weight format must hold every weight (e.g. [-127, 127] when restricted)."""
    w = w_t.data
    fmt = sem.weights
    if w.dtype.kind not in "iu":
        raise ctx.fail(node, f"weights {w_t.name!r}: expected an integer tensor, got {w.dtype}")
    wmin, wmax = int(w.min()), int(w.max())
    if (w.dtype.kind == "i") != fmt.signed:
        raise ctx.fail(node, f"weights {w_t.name!r}: {w.dtype} weights, but target {ctx.profile.name} takes "
                             f"{'signed' if fmt.signed else 'unsigned'} {fmt.bits}-bit weights for {op}")
    if wmin < fmt.min or wmax > fmt.max:
        bad = wmin if wmin < fmt.min else wmax
        raise ctx.fail(node, f"weights {w_t.name!r} hold {bad}, outside the range [{fmt.min}, {fmt.max}] that "
                             f"target {ctx.profile.name} allows for {op} weights ({fmt.value_range.value} range); "
                             "re-quantize the model for this target")
    q = w_t.quant
    if q is not None and fmt.granularity.value == "per-tensor" and np.unique(q.scale).size > 1:
        raise ctx.fail(node, f"weights {w_t.name!r} have {q.scale.size} per-channel scales, but target "
                             f"{ctx.profile.name} takes one weight scale per tensor for {op}")


def _is_power_of_two(scales) -> bool:
    m, _ = np.frexp(np.asarray(scales, dtype=np.float64).reshape(-1))
    return bool(np.all(m == 0.5))


def _check_scales(node, ctx, sem, tensors) -> None:
    """Operands the target declares ``scale: power_of_two`` must have power-of-two scales."""
    for t, fmt, what in tensors:
        if t is None or t.quant is None or fmt.scale.value != "power_of_two":
            continue
        if not _is_power_of_two(t.quant.scale):
            raise ctx.fail(node, f"{what} {t.name!r} has scale {t.quant.scale.reshape(-1)[:4].tolist()}, but target "
                                 f"{ctx.profile.name} needs power-of-two {what} scales")


def _check_bias_range(node, ctx, sem, bias) -> None:
    if bias is None:
        return
    fmt = sem.bias
    lo, hi = fmt.int_format.min, fmt.int_format.max
    if int(bias.min()) < lo or int(bias.max()) > hi:
        bad = int(bias.min()) if int(bias.min()) < lo else int(bias.max())
        raise ctx.fail(node, f"bias {node.inputs[2]!r} holds {bad}, outside the {fmt.bits}-bit bias range "
                             f"[{lo}, {hi}] of target {ctx.profile.name}")


def _bias(node, ctx, n_out):
    if len(node.inputs) < 3 or not node.inputs[2]:
        return None
    b_t = ctx.tensor(node.inputs[2])
    if not b_t.is_constant:
        raise ctx.fail(node, f"bias {b_t.name!r} must be a constant")
    b = np.asarray(b_t.data)
    if b.dtype.kind not in "iu":
        raise ctx.fail(node, f"bias {b_t.name!r}: expected an int32 tensor in an integer layer, got {b.dtype}")
    if b.shape != (n_out,):
        raise ctx.fail(node, f"bias {b_t.name!r}: expected shape ({n_out},), got {b.shape}")
    return np.ascontiguousarray(b, dtype=np.int32)


def _specs(node, ctx, op, x_t, w_t, y_t, n_out):
    sx, _ = per_tensor(x_t.quant, f"input {x_t.name!r}", node, ctx)
    sy, zy = per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    if w_t.quant is None:
        raise ctx.fail(node, f"weights {w_t.name!r} are not quantized")
    ws = np.asarray(w_t.quant.scale, dtype=np.float32).reshape(-1)
    bits = 16 if np.dtype(x_t.dtype).itemsize == 2 else None     # the 16x8 variant
    sem = ctx.profile.for_op(op, activation_bits=bits)
    _check_scales(node, ctx, sem, ((x_t, sem.input, "input"), (w_t, sem.weights, "weights"),
                                   (y_t, sem.output, "output")))
    if len(node.inputs) > 2 and node.inputs[2] and ctx.tensor(node.inputs[2]).is_constant:
        _check_bias_range(node, ctx, sem, np.asarray(ctx.tensor(node.inputs[2]).data))
    out_dtype = np.dtype(y_t.dtype)
    flip_out = rebias_needed(out_dtype, sem.output)
    kdt = out_dtype
    zy_t = zy
    if flip_out:   # the kernel writes the target's signedness; flipped back after the call (exact)
        kdt = np.dtype(np.uint8 if out_dtype == np.int8 else np.int8)
        zy_t = zy + 128 if out_dtype == np.int8 else zy - 128
    lo, hi = activation_bounds(node.attrs.get("activation"), sy, zy_t, ctx.profile.quantize_rounding, kdt)
    try:
        spec = layer_specs(ctx.profile, op, input_scale=sx, weight_scale=ws, output_scale=sy,
                           output_zero_point=zy_t, output_min=lo, output_max=hi, n_channels=n_out,
                           activation_bits=bits)
    except ValueError as exc:
        raise ctx.fail(node, f"weights {w_t.name!r} / output {y_t.name!r}: {exc}") from None
    return spec, sem, flip_out, kdt


def _weight_zero_points(w_t, n_out):
    zw = np.asarray(w_t.quant.zero_point, dtype=np.int64).reshape(-1)
    return zw if zw.size == n_out else int(zw[0])


def _signedness_adapter(dtype, sem):
    """(function converting an activation of ``dtype`` to the target's signedness or None, zero point shift)."""
    if rebias_needed(dtype, sem.input):
        return flip8, (128 if np.dtype(dtype) == np.int8 else -128)
    return None, 0


def _input_adapter(x_t, sem):
    """(function converting the activation to the target's signedness, its zero point there)."""
    adapt, shift = _signedness_adapter(x_t.dtype, sem)
    return adapt, int(x_t.quant.zero_point.reshape(-1)[0]) + shift


def _runtime_zero_point(node, index: int):
    """Name of the run-time input zero point (a dynamic_quantize output) at input ``index``, or None."""
    return node.inputs[index] if len(node.inputs) > index and node.inputs[index] else None


def _record(rctx, node, res):
    if rctx.trace:
        rctx.accumulators[node.outputs[0]] = res.accumulators
        c = res.counters
        rctx.counters[node.name or node.outputs[0]] = {
            "group_events": int(c.group_events.sum()), "acc_events": int(c.acc_events.sum()),
            "out_events": int(c.out_events.sum()), "max_abs_acc": int(c.max_abs_acc.max()),
        }
        return res.output
    return res


def _record_groups(rctx, node, lead, n_out, accs, counters, out_events):
    """Trace of a per-group layer: accumulators [..., O, G] (one per group), counters summed over groups;
    ``out_events`` counts outputs that the output format saturated."""
    rctx.accumulators[node.outputs[0]] = np.stack(accs, axis=-1).reshape(tuple(lead) + (n_out, len(accs)))
    rctx.counters[node.name or node.outputs[0]] = {
        "group_events": int(sum(c.group_events.sum() for c in counters)),
        "acc_events": int(sum(c.acc_events.sum() for c in counters)),
        "out_events": out_events,
        "max_abs_acc": int(max(c.max_abs_acc.max() for c in counters)),
    }


def _is_grouped(w_t) -> bool:
    return w_t.quant is not None and w_t.quant.group_size is not None


def _lookup_codes(node, ctx, op, x_t, w_t, w):
    """Weights with a lookup table (non-uniform levels) need the target's lookup stage; their executed
    codes are table[indices] (== the tensor's data, checked)."""
    if getattr(w_t, "lookup", None) is None:
        return w
    sem = ctx.profile.for_op(op, activation_bits=16 if np.dtype(x_t.dtype).itemsize == 2 else None)
    return np.ascontiguousarray(check_lookup(node, ctx, w_t, sem))


def _is_integer(t) -> bool:
    return np.dtype(t.dtype).kind in "iu"


def _unrequantized(node, ctx, op, x_t, w_t, y_t, n_out, call):
    """An integer layer whose output is not requantised: ConvInteger / MatMulInteger (int32
    accumulators) or QGemm with a float output (``fl32(acc) * fl32(sx * sw[c])``, SEMANTICS.md 10.1).

    ``call(x, accum, x_zero_point, n_threads, trace)`` runs the kernel without requantisation.
    """
    sem = ctx.profile.for_op(op, activation_bits=16 if np.dtype(x_t.dtype).itemsize == 2 else None)
    _check_weights(node, ctx, w_t, sem, op)
    zp_name = _runtime_zero_point(node, 3)
    out_dtype = np.dtype(y_t.dtype)
    if zp_name is not None:
        # dynamic quantization: the zero point (and the scale, applied after this op) come with each input
        if out_dtype != np.int32:
            raise ctx.fail(node, f"output {y_t.name!r}: a layer with a run-time input zero point must give its "
                                 f"int32 accumulators, got {out_dtype}")
        adapt, zx = _signedness_adapter(x_t.dtype, sem)
    else:
        adapt, zx = _input_adapter(x_t, sem)
    if out_dtype == np.int32:
        scale = None
    elif out_dtype.kind == "f":
        sx, _ = per_tensor(x_t.quant, f"input {x_t.name!r}", node, ctx)
        scale = (np.float32(sx) * np.asarray(w_t.quant.scale, np.float32).reshape(-1)).astype(np.float32)
    else:
        raise ctx.fail(node, f"output {y_t.name!r}: an integer layer without output quantisation must give int32 "
                             f"or float32, got {out_dtype}")
    activation = node.attrs.get("activation")
    x_name, y_name = node.inputs[0], node.outputs[0]

    def run(env, rctx):
        x = env[x_name]
        if adapt is not None:
            x = adapt(x)
        zero_point = zx if zp_name is None else int(env[zp_name]) + zx
        res = call(x, sem.accum, zero_point, rctx.n_threads, rctx.trace)
        acc = _record(rctx, node, res) if rctx.trace else res
        if scale is None:
            env[y_name] = acc.astype(np.int32)         # the accumulator's own width: 32 bits on these engines
            return
        y = acc.astype(np.float32) * scale
        if activation is not None:
            y = np.clip(y, np.float32(activation[0]), np.float32(activation[1]))
        env[y_name] = y
    return run


def _kernel_input_dtype(x_t, adapt) -> np.dtype:
    """The activation dtype the kernel sees: the model's, or the other 8-bit signedness after re-biasing."""
    if adapt is None:
        return np.dtype(x_t.dtype)
    return np.dtype(np.uint8 if x_t.dtype == np.int8 else np.int8)


def _requantized_step(node, adapt, flip_out, fast, call_kernel, flatten: bool = False):
    """The run step of a requantised conv / fully_connected layer.

    ``fast`` (a prepared layer, or None) serves untraced runs; a traced run calls
    ``call_kernel(x, n_threads, trace)`` for the accumulators and counters.
    ``flatten``: the input is [N, ...] flattened to [N, K] (fully_connected).
    """
    x_name, y_name = node.inputs[0], node.outputs[0]

    def run(env, rctx):
        x = env[x_name]
        if flatten:
            x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        if adapt is not None:
            x = adapt(x)
        if fast is not None and not rctx.trace:
            y = fast(x, rctx.n_threads)
        else:
            y = _record(rctx, node, call_kernel(x, rctx.n_threads, rctx.trace))
        env[y_name] = flip8(y) if flip_out else y
    return run


def prepare_conv2d(node, ctx):
    x_t, w_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.inputs[1]), ctx.tensor(node.outputs[0])
    if not _is_integer(x_t):
        return _float_step(node, ctx)
    if not w_t.is_constant:
        raise ctx.fail(node, f"weights {w_t.name!r} must be a constant for an integer convolution")
    a = node.attrs
    groups = int(a.get("groups", 1))
    w = np.ascontiguousarray(w_t.data)
    n_out = w.shape[0]
    in_c = w.shape[3] * groups
    op = "depthwise_conv2d" if groups == in_c and groups > 1 else "conv2d"
    geometry = dict(stride=tuple(a.get("stride", (1, 1))), dilation=tuple(a.get("dilation", (1, 1))),
                    padding=tuple(a.get("padding", (0, 0, 0, 0))), groups=groups)
    if _is_grouped(w_t):
        return prepare_grouped(node, ctx, op, x_t, w_t, y_t, geometry, _record_groups)
    w = _lookup_codes(node, ctx, op, x_t, w_t, w)
    if y_t.quant is None:
        zw, bias = _weight_zero_points(w_t, n_out), _bias(node, ctx, n_out)
        return _unrequantized(node, ctx, op, x_t, w_t, y_t, n_out, lambda x, accum, zx, n, tr: kernels.conv2d(
            x, w, **geometry, x_zero_point=zx, w_zero_point=zw, bias=bias, accum=accum, n_threads=n,
            return_accumulators=tr, counters=tr))
    spec, sem, flip_out, kdt = _specs(node, ctx, op, x_t, w_t, y_t, n_out)
    _check_weights(node, ctx, w_t, sem, op)
    adapt, zx = _input_adapter(x_t, sem)
    kw = dict(**geometry, x_zero_point=zx,
              w_zero_point=_weight_zero_points(w_t, n_out), bias=_bias(node, ctx, n_out), accum=spec.accum,
              requant=spec.requant, out_dtype=kdt)
    x_dtype = _kernel_input_dtype(x_t, adapt)
    fast = None if isinstance(spec.requant, SplitRequant) else PreparedConv2d(w, in_c=in_c, x_dtype=x_dtype, **kw)
    return _requantized_step(node, adapt, flip_out, fast, lambda x, n, tr: kernels.conv2d(
        x, w, **kw, n_threads=n, return_accumulators=tr, counters=tr))


def prepare_fully_connected(node, ctx):
    x_t, w_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.inputs[1]), ctx.tensor(node.outputs[0])
    if not _is_integer(x_t):
        return _float_step(node, ctx)
    if not w_t.is_constant:
        raise ctx.fail(node, f"weights {w_t.name!r} must be a constant for an integer fully_connected")
    if _is_grouped(w_t):
        return prepare_grouped(node, ctx, "fully_connected", x_t, w_t, y_t, None, _record_groups)
    w = _lookup_codes(node, ctx, "fully_connected", x_t, w_t, np.ascontiguousarray(w_t.data))
    n_out = w.shape[0]
    if y_t.quant is None:
        zw, bias = _weight_zero_points(w_t, n_out), _bias(node, ctx, n_out)
        return _unrequantized(node, ctx, "fully_connected", x_t, w_t, y_t, n_out,
                              lambda x, accum, zx, n, tr: kernels.gemm(
                                  np.ascontiguousarray(x.reshape(x.shape[0], -1)), w, a_zero_point=zx,
                                  b_zero_point=zw, bias=bias, accum=accum, n_threads=n, return_accumulators=tr,
                                  counters=tr))
    spec, sem, flip_out, kdt = _specs(node, ctx, "fully_connected", x_t, w_t, y_t, n_out)
    _check_weights(node, ctx, w_t, sem, "fully_connected")
    adapt, zx = _input_adapter(x_t, sem)
    kw = dict(a_zero_point=zx, b_zero_point=_weight_zero_points(w_t, n_out), bias=_bias(node, ctx, n_out),
              accum=spec.accum, requant=spec.requant, out_dtype=kdt)
    x_dtype = _kernel_input_dtype(x_t, adapt)
    fast = None if isinstance(spec.requant, SplitRequant) else PreparedGemm(w, a_dtype=x_dtype, **kw)
    return _requantized_step(node, adapt, flip_out, fast, lambda x, n, tr: kernels.gemm(
        x, w, **kw, n_threads=n, return_accumulators=tr, counters=tr), flatten=True)


def prepare_matmul(node, ctx):
    """Both operands at run time (a constant B becomes fully_connected in the importers).
    Output requantised (QLinearMatMul) or the int32 accumulators (MatMulInteger)."""
    a_t, b_t, y_t = ctx.tensor(node.inputs[0]), ctx.tensor(node.inputs[1]), ctx.tensor(node.outputs[0])
    if not _is_integer(a_t):
        return _float_step(node, ctx)
    if b_t.quant is None or b_t.quant.per_channel:
        raise ctx.fail(node, "an integer matmul needs a per-tensor quantized second operand")
    if y_t.quant is not None:
        spec, sem, flip_out, kdt = _specs(node, ctx, "matmul", a_t, b_t, y_t, None)
        accum, requant = spec.accum, spec.requant
    elif np.dtype(y_t.dtype) == np.int32:
        sem = ctx.profile.for_op("matmul")
        accum, requant, flip_out, kdt = sem.accum, None, False, np.dtype(np.int32)
    else:
        raise ctx.fail(node, f"output {y_t.name!r}: expected a quantized or an int32 tensor, got {y_t.dtype}")
    zp_name = _runtime_zero_point(node, 2)
    if zp_name is not None and requant is not None:
        raise ctx.fail(node, f"output {y_t.name!r}: a matmul with a run-time zero point must give int32")
    adapt, zx = _signedness_adapter(a_t.dtype, sem) if zp_name is not None else _input_adapter(a_t, sem)
    zb = int(b_t.quant.zero_point.reshape(-1)[0])
    const_b = np.ascontiguousarray(np.swapaxes(b_t.data, -1, -2)) if b_t.is_constant else None
    a_name, b_name, y_name = node.inputs[0], node.inputs[1], node.outputs[0]

    def run(env, rctx):
        a = env[a_name]
        b = const_b if const_b is not None else np.swapaxes(env[b_name], -1, -2)
        if adapt is not None:
            a = adapt(np.ascontiguousarray(a))
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        za = zx if zp_name is None else int(env[zp_name]) + zx
        a_b = np.broadcast_to(a, batch + a.shape[-2:])
        b_b = np.broadcast_to(b, batch + b.shape[-2:])
        out = np.empty(batch + (a.shape[-2], b.shape[-2]), dtype=kdt)
        for idx in np.ndindex(*batch):
            res = kernels.gemm(np.ascontiguousarray(a_b[idx]), np.ascontiguousarray(b_b[idx]), a_zero_point=za,
                               b_zero_point=zb, accum=accum, requant=requant,
                               out_dtype=kdt if requant is not None else None, n_threads=rctx.n_threads)
            out[idx] = res
        env[y_name] = flip8(out) if flip_out else out
    return run
