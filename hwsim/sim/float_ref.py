"""Float32 reference execution: the float model, or the dequantised quantized model.

The float kernels here (:data:`FLOAT_OPS`) are plain numpy float32 and also
serve the integer executor for the ops a quantized graph leaves in float.
They aim at the engines' float results up to float rounding, not bit for bit
(a float convolution's summation order is the engine's choice).

:func:`float_reference` runs a whole graph: a float graph as it is; a quantized
graph "dequantised" -- every quantized constant becomes ``scale * (q - zp)``,
every op runs in float32, quantize / dequantize / requantize pass values
through unchanged, and fused activations clamp in the real domain.  Inputs and
outputs are float32 in the model's layout.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph

__all__ = ["FLOAT_OPS", "float_reference", "conv2d_f32", "im2col", "dequantize_constant"]

_F32 = np.float32


def _clamp(y: np.ndarray, activation) -> np.ndarray:
    if activation is None:
        return y
    lo, hi = activation
    return np.clip(y, _F32(lo), _F32(hi)).astype(_F32)


def im2col(x, kernel, stride, dilation, padding, pad_value=0) -> np.ndarray:
    """NHWC ``x`` as patches [N, OH, OW, KH, KW, C] in tap order (ky, kx, ci), padding holding ``pad_value``.

    Pure data movement: the float convolution multiplies these rows, and the per-group
    integer layers feed them to the gemm kernel (pad_value = the input zero point), which
    then visits the same taps in the same order as the conv kernel.
    """
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = padding
    xp = np.full((n, h + top + bottom, wd + left + right, c), pad_value, dtype=x.dtype)
    xp[:, top:top + h, left:left + wd, :] = x
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            cols[:, :, :, ky, kx, :] = xp[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw, :]
    return cols


def conv2d_f32(x, w, bias, stride, dilation, padding, groups) -> np.ndarray:
    """NHWC float convolution via im2col and np.matmul (weights [O, KH, KW, C/groups])."""
    o, kh, kw, cg = w.shape
    cols = im2col(np.asarray(x, dtype=_F32), (kh, kw), stride, dilation, padding)
    n, oh, ow = cols.shape[:3]
    og = o // groups
    out = np.empty((n, oh, ow, o), dtype=_F32)
    for g in range(groups):
        patch = cols[..., g * cg:(g + 1) * cg].reshape(n * oh * ow, kh * kw * cg)
        wg = w[g * og:(g + 1) * og].reshape(og, kh * kw * cg)
        out[..., g * og:(g + 1) * og] = (patch @ wg.T).reshape(n, oh, ow, og)
    if bias is not None:
        out += bias.astype(_F32)
    return out


def _conv(node, xs):
    a = node.attrs
    bias = xs[2] if len(xs) > 2 and xs[2] is not None else None
    x = xs[0] if len(xs) < 4 or xs[3] is None else xs[0] - _F32(xs[3])    # a run-time zero point
    y = conv2d_f32(x, xs[1], bias, tuple(a.get("stride", (1, 1))), tuple(a.get("dilation", (1, 1))),
                   tuple(a.get("padding", (0, 0, 0, 0))), int(a.get("groups", 1)))
    return _clamp(y, a.get("activation"))


def _fc(node, xs):
    x = xs[0]
    if len(xs) > 3 and xs[3] is not None:          # a run-time zero point (dynamic quantization)
        x = x - _F32(xs[3])
    y = x.reshape(x.shape[0], -1) @ xs[1].T
    if len(xs) > 2 and xs[2] is not None:
        y = y + xs[2]
    return _clamp(y.astype(_F32), node.attrs.get("activation"))


def _binary(fn):
    def run(node, xs):
        return _clamp(fn(xs[0], xs[1]).astype(_F32), node.attrs.get("activation"))
    return run


def _mean(node, xs):
    return np.mean(xs[0], axis=tuple(node.attrs["axes"]), keepdims=bool(node.attrs.get("keepdims", True)),
                   dtype=_F32)


def _pool(kind):
    def run(node, xs):
        x = xs[0]
        a = node.attrs
        kh, kw = a["kernel"]
        sh, sw = a.get("stride", (1, 1))
        top, left, bottom, right = a.get("padding", (0, 0, 0, 0))
        n, h, w, c = x.shape
        oh = (h + top + bottom - kh) // sh + 1
        ow = (w + left + right - kw) // sw + 1
        fill = -np.inf if kind == "max" else 0.0
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
        ones = np.pad(np.ones((1, h, w, 1), _F32), ((0, 0), (top, bottom), (left, right), (0, 0)))
        acc = np.full((n, oh, ow, c), fill, dtype=_F32)
        cnt = np.zeros((1, oh, ow, 1), dtype=_F32)
        for ky in range(kh):
            for kx in range(kw):
                win = xp[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
                acc = np.maximum(acc, win) if kind == "max" else acc + win
                cnt = cnt + ones[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
        if kind == "avg":
            acc = acc / (_F32(kh * kw) if a.get("count_include_pad", False) else cnt)
        return _clamp(acc.astype(_F32), a.get("activation"))
    return run


def _softmax(node, xs):
    x = xs[0] * _F32(node.attrs.get("beta", 1.0))
    e = np.exp(x - x.max(axis=node.attrs.get("axis", -1), keepdims=True))
    return (e / e.sum(axis=node.attrs.get("axis", -1), keepdims=True)).astype(_F32)


def _pad(node, xs):
    return np.pad(xs[0], node.attrs["pads"], constant_values=_F32(node.attrs.get("constant", 0.0)))


def _hard_swish(node, xs):
    x = xs[0]
    return (x * np.clip(x + _F32(3), 0, 6) / _F32(6)).astype(_F32)


def _dynamic_quantize(node, xs):
    """Dequantised semantics: y = x / scale + zero_point without rounding or clamping, with the scale and
    zero point the engine would pick for this input; the integer layer after it subtracts the zero
    point and the ``mul`` after that applies the scale, so the chain computes the float layer."""
    from hwsim.quant.dynamic import dynamic_qparams

    x = np.asarray(xs[0], dtype=_F32)
    scale, zp = dynamic_qparams(x)
    return (x / scale + _F32(zp)).astype(_F32), np.array(scale, _F32), np.array(zp, _F32)


FLOAT_OPS = {
    "conv2d": _conv,
    "fully_connected": _fc,
    "matmul": lambda node, xs: np.matmul(xs[0] if len(xs) < 3 or xs[2] is None else xs[0] - _F32(xs[2]),
                                         xs[1]).astype(_F32),
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "mean": _mean,
    "avg_pool2d": _pool("avg"),
    "max_pool2d": _pool("max"),
    "reshape": lambda node, xs: xs[0].reshape(tuple(node.attrs["shape"])),
    "transpose": lambda node, xs: np.ascontiguousarray(np.transpose(xs[0], node.attrs["perm"])),
    "concat": lambda node, xs: np.concatenate(xs, axis=node.attrs["axis"]),
    "pad": _pad,
    "softmax": _softmax,
    "logistic": lambda node, xs: (_F32(1) / (_F32(1) + np.exp(-xs[0]))).astype(_F32),
    "tanh": lambda node, xs: np.tanh(xs[0]).astype(_F32),
    "hard_swish": _hard_swish,
    "relu": lambda node, xs: np.maximum(xs[0], _F32(0)),
    "leaky_relu": lambda node, xs: np.where(xs[0] >= 0, xs[0], xs[0] * _F32(node.attrs.get("alpha", 0.01))),
    "clip": lambda node, xs: np.clip(xs[0], _F32(node.attrs.get("min", -np.inf)), _F32(node.attrs.get("max", np.inf))),
    "quantize": lambda node, xs: xs[0],
    "dequantize": lambda node, xs: xs[0],
    "requantize": lambda node, xs: xs[0],
    "dynamic_quantize": _dynamic_quantize,
    "cast": lambda node, xs: np.asarray(xs[0]).astype(_F32) if np.dtype(node.attrs["dtype"]).kind == "f"
    else np.asarray(xs[0]).astype(node.attrs["dtype"]),
}


def dequantize_constant(tensor) -> np.ndarray:
    """A constant tensor as float32 real values (``scale * (q - zp)`` if quantized)."""
    data = tensor.data
    q = tensor.quant
    if q is None:
        return np.asarray(data, dtype=_F32) if data.dtype.kind == "f" else data
    scale = np.asarray(q.scale, dtype=np.float64)
    zp = np.asarray(q.zero_point, dtype=np.float64)
    if getattr(q, "group_size", None) is not None:
        # per group: scale [O, G] over the flattened reduction axes of each output channel (axis 0)
        k = int(np.prod(data.shape[1:]))
        cols = np.arange(k) // q.group_size
        flat = (data.reshape(data.shape[0], k).astype(np.float64) - zp[:, cols]) * scale[:, cols]
        return flat.reshape(data.shape).astype(_F32)
    if q.per_channel:
        shape = [1] * data.ndim
        shape[q.axis % data.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((data.astype(np.float64) - zp) * scale).astype(_F32)


def float_reference(graph: Graph, inputs: dict, trace: bool = False):
    """Run ``graph`` in float32 (dequantised if quantized); see the module docstring.

    Returns
    -------
    dict name -> float32 array of the outputs (model layout), or with ``trace``
    a pair (outputs, every tensor in IR layout).
    """
    from hwsim.sim.executor import check_inputs, from_ir_layout, to_ir_layout

    env: dict = {}
    for name, arr in check_inputs(graph, inputs).items():
        t = graph.tensor(name)
        x = to_ir_layout(graph, arr)
        if t.quant is not None and x.dtype.kind in "iu":
            x = dequantize_constant(type(t)(t.name, t.shape, t.dtype, t.quant, x))
        env[name] = x.astype(_F32)
    for name, t in graph.tensors.items():
        if t.is_constant:
            env[name] = dequantize_constant(t)
    for node in graph.nodes:
        try:
            fn = FLOAT_OPS[node.op]
        except KeyError:
            raise ValueError(f"float reference: op {node.op!r} (node {node.name!r}) is not supported") from None
        xs = [env[i] if i else None for i in node.inputs]
        result = fn(node, xs)
        if len(node.outputs) > 1:                  # dynamic_quantize: (y, scale, zero point)
            env.update(zip(node.outputs, result))
        else:
            env[node.outputs[0]] = result
    outs = {name: from_ir_layout(graph, env[name]) for name in graph.outputs}
    return (outs, env) if trace else outs
