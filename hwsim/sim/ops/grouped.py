"""Per-group (block-quantized) weights and lookup (non-uniform) weights on a target.

Per-group weights
-----------------
A weight tensor whose QuantParams have ``group_size`` N carries scales and zero
points [O, G]: output channel o and group g cover elements [g*N, min((g+1)*N, K))
of the flattened reduction axis (conv2d: (KH, KW, I) in that order, I fastest;
fully_connected: K).  A target runs them only if its ``operands.weights.granularity``
is ``per-group:N`` with the same N.  This is hwsim's model of block-quantized CPU
kernels (onnxruntime's MatMulNBits, llama.cpp's Q4 blocks), **not verified bit-exact
to an engine**:

1. For each group g, the integer dot product over the group's k-range,
   sum (x - zx) * (w - zw[o, g]), accumulates as the target's ``mac`` section says
   (product groups, accumulator width and overflow) in the C kernel
   (:func:`hwsim.kernels.gemm` on that slice of the patch matrix, no bias, no
   requantisation).  A conv's patch matrix is its im2col in the kernel's tap order
   (ky, kx, ci), padding taps holding the input zero point -- the same taps the conv
   kernel visits.
2. In float32, in group order: ``y = 0; y = fl32(y + fl32(fl32(acc_g) * fl32(sx * sw[o, g])))``
   (``fl32(acc_g)`` rounds the integer to float32, to nearest even); then
   ``y = fl32(y + bias[o])`` with the float32 bias (a per-group layer's bias is a
   float32 constant; an integer bias is dequantised to float32 first).
3. The output is quantized as QuantizeLinear does, with the target's ``quantize``
   rounding and saturation: ``sat(round(fl32(y / sy)) + zy)``, then the fused
   activation's integer bounds.  A float32 output tensor (no quantisation, as
   MatMulNBits gives) receives y itself, clamped by the fused activation in float32.

Grouped and depthwise convolutions (``groups`` > 1) with per-group weights are
refused (a target's depthwise layers use per-channel weights).

Lookup weights
--------------
A weight tensor with ``Tensor.lookup`` (non-uniform levels) runs only on a target
whose ``operands.weights.lookup.index_bits`` is at least the tensor's index width;
the executed codes are ``table[indices]`` (checked against ``Tensor.data``).
"""

from __future__ import annotations

import numpy as np

from hwsim import kernels
from hwsim.sim.float_ref import dequantize_constant
from hwsim.sim.float_ref import im2col as patches
from hwsim.sim.ops.common import activation_bounds, flip8, per_tensor, rebias_needed
from hwsim.sim.ops.quant import quantize_values

_F32 = np.float32

__all__ = ["check_lookup", "check_group_target", "prepare_grouped", "group_bounds", "im2col"]


def check_lookup(node, ctx, w_t, sem) -> np.ndarray:
    """The executed weight codes of a lookup tensor (``table[indices]``), after checking the target has
    a lookup stage wide enough; the tensor's data for ordinary weights."""
    lk = getattr(w_t, "lookup", None)
    if lk is None:
        return w_t.data
    bits = sem.weights.lookup_index_bits
    if bits is None:
        raise ctx.fail(node, f"target {ctx.profile.name} has no lookup stage; non-uniform weights of tensor "
                             f"{w_t.name!r} are unsupported (a target runs them only with operands.weights.lookup)")
    if lk.index_bits > bits:
        raise ctx.fail(node, f"weights {w_t.name!r} need {lk.index_bits}-bit lookup indices ({lk.table.shape[-1]} "
                             f"levels), but the lookup stage of target {ctx.profile.name} takes {bits}-bit indices")
    if np.asarray(lk.indices).shape != np.asarray(w_t.data).shape:
        raise ctx.fail(node, f"weights {w_t.name!r}: lookup indices have shape {np.shape(lk.indices)}, the "
                             f"weights {np.shape(w_t.data)}")
    n_levels = lk.table.shape[-1]
    if int(np.asarray(lk.indices).max()) >= n_levels:
        raise ctx.fail(node, f"weights {w_t.name!r}: a lookup index >= the table's {n_levels} levels")
    codes = lk.codes()
    if not np.array_equal(codes, w_t.data):
        raise ctx.fail(node, f"weights {w_t.name!r}: data differs from its lookup table[indices]")
    return np.ascontiguousarray(codes.astype(w_t.data.dtype))


def check_group_target(node, ctx, w_t, sem) -> None:
    """Per-group weights need a target whose weights are ``per-group:N`` with the tensor's N."""
    q = w_t.quant
    fmt = sem.weights
    if fmt.granularity.value != "per-group":
        raise ctx.fail(node, f"weights {w_t.name!r} are quantized per group of {q.group_size}, but target "
                             f"{ctx.profile.name} takes {fmt.granularity.value} weights for this op; "
                             f"re-quantize the model for this target")
    if fmt.group_size != q.group_size:
        raise ctx.fail(node, f"weights {w_t.name!r} are quantized per group of {q.group_size}, but target "
                             f"{ctx.profile.name} takes per-group:{fmt.group_size} weights")


def group_bounds(k: int, group_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] of each group along a reduction axis of ``k`` elements (the last may be short)."""
    return [(s, min(s + group_size, k)) for s in range(0, k, group_size)]


def im2col(x: np.ndarray, kh: int, kw: int, stride, dilation, padding, pad_value: int) -> tuple:
    """Patches of NHWC ``x`` as [N * OH * OW, KH * KW * C] in tap order (ky, kx, ci) and (N, OH, OW)."""
    cols = patches(x, (kh, kw), stride, dilation, padding, pad_value)
    n, oh, ow = cols.shape[:3]
    return cols.reshape(n * oh * ow, kh * kw * x.shape[3]), (n, oh, ow)


def _float_bias(node, ctx, n_out):
    if len(node.inputs) < 3 or not node.inputs[2]:
        return None
    b_t = ctx.tensor(node.inputs[2])
    if not b_t.is_constant:
        raise ctx.fail(node, f"bias {b_t.name!r} must be a constant")
    b = dequantize_constant(b_t)
    b = np.asarray(b, dtype=_F32) if b.dtype.kind in "iu" and b_t.quant is None else b
    if b.shape != (n_out,):
        raise ctx.fail(node, f"bias {b_t.name!r}: expected shape ({n_out},), got {b.shape}")
    if b_t.quant is None and np.asarray(b_t.data).dtype.kind != "f":
        raise ctx.fail(node, f"bias {b_t.name!r} of a per-group layer: expected a float32 bias (or a quantized "
                             f"integer one), got an unquantized {np.asarray(b_t.data).dtype} tensor")
    return b.astype(_F32)


def prepare_grouped(node, ctx, op: str, x_t, w_t, y_t, geometry: dict | None, record):
    """The run function of a conv2d / fully_connected whose weights are quantized per group."""
    sem = ctx.profile.for_op(op, activation_bits=16 if np.dtype(x_t.dtype).itemsize == 2 else None)
    check_group_target(node, ctx, w_t, sem)
    if geometry is not None and geometry["groups"] != 1:
        raise ctx.fail(node, f"weights {w_t.name!r}: per-group weights on a grouped or depthwise convolution "
                             f"(groups={geometry['groups']}) are not supported; quantize them per channel")
    w = np.asarray(check_lookup(node, ctx, w_t, sem))
    fmt = sem.weights
    if w.dtype.kind not in "iu" or int(w.min()) < fmt.min or int(w.max()) > fmt.max:
        raise ctx.fail(node, f"weights {w_t.name!r} hold values outside [{fmt.min}, {fmt.max}], the range target "
                             f"{ctx.profile.name} allows for {op} weights ({fmt.bits}-bit)")
    n_out = w.shape[0]
    w2 = np.ascontiguousarray(w.reshape(n_out, -1))
    k = w2.shape[1]
    q = w_t.quant
    bounds = group_bounds(k, q.group_size)
    if q.scale.shape != (n_out, len(bounds)):
        raise ctx.fail(node, f"weights {w_t.name!r}: per-group scales of shape {q.scale.shape}, expected "
                             f"({n_out}, {len(bounds)}) for {k} reduction elements in groups of {q.group_size}")
    float_out = y_t.quant is None and np.dtype(y_t.dtype) == np.float32
    if not float_out and (y_t.quant is None or np.dtype(y_t.dtype).kind not in "iu"):
        raise ctx.fail(node, f"output {y_t.name!r}: a per-group layer gives a quantized integer output or "
                             f"float32, got {np.dtype(y_t.dtype)}")
    sx, _ = per_tensor(x_t.quant, f"input {x_t.name!r}", node, ctx)
    sy, zy = (None, None) if float_out else per_tensor(y_t.quant, f"output {y_t.name!r}", node, ctx)
    if rebias_needed(x_t.dtype, sem.input):
        adapt, zx = flip8, int(x_t.quant.zero_point.reshape(-1)[0]) + (128 if np.dtype(x_t.dtype) == np.int8 else -128)
    else:
        adapt, zx = None, int(x_t.quant.zero_point.reshape(-1)[0])
    # per-group multipliers fl32(sx * sw[o, g]), [G, O]
    mult = (_F32(sx) * q.scale.astype(_F32)).astype(_F32).T.copy()
    zw = np.asarray(q.zero_point, dtype=np.int64)
    w_slices = [np.ascontiguousarray(w2[:, a:b]) for a, b in bounds]
    zw_cols = [zw[:, g] if n_out > 1 else int(zw[0, g]) for g in range(len(bounds))]
    bias = _float_bias(node, ctx, n_out)
    out_dtype = np.dtype(y_t.dtype)
    activation = node.attrs.get("activation")
    if not float_out:
        lo, hi = activation_bounds(activation, sy, zy, ctx.profile.quantize_rounding, out_dtype)
    rounding = ctx.profile.quantize_rounding
    x_name, y_name = node.inputs[0], node.outputs[0]
    weight_bits = fmt.bits if fmt.bits < 8 else None
    kh = kw = None
    if geometry is not None:
        kh, kw = w.shape[1], w.shape[2]

    def run(env, rctx):
        x = env[x_name]
        if adapt is not None:
            x = adapt(x)
        if geometry is None:
            a = np.ascontiguousarray(x.reshape(x.shape[0], -1))
            lead = (x.shape[0],)
        else:
            a, lead = im2col(x, kh, kw, geometry["stride"], geometry["dilation"], geometry["padding"], zx)
        y = np.zeros((a.shape[0], n_out), dtype=_F32)
        accs, events = [], []
        for g, (s, e) in enumerate(bounds):
            res = kernels.gemm(np.ascontiguousarray(a[:, s:e]), w_slices[g], a_zero_point=zx,
                               b_zero_point=zw_cols[g], accum=sem.accum, weight_bits=weight_bits,
                               n_threads=rctx.n_threads, return_accumulators=rctx.trace, counters=rctx.trace)
            acc = res.accumulators if rctx.trace else res
            if rctx.trace:
                accs.append(acc)
                events.append(res.counters)
            y = (y + (acc.astype(_F32) * mult[g]).astype(_F32)).astype(_F32)
        if bias is not None:
            y = (y + bias).astype(_F32)
        if float_out:       # a float32 output (as MatMulNBits gives): the fused activation clamps in float32
            if activation is not None:
                y = np.clip(y, _F32(activation[0]), _F32(activation[1]))
            if rctx.trace:
                record(rctx, node, lead, n_out, accs, events, 0)
            env[y_name] = y.reshape(lead + (n_out,))
            return
        out = quantize_values(y, y_t.quant, out_dtype, rounding)
        out = np.clip(out, lo, hi).astype(out_dtype).reshape(lead + (n_out,))
        if rctx.trace:
            # outputs the output format saturated: the same quantisation into int32 leaves them unclamped
            wide = quantize_values(y, y_t.quant, np.dtype(np.int32), rounding)
            info = np.iinfo(out_dtype)
            saturated = int(np.count_nonzero((wide < info.min) | (wide > info.max)))
            record(rctx, node, lead, n_out, accs, events, saturated)
        env[y_name] = out
    return run
