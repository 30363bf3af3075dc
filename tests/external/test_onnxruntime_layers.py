"""hwsim's kernels with the `onnxruntime-x86` profile against onnxruntime itself.

Single-op QLinearMatMul / QLinearConv models are built in memory and run by
onnxruntime (the external oracle); hwsim computes the same layer from the
integer arrays, the scales and the target profile alone.  Scales include
powers of two, so many products land exactly on rounding ties.
"""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from hwsim.kernels import conv2d, gemm  # noqa: E402
from hwsim.layer_specs import layer_specs  # noqa: E402


def _session(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _init(name, arr):
    return helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape, arr.flatten().tolist())


SCALE_CASES = [
    # (x_scale, w_scale, y_scale): ties-heavy powers of two, then ordinary values
    (0.5, 0.25, 4.0),
    (2.0**-4, 2.0**-6, 2.0**-3),
    (0.0123, 0.0031, 0.0857),
    (0.02, 0.007, 0.31),
]


@pytest.mark.parametrize("xs, ws, ys", SCALE_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_qlinearmatmul_matches_onnxruntime(xs, ws, ys, seed):
    rng = np.random.default_rng(seed)
    m, k, n = 23, 61, 19
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    b = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    za, zy = 131, 117
    inits = [
        _init("a_scale", np.array(xs, np.float32)), _init("a_zp", np.array(za, np.uint8)),
        _init("b", b), _init("b_scale", np.array(ws, np.float32)), _init("b_zp", np.array(0, np.int8)),
        _init("y_scale", np.array(ys, np.float32)), _init("y_zp", np.array(zy, np.uint8)),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [m, n])], inits,
    )
    expected = _session(graph).run(None, {"a": a})[0]

    spec = layer_specs("onnxruntime-x86", "matmul", input_scale=xs, weight_scale=ws, output_scale=ys,
                       output_zero_point=zy)
    got = gemm(a, np.ascontiguousarray(b.T), a_zero_point=za, accum=spec.accum, requant=spec.requant)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("xs, ws, ys", SCALE_CASES)
@pytest.mark.parametrize(
    "shape",
    [
        # (C, H, W, O, KH, KW, stride, pads(top, left, bottom, right), group)
        (5, 9, 11, 7, 3, 3, 1, (1, 1, 1, 1), 1),
        (8, 10, 10, 12, 3, 3, 2, (0, 1, 1, 0), 1),
        (6, 7, 8, 6, 3, 3, 1, (1, 1, 1, 1), 6),     # depthwise
        (4, 6, 6, 8, 1, 1, 1, (0, 0, 0, 0), 2),     # grouped 1x1
    ],
)
def test_qlinearconv_per_channel_matches_onnxruntime(xs, ws, ys, shape):
    c, h, w_, o, kh, kw, stride, pads, group = shape
    rng = np.random.default_rng(c * 1000 + o)
    x = rng.integers(0, 256, size=(1, c, h, w_), dtype=np.uint8)
    wt = rng.integers(-127, 128, size=(o, c // group, kh, kw), dtype=np.int8)
    w_scales = (ws * (1 + np.arange(o) % 3)).astype(np.float32)   # per channel, powers of two stay exact for 1 and 2
    bias = rng.integers(-5000, 5000, size=o, dtype=np.int32)
    zx, zy = 120, 131
    inits = [
        _init("x_scale", np.array(xs, np.float32)), _init("x_zp", np.array(zx, np.uint8)),
        _init("w", wt), _init("w_scale", w_scales), _init("w_zp", np.zeros(o, np.int8)),
        _init("y_scale", np.array(ys, np.float32)), _init("y_zp", np.array(zy, np.uint8)), _init("bias", bias),
    ]
    node = helper.make_node(
        "QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "bias"], ["y"],
        strides=[stride, stride], pads=[pads[0], pads[1], pads[2], pads[3]], group=group,
    )
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits,
    )
    expected = _session(graph).run(None, {"x": x})[0]

    op = "depthwise_conv2d" if group == c and group > 1 else "conv2d"
    spec = layer_specs("onnxruntime-x86", op, input_scale=xs, weight_scale=w_scales, output_scale=ys,
                       output_zero_point=zy)
    got = conv2d(
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(wt.transpose(0, 2, 3, 1)),
        stride=stride, padding=pads, groups=group, x_zero_point=zx, bias=bias,
        accum=spec.accum, requant=spec.requant,
    )
    np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), expected)


def _rows_with_sums(targets: np.ndarray, k: int) -> np.ndarray:
    """uint8 rows a with 127 * sum(a[:-1]) + a[-1] == target (weights 127, ..., 127, 1)."""
    rows = np.zeros((targets.size, k), dtype=np.uint8)
    for r, t in enumerate(targets):
        s, last = divmod(int(t), 127)
        full, rest = divmod(s, 255)
        assert full < k - 1
        rows[r, :full] = 255
        rows[r, full] = rest
        rows[r, -1] = last
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qlinearmatmul_accumulators_beyond_2_pow_24(seed):
    # Accumulators in [2^25, 2^26) one or two units off an exact .5 tie of acc * 2^-18: float32(acc)
    # (4-unit spacing there) moves them onto the tie, so onnxruntime's fl32(acc) * scale then rounds
    # to even where exact arithmetic would not (SEMANTICS 8.4).  Targets are built exactly: weights
    # 127, ..., 127, 1 and activation rows chosen to sum to them.
    rng = np.random.default_rng(100 + seed)
    k, m = 2101, 64
    j = rng.integers(0, 120, size=m)
    delta = rng.choice([-2, -1, 1, 2], size=m)
    targets = (1 << 25) + (1 << 16) * (2 * j + 1) + delta
    a = _rows_with_sums(targets, k)
    b = np.full((k, 3), 127, dtype=np.int8)
    b[-1, :] = 1
    xs, ws, ys = 2.0**-3, 2.0**-4, 2.0**11          # xs * ws / ys = 2^-18 exactly
    inits = [
        _init("a_scale", np.array(xs, np.float32)), _init("a_zp", np.array(0, np.uint8)),
        _init("b", b), _init("b_scale", np.array(ws, np.float32)), _init("b_zp", np.array(0, np.int8)),
        _init("y_scale", np.array(ys, np.float32)), _init("y_zp", np.array(0, np.uint8)),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [m, 3])], inits,
    )
    expected = _session(graph).run(None, {"a": a})[0]
    spec = layer_specs("onnxruntime-x86", "matmul", input_scale=xs, weight_scale=ws, output_scale=ys)
    res = gemm(a, np.ascontiguousarray(b.T), accum=spec.accum, requant=spec.requant, return_accumulators=True)
    np.testing.assert_array_equal(res.accumulators[:, 0], targets)
    exact = np.where(delta > 0, 128 + j + 1, 128 + j)       # exact rounding of acc * 2^-18
    assert np.any(expected[:, 0] != exact)                  # the float32 conversion matters here
    np.testing.assert_array_equal(res.output, expected)
