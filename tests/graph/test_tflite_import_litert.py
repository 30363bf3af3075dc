"""The imported graphs mean what LiteRT computes.

* Sanity: LiteRT (reference and default kernels) runs every committed model, and its outputs have the
  shapes and dtypes the IR graph declares.
* Layout: each conv2d / fully_connected node, evaluated with a plain numpy integer convolution from the
  IR's weights, padding, stride, dilation and groups (float64 requantisation), reproduces LiteRT's
  reference output for that op to within 1 LSB on LiteRT's own intermediate inputs -- a wrong weight
  layout, padding or group mapping is off by far more.  Data-movement ops (reshape, pad, concat of equal
  scales, max pool) must match exactly.  Bit-exact arithmetic is the executor's job and tested there.
"""

from __future__ import annotations

import numpy as np
import pytest
from tflite_cases import MODELS, litert_interpreter, model_path, random_inputs, same_shape

from hwsim.graph.tflite_import import load_tflite

pytest.importorskip("ai_edge_litert")


@pytest.mark.parametrize("reference", [True, False], ids=["builtin_ref", "default"])
@pytest.mark.parametrize("name", MODELS)
def test_litert_runs_model_with_ir_shapes(name, reference):
    graph = load_tflite(model_path(name))
    interpreter = litert_interpreter(model_path(name), reference=reference)
    inputs = interpreter.get_input_details()
    assert [d["name"] for d in inputs] == graph.inputs
    for detail, value in zip(inputs, random_inputs(interpreter, seed=1)):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    assert [d["name"] for d in outputs] == graph.outputs
    for detail in outputs:
        value = interpreter.get_tensor(detail["index"])
        tensor = graph.tensor(detail["name"])
        assert same_shape(tensor.shape, value.shape) and value.dtype == tensor.dtype
        assert np.unique(value).size > 1, f"{name}: output {detail['name']} is constant"


def _zero_point(quant):
    return 0 if quant is None else int(np.asarray(quant.zero_point).reshape(-1)[0])


def _conv_accumulators(x, w, bias, attrs):
    """Sum over (kh, kw, i) of x_pad[n, oh*sh + kh*dh, ow*sw + kw*dw, g*Cg + i] * w[o, kh, kw, i] + bias[o]."""
    top, left, bottom, right = attrs["padding"]
    sh, sw = attrs["stride"]
    dh, dw = attrs["dilation"]
    groups = attrs["groups"]
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))     # real 0 = zero point, subtracted already
    n, hp, wp, channels = xp.shape
    out_channels, kh, kw, cg = w.shape
    assert channels == groups * cg
    oh = (hp - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wp - ((kw - 1) * dw + 1)) // sw + 1
    acc = np.zeros((n, oh, ow, out_channels), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]
            patch = patch.reshape(n, oh, ow, groups, cg)
            wk = w[:, i, j, :].reshape(groups, out_channels // groups, cg)
            acc += np.einsum("nhwgc,goc->nhwgo", patch, wk).reshape(n, oh, ow, out_channels)
    return acc + (0 if bias is None else bias)


def _requantize(acc, x_t, w_t, y_t, activation):
    """float64 rescale, round, zero point, fused activation and dtype clamp: within 1 LSB of any engine."""
    multiplier = float(x_t.quant.scale) * np.asarray(w_t.quant.scale, np.float64) / float(y_t.quant.scale)
    y = np.round(acc * multiplier) + _zero_point(y_t.quant)
    info = np.iinfo(y_t.dtype)
    lo, hi = info.min, info.max
    if activation is not None:
        zy, sy = _zero_point(y_t.quant), float(y_t.quant.scale)
        if np.isfinite(activation[0]):
            lo = max(lo, zy + round(activation[0] / sy))
        if np.isfinite(activation[1]):
            hi = min(hi, zy + round(activation[1] / sy))
    return np.clip(y, lo, hi).astype(np.int64)


CONV_MODELS = [m for m in MODELS if m not in ("activations", "elementwise", "elementwise_pow2", "pools_pow2")]


@pytest.mark.parametrize("name", CONV_MODELS)
def test_nodes_reproduce_litert_reference_ops(name):
    graph = load_tflite(model_path(name))
    interpreter = litert_interpreter(model_path(name), reference=True, preserve=True)
    for detail, value in zip(interpreter.get_input_details(), random_inputs(interpreter, seed=7)):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    lite = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    env = {name: interpreter.get_tensor(index) for name, index in lite.items()}
    for node in reversed(graph.nodes):   # importer-made helper tensors: LiteRT's values, reshaped
        if node.op == "reshape" and node.inputs[0] not in env and node.outputs[0] in env:
            env[node.inputs[0]] = env[node.outputs[0]].reshape(graph.tensor(node.inputs[0]).shape)
        if node.op == "reshape" and node.outputs[0] not in env and node.inputs[0] in env:
            env[node.outputs[0]] = env[node.inputs[0]].reshape(node.attrs["shape"])
    checked = 0
    for node in graph.nodes:
        out_t = graph.tensor(node.outputs[0])
        ins = [graph.tensor(n) for n in node.inputs if n]
        x = env[node.inputs[0]]
        if node.op == "reshape":
            result, tolerance = x.reshape(node.attrs["shape"]), 0
        elif node.op in ("conv2d", "fully_connected"):
            w_t = ins[1]
            xz = x.astype(np.int64) - _zero_point(ins[0].quant)
            wz = w_t.data.astype(np.int64) - np.asarray(w_t.quant.zero_point).reshape(
                (-1,) + (1,) * (w_t.data.ndim - 1))
            bias = ins[2].data.astype(np.int64) if len(ins) > 2 else None
            if node.op == "conv2d":
                acc = _conv_accumulators(xz, wz, bias, node.attrs)
            else:
                acc = xz @ wz.T + (0 if bias is None else bias)
            result, tolerance = _requantize(acc, ins[0], w_t, out_t, node.attrs["activation"]), 1
        elif node.op == "pad":
            result = np.pad(x, node.attrs["pads"], constant_values=_zero_point(out_t.quant))
            tolerance = 0
            assert node.attrs["constant"] == 0.0
        elif node.op == "concat" and len({(float(t.quant.scale), _zero_point(t.quant)) for t in ins + [out_t]}) == 1:
            result, tolerance = np.concatenate([env[n] for n in node.inputs], axis=node.attrs["axis"]), 0
        elif node.op == "requantize" and float(ins[0].quant.scale) == float(out_t.quant.scale):
            # same scale, only the zero point moves (uint8 <-> int8 at the model's edges): exact
            shift = _zero_point(out_t.quant) - _zero_point(ins[0].quant)
            result, tolerance = x.astype(np.int64) + shift, 0
        elif node.op == "max_pool2d":
            top, left, bottom, right = node.attrs["padding"]
            info = np.iinfo(x.dtype)
            xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=info.min)
            (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
            oh, ow = out_t.shape[1:3]
            result = np.full(out_t.shape, info.min, np.int64)
            for i in range(kh):
                for j in range(kw):
                    result = np.maximum(result, xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :])
            tolerance = 0
        else:
            continue
        expected = env[node.outputs[0]]
        assert result.shape == expected.shape, node.name
        diff = np.abs(result.astype(np.int64) - expected.astype(np.int64))
        assert diff.max() <= tolerance, (node.name, node.source_op, int(diff.max()), int((diff > tolerance).sum()))
        checked += 1
    assert checked >= 1
