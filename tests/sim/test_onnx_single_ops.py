"""Single-op ONNX models (onnx.helper) read by hwsim.load_model and run by hwsim.simulate on
onnxruntime-x86 == onnxruntime's default session, element for element.  Scales alternate between
random and powers of two (ties at .5 are then common); every 8-bit input value appears."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import hwsim

from . import ort_models as om

F32 = np.float32


def _run_both(tmp_path, nodes, inputs, outputs, inits, feeds):
    model = om.model(nodes, inputs, outputs, inits)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    sess = om.session(nodes, inputs, [(o[0], o[1]) for o in outputs], inits)
    want = sess.run(None, feeds)
    graph = hwsim.load_model(path)
    got = hwsim.simulate(graph, "onnxruntime-x86", feeds).outputs
    return want, [got[o[0]] for o in outputs]


def _assert_same(want, got):
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind == "f":
            np.testing.assert_array_equal(g.view(np.int32), w.view(np.int32))
        else:
            np.testing.assert_array_equal(g, w)


def _scales(rng, n, pow2):
    if pow2:
        return [F32(2.0 ** -int(rng.integers(2, 8))) for _ in range(n)]
    return [F32(rng.uniform(0.004, 0.15)) for _ in range(n)]


def _qparams(rng, dtype, n):
    info = np.iinfo(dtype)
    return [int(v) for v in rng.integers(info.min, info.max + 1, n)]


CASES = [(dt, pow2, seed) for dt in (np.uint8, np.int8) for pow2 in (False, True) for seed in range(3)]
IDS = [f"{np.dtype(d).name}-{'pow2' if p else 'rand'}-{s}" for d, p, s in CASES]


@pytest.mark.parametrize("dtype, pow2, seed", CASES, ids=IDS)
def test_qlinear_mul(tmp_path, dtype, pow2, seed):
    rng = np.random.default_rng(seed)
    sa, sb, sc = _scales(rng, 3, pow2)
    za, zb, zc = _qparams(rng, dtype, 3)
    inits = [om.scalar("sa", sa, F32), om.scalar("sb", sb, F32), om.scalar("sc", sc, F32),
             om.scalar("za", za, dtype), om.scalar("zb", zb, dtype), om.scalar("zc", zc, dtype)]
    node = helper.make_node("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    full = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    a = np.ascontiguousarray(np.broadcast_to(full[:, None], (256, 256)))
    _assert_same(*_run_both(tmp_path, [node], [("a", dtype, [256, 256]), ("b", dtype, [1, 256])],
                            [("y", dtype, [256, 256])], inits, {"a": a, "b": full[None, :]}))


@pytest.mark.parametrize("dtype, pow2, seed", CASES, ids=IDS)
@pytest.mark.parametrize("op", ["QLinearSigmoid", "QLinearLeakyRelu"])
def test_qlinear_lookup_ops(tmp_path, op, dtype, pow2, seed):
    rng = np.random.default_rng(seed)
    sx, sy = _scales(rng, 2, pow2)
    if op == "QLinearSigmoid" and seed == 0:
        sy = F32(1 / 256)
    zx, zy = _qparams(rng, dtype, 2)
    inits = [om.scalar("sx", sx, F32), om.scalar("zx", zx, dtype), om.scalar("sy", sy, F32), om.scalar("zy", zy, dtype)]
    attrs = {"alpha": float(rng.uniform(0.01, 0.3))} if op == "QLinearLeakyRelu" else {}
    node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft", **attrs)
    x = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype).reshape(1, 4, 8, 8)
    _assert_same(*_run_both(tmp_path, [node], [("x", dtype, [1, 4, 8, 8])], [("y", dtype, [1, 4, 8, 8])], inits,
                            {"x": x}))


POOLS = [((3, 3), (1, 1), (1, 1, 1, 1), 0), ((2, 2), (2, 2), (0, 0, 0, 0), 0), ((3, 3), (2, 2), (1, 1, 1, 1), 1),
         ((5, 3), (1, 2), (2, 1, 2, 1), 0), ((7, 9), (1, 1), (0, 0, 0, 0), 0)]


@pytest.mark.parametrize("pool", POOLS, ids=[str(p) for p in POOLS])
@pytest.mark.parametrize("dtype, pow2, seed", CASES[::2], ids=IDS[::2])
def test_qlinear_average_pool(tmp_path, pool, dtype, pow2, seed):
    kernel, stride, pads, cip = pool
    rng = np.random.default_rng(seed)
    sx, sy = _scales(rng, 2, pow2)
    zx, zy = _qparams(rng, dtype, 2)
    inits = [om.scalar("sx", sx, F32), om.scalar("zx", zx, dtype), om.scalar("sy", sy, F32), om.scalar("zy", zy, dtype)]
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft",
                            kernel_shape=list(kernel), strides=list(stride), count_include_pad=cip,
                            pads=[pads[0], pads[1], pads[2], pads[3]])
    x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (2, 6, 7, 9)).astype(dtype)
    oh = (7 + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    ow = (9 + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    _assert_same(*_run_both(tmp_path, [node], [("x", dtype, [2, 6, 7, 9])], [("y", dtype, [2, 6, oh, ow])], inits,
                            {"x": x}))


@pytest.mark.parametrize("dtype, pow2, seed", CASES, ids=IDS)
def test_qlinear_concat_requantises_each_input(tmp_path, dtype, pow2, seed):
    rng = np.random.default_rng(seed)
    s0, s1, sy = _scales(rng, 3, pow2)
    z0, z1, zy = _qparams(rng, dtype, 3)
    inits = [om.scalar("sy", sy, F32), om.scalar("zy", zy, dtype), om.scalar("s0", s0, F32), om.scalar("z0", z0, dtype),
             om.scalar("s1", s1, F32), om.scalar("z1", z1, dtype), om.scalar("s2", sy, F32), om.scalar("z2", zy, dtype)]
    names = ["sy", "zy", "x0", "s0", "z0", "x1", "s1", "z1", "x2", "s2", "z2"]
    node = helper.make_node("QLinearConcat", names, ["y"], domain="com.microsoft", axis=1)
    full = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    feeds = {"x0": full.reshape(1, 4, 8, 8), "x1": full[::-1].copy().reshape(1, 4, 8, 8),
             "x2": rng.permutation(full).reshape(1, 4, 8, 8)}
    _assert_same(*_run_both(tmp_path, [node], [(k, dtype, [1, 4, 8, 8]) for k in feeds], [("y", dtype, [1, 12, 8, 8])],
                            inits, feeds))


def test_conv_integer_and_matmul_integer_give_int32(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8)
    b = rng.integers(-127, 128, (12, 5)).astype(np.int8)
    inits = [om.const("w", w), om.scalar("xz", 131, np.uint8), om.const("b", b), om.scalar("az", 7, np.uint8)]
    nodes = [helper.make_node("ConvInteger", ["x", "w", "xz"], ["c"], pads=[1, 0, 1, 2], strides=[2, 1]),
             helper.make_node("MatMulInteger", ["a", "b", "az"], ["m"])]
    feeds = {"x": rng.integers(0, 256, (1, 3, 9, 8)).astype(np.uint8),
             "a": rng.integers(0, 256, (4, 12)).astype(np.uint8)}
    _assert_same(*_run_both(tmp_path, nodes, [("x", np.uint8, [1, 3, 9, 8]), ("a", np.uint8, [4, 12])],
                            [("c", np.int32, [1, 6, 5, 10]), ("m", np.int32, [4, 5])], inits, feeds))


@pytest.mark.parametrize("float_out", [False, True])
def test_qgemm(tmp_path, float_out):
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (10, 16)).astype(np.int8)          # transB = 1: [N, K]
    bias = rng.integers(-4000, 4000, 10).astype(np.int32)
    inits = [om.scalar("sa", F32(0.037), F32), om.scalar("za", 121, np.uint8), om.const("w", w),
             om.const("sw", rng.uniform(0.002, 0.02, 10).astype(F32)), om.const("zw", np.zeros(10, np.int8)),
             om.const("c", bias), om.scalar("sy", F32(0.21), F32), om.scalar("zy", 99, np.uint8)]
    ins = ["a", "sa", "za", "w", "sw", "zw", "c"] + ([] if float_out else ["sy", "zy"])
    node = helper.make_node("QGemm", ins, ["y"], domain="com.microsoft", transB=1)
    a = rng.integers(0, 256, (7, 16)).astype(np.uint8)
    out_dtype = F32 if float_out else np.uint8
    _assert_same(*_run_both(tmp_path, [node], [("a", np.uint8, [7, 16])], [("y", out_dtype, [7, 10])], inits, {"a": a}))


def test_qlinear_matmul_runtime_operands(tmp_path):
    rng = np.random.default_rng(4)
    inits = [om.scalar("sa", F32(0.05), F32), om.scalar("za", 100, np.uint8), om.scalar("sb", F32(0.03), F32),
             om.scalar("zb", 140, np.uint8), om.scalar("sy", F32(0.5), F32), om.scalar("zy", 128, np.uint8)]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    feeds = {"a": rng.integers(0, 256, (2, 5, 9)).astype(np.uint8),
             "b": rng.integers(0, 256, (2, 9, 4)).astype(np.uint8)}
    _assert_same(*_run_both(tmp_path, [node], [("a", np.uint8, [2, 5, 9]), ("b", np.uint8, [2, 9, 4])],
                            [("y", np.uint8, [2, 5, 4])], inits, feeds))


def test_qdq_group_with_relu6_and_maxpool(tmp_path):
    """DQ -> Conv -> Clip(0, 6) -> Q -> DQ -> MaxPool -> Q: onnxruntime fuses it into integer ops."""
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    sw = rng.uniform(0.002, 0.01, 8).astype(F32)
    inits = [om.scalar("sx", F32(0.02), F32), om.scalar("zx", 128, np.uint8), om.const("w", w),
             om.const("sw", sw), om.const("zw", np.zeros(8, np.int8)),
             om.const("b", rng.integers(-2000, 2000, 8).astype(np.int32)),
             om.const("sb", (F32(0.02) * sw).astype(F32)),
             om.const("zb", np.zeros(8, np.int32)),
             om.scalar("sy", F32(6 / 255), F32), om.scalar("zy", 0, np.uint8),
             om.scalar("zero", F32(0), F32), om.scalar("six", F32(6), F32)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], axis=0),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"], axis=0),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "zero", "six"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["rf"]),
             helper.make_node("MaxPool", ["rf"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "sy", "zy"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "sy", "zy"], ["y"])]
    for seed in range(4):
        x = np.random.default_rng(seed).normal(0, 1.2, (1, 3, 10, 10)).astype(F32)
        _assert_same(*_run_both(tmp_path, nodes, [("x", F32, [1, 3, 10, 10])], [("y", F32, [1, 8, 5, 5])], inits,
                                {"x": x}))
