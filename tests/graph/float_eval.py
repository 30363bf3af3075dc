"""A tiny numpy evaluator of the IR in float, for importer tests only.

It checks layout conversion, BN folding and attribute translation against
onnxruntime's float output (to ~1e-4), so it is deliberately naive: float32
numpy, NHWC, no claim to bit-exactness.  Integer ops are run as fake-quant
(dequantize the inputs, float op, quantize the output), which is within an
LSB or so of an engine: enough to catch a wrong layout or attribute, never a
bit-exactness check.  The real executor lives in hwsim.sim.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph
from hwsim.graph.layout import TO_NCHW, TO_NHWC


def run_float(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``graph`` on model-layout ``inputs``; returns the outputs in the model's layout."""
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        x = np.asarray(inputs[name])
        env[name] = x.transpose(TO_NHWC) if x.ndim == 4 else x
    for name, t in graph.tensors.items():
        if t.is_constant:
            env[name] = t.data
    for node in graph.nodes:
        args = [_to_real(graph.tensor(i), env[i]) if i else None for i in node.inputs]
        y = _OPS[node.op](graph, node, *args)
        if len(node.outputs) > 1:          # dynamic_quantize: (y, scale, zero point)
            for name, value in zip(node.outputs, y):
                env[name] = _from_real(graph.tensor(name), value)
            continue
        act = node.attrs.get("activation")
        if act is not None:
            y = np.clip(y, np.float32(act[0]), np.float32(act[1]))
        env[node.outputs[0]] = _from_real(graph.tensor(node.outputs[0]), y)
    out = {}
    for name in graph.outputs:
        y = env[name]
        out[name] = y.transpose(TO_NCHW) if y.ndim == 4 else y
    return out


def _conv2d(graph, node, x, w, bias=None, x_zero_point=None):
    a = node.attrs
    if x_zero_point is not None:          # dynamic quantization's run-time zero point
        x = x - x_zero_point
    (sh, sw), (dh, dw), (pt, pl, pb, pr), g = a["stride"], a["dilation"], a["padding"], a["groups"]
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (wd + pl + pr - (kw - 1) * dw - 1) // sw + 1
    og = o // g
    wg = w.reshape(g, og, kh, kw, cg).astype(np.float32)
    acc = np.zeros((g, n * oh * ow, og), np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw, :]
            patch = patch.reshape(n * oh * ow, g, cg).transpose(1, 0, 2)           # [g, P, cg]
            acc += np.matmul(patch, wg[:, :, i, j, :].transpose(0, 2, 1))            # [g, P, og]
    y = acc.transpose(1, 0, 2).reshape(n, oh, ow, o)
    return y + bias if bias is not None else y


def _fc(graph, node, x, w, bias=None, x_zero_point=None):
    if x_zero_point is not None:          # dynamic quantization's run-time zero point
        x = x - x_zero_point
    y = x @ w.T
    return y + bias if bias is not None else y


def _pool(graph, node, x, fill):
    a = node.attrs
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel"], a["stride"], a["padding"]
    n, h, wd, c = x.shape
    oh = (h + pt + pb - kh) // sh + 1
    ow = (wd + pl + pr - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    ones = np.pad(np.ones((1, h, wd, 1), np.float32), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    windows, counts = [], []
    for i in range(kh):
        for j in range(kw):
            windows.append(xp[:, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw, :])
            counts.append(ones[:, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw, :])
    return np.stack(windows), np.stack(counts)


def _avg_pool(graph, node, x):
    win, cnt = _pool(graph, node, x, 0.0)
    total = win.sum(axis=0)
    div = np.float32(win.shape[0]) if node.attrs["count_include_pad"] else cnt.sum(axis=0)
    return total / div


def _max_pool(graph, node, x):
    win, _ = _pool(graph, node, x, -np.inf)
    return win.max(axis=0)


def _softmax(graph, node, x):
    ax = node.attrs["axis"]
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)


def _qshape(t, ndim):
    shape = [1] * ndim
    if t.quant.per_channel:
        shape[t.quant.axis] = t.quant.scale.size
    return t.quant.scale.reshape(shape), t.quant.zero_point.reshape(shape)


def _to_real(t, x):
    """Integer tensors with quant params -> float32 reals (ONNX DequantizeLinear); others unchanged."""
    if not np.issubdtype(x.dtype, np.integer):
        return x
    if t.quant is None:
        return x.astype(np.float64)     # a raw accumulator (MatMulInteger / ConvInteger)
    s, zp = _qshape(t, x.ndim)
    return ((x.astype(np.int64) - zp).astype(np.float32) * s).astype(np.float32)


def _from_real(t, y):
    """Float results -> the output tensor's integer type (ONNX QuantizeLinear: x / s, RNE, + zp, saturate)."""
    if not np.issubdtype(t.dtype, np.integer):
        return np.asarray(y, dtype=t.dtype)
    if t.quant is None:
        return np.rint(y).astype(t.dtype)
    s, zp = _qshape(t, y.ndim)
    q = np.rint((y / s).astype(np.float32)) + zp
    info = np.iinfo(t.dtype)
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _dynamic_quantize(graph, node, x):
    """ONNX DynamicQuantizeLinear (uint8), naively: the range including 0 over 255 codes."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32((hi - lo) / 255 if hi > lo else 1.0)
    zp = np.float32(np.clip(np.rint(-lo / scale), 0, 255))
    return np.clip(np.rint(x / scale) + zp, 0, 255), scale, zp


_OPS = {
    "conv2d": _conv2d,
    "fully_connected": _fc,
    "matmul": lambda g, n, a, b, zp=None: np.matmul(a if zp is None else a - zp, b),
    "add": lambda g, n, a, b: a + b,
    "sub": lambda g, n, a, b: a - b,
    "mul": lambda g, n, a, b: a * b,
    "mean": lambda g, n, x: x.mean(axis=n.attrs["axes"], keepdims=n.attrs["keepdims"]),
    "avg_pool2d": _avg_pool,
    "max_pool2d": _max_pool,
    "reshape": lambda g, n, x: x.reshape(n.attrs["shape"]),
    "transpose": lambda g, n, x: x.transpose(n.attrs["perm"]),
    "concat": lambda g, n, *xs: np.concatenate(xs, axis=n.attrs["axis"]),
    "pad": lambda g, n, x: np.pad(x, n.attrs["pads"], constant_values=n.attrs["constant"]),
    "softmax": _softmax,
    "logistic": lambda g, n, x: 1 / (1 + np.exp(-x)),
    "tanh": lambda g, n, x: np.tanh(x),
    "hard_swish": lambda g, n, x: x * np.clip(x / 6 + 0.5, 0, 1),
    "relu": lambda g, n, x: np.maximum(x, 0),
    "leaky_relu": lambda g, n, x: np.where(x >= 0, x, x * np.float32(n.attrs["alpha"])),
    "clip": lambda g, n, x: np.clip(x, n.attrs["min"], n.attrs["max"]),
    "quantize": lambda g, n, x: x,       # the conversions happen in _to_real / _from_real
    "dequantize": lambda g, n, x: x,
    "dynamic_quantize": _dynamic_quantize,
    "cast": lambda g, n, x: np.asarray(x).astype(n.attrs["dtype"]),
}
