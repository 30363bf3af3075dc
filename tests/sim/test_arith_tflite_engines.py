"""hwsim.sim.arith_tflite == the real TFLite engines, element for element.

Every single-op model in tests/data/tflite_ops/ (made by tools/gen_tflite_single_ops.py)
runs through LiteRT with the reference kernels (BUILTIN_REF), LiteRT's optimised
builtin kernels without delegates (BUILTIN_WITHOUT_DEFAULT_DELEGATES), LiteRT's
default resolver (BUILTIN, with the XNNPACK delegate) and the TFLM Python
interpreter; the function that claims that engine must give the
same bits on every element.  Unary ops see all 256 int8 values, binary ops all
65 536 (a, b) pairs (or random full-range tensors when broadcasting).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwsim.graph.ir import QuantParams
from hwsim.sim import arith_tflite as at

litert = pytest.importorskip("ai_edge_litert.interpreter")
tflm_runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

DATA = Path(__file__).resolve().parents[1] / "data" / "tflite_ops"
CASES = json.loads((DATA / "cases.json").read_text())


def _run_litert(path: Path, inputs: list[np.ndarray], resolver) -> np.ndarray:
    interp = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    for detail, arr in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], arr)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def _run_tflm(path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    interp = tflm_runtime.Interpreter.from_file(str(path), arena_size=1 << 22)
    for i, arr in enumerate(inputs):
        interp.set_input(arr, i)
    interp.invoke()
    return np.asarray(interp.get_output(0)).copy()


def run_engine(engine: str, path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    if engine == "litert_ref":
        return _run_litert(path, inputs, litert.OpResolverType.BUILTIN_REF)
    if engine == "litert_opt":
        return _run_litert(path, inputs, litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if engine == "litert_xnnpack":
        return _run_litert(path, inputs, litert.OpResolverType.BUILTIN)
    return _run_tflm(path, inputs)


def _qp(entry: dict) -> QuantParams:
    return QuantParams(np.float32(entry["scale"][0]), np.int64(entry["zero_point"][0]))


def _inputs(case: dict, seed: int) -> list[np.ndarray]:
    """Exhaustive int8 coverage where the shape allows it, full-range random values otherwise."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(t["shape"]) for t in case["inputs"]]
    if case["op"] == "quantize_tanh_dequantize":
        # float inputs on and next to every quantisation tie (k + 1/2) * s, then random and out-of-range values
        s = np.float32(case["op_outputs"][0]["scale"][0])
        ties = ((np.arange(-140, 140) + np.float32(0.5)) * s).astype(np.float32)
        near = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
        n = shapes[0][1]
        x = np.concatenate([near, rng.uniform(-4, 4, size=n).astype(np.float32)])[:n]
        x[-(n % 8):] = ties[100:100 + n % 8]       # ties in the scalar tail after the blocks of 8 too
        return [x.reshape(shapes[0]).astype(np.float32)]
    all8 = np.arange(-128, 128, dtype=np.int8)
    if len(shapes) == 2 and shapes[0] == shapes[1] == (1, 65536):
        return [np.repeat(all8, 256).reshape(1, -1), np.tile(all8, 256).reshape(1, -1)]
    if shapes == [(1, 256)]:
        return [all8.reshape(1, 256)]
    arrays = [rng.integers(-128, 128, size=s, dtype=np.int8) for s in shapes]
    if case["op"] == "softmax" and shapes[0][0] >= 512:
        # rows on which the float-table and the fixed-point softmax disagree first (picked with hwsim's
        # two rules; the expected bits still come from the engines), then ordinary random rows
        qp, y_qp = _qp(case["inputs"][0]), _qp(case["output"])
        pool = rng.integers(-128, 128, size=(40 * shapes[0][0], shapes[0][1]), dtype=np.int8)
        split = np.any(at.tflite_lut_f32_softmax(pool, qp, y_qp) != at.tflite_reference_softmax(pool, qp, y_qp),
                       axis=1)
        return [np.concatenate([pool[split], pool[~split]])[:shapes[0][0]]]
    if case["op"] == "softmax":
        x = arrays[0]
        depth = x.shape[1]
        x[0] = 127                                   # all equal
        x[1] = -128
        x[1, depth // 2] = 127                       # one winner, the rest far below
        x[2] = np.resize(all8, depth)                # every distance from the max
        x[3] = rng.integers(100, 128, size=depth)    # a tight cluster: many near-equal exponentials
    return arrays


def _same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def hwsim_result(case: dict, engine: str, inputs: list[np.ndarray]) -> np.ndarray:
    op, attrs = case["op"], case["attrs"]
    qps = [_qp(t) for t in case["inputs"] if t["scale"]]
    y_qp = _qp(case["output"]) if case["output"]["scale"] else None
    if op == "quantize_tanh_dequantize":
        q_in = QuantParams(np.float32(case["op_outputs"][0]["scale"][0]), np.int64(case["op_outputs"][0]["zero_point"][0]))
        q_out = QuantParams(np.float32(case["op_outputs"][1]["scale"][0]), np.int64(case["op_outputs"][1]["zero_point"][0]))
        tanh = at.tflite_fixed_point_tanh if engine == "tflm" else at.tflite_lut_f32_tanh
        if engine == "litert_xnnpack":
            q = at.xnnpack_quantize(inputs[0], q_in)
        else:
            q = at.tflite_quantize(inputs[0], q_in, engine=engine)
        return at.tflite_dequantize(tanh(q, q_in, q_out), q_out)
    if engine == "litert_xnnpack" and op in ("add", "sub", "mul"):
        fn = {"add": at.xnnpack_fixed_point_add, "sub": at.xnnpack_fixed_point_sub, "mul": at.xnnpack_f32_mul}[op]
        return fn(inputs[0], qps[0], inputs[1], qps[1], y_qp, activation=attrs["activation"])
    if engine == "litert_xnnpack" and op == "mean":
        return at.xnnpack_f32_mean(inputs[0], qps[0], y_qp, attrs["axes"], attrs["keepdims"])
    if engine == "litert_xnnpack":          # ops XNNPACK leaves to (or computes like) the builtin kernels
        engine = "litert_opt"
    if op in ("add", "sub", "mul"):
        fn = {"add": at.tflite_fixed_point_add, "sub": at.tflite_fixed_point_sub,
              "mul": at.tflite_fixed_point_mul}[op]
        kwargs = {"engine": engine} if op == "mul" else {}
        return fn(inputs[0], qps[0], inputs[1], qps[1], y_qp, activation=attrs["activation"], **kwargs)
    if op == "mean":
        return at.tflite_fixed_point_mean(inputs[0], qps[0], y_qp, attrs["axes"], attrs["keepdims"],
                                          engine=engine)
    if op == "avg_pool2d":
        (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
        _, h, w, _ = inputs[0].shape
        if attrs["padding"] == "SAME":
            (pt, pb), (pl, pr) = _same_padding(h, kh, sh), _same_padding(w, kw, sw)
        else:
            pt = pb = pl = pr = 0
        return at.tflite_rounded_avg_pool2d(inputs[0], qps[0], y_qp, (kh, kw), (sh, sw), (pt, pl, pb, pr),
                                            activation=attrs.get("activation"))
    if op == "softmax":
        fn = at.tflite_lut_f32_softmax if engine == "litert_opt" else at.tflite_reference_softmax
        return fn(inputs[0], qps[0], y_qp, beta=attrs["beta"], axis=attrs["axis"])
    if op in ("logistic", "tanh"):
        kind = "tflite_fixed_point" if engine == "tflm" else "tflite_lut_f32"
        return at.SCHEMES[op][kind](inputs[0], qps[0], y_qp)
    if op == "hard_swish":
        return at.tflite_reference_hard_swish(inputs[0], qps[0], y_qp)
    raise AssertionError(f"no hwsim function for {op}")


def assert_same(expected: np.ndarray, got: np.ndarray, inputs: list[np.ndarray], label: str) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype, \
        f"{label}: hwsim gave {got.shape} {got.dtype}, engine {expected.shape} {expected.dtype}"
    bad = np.argwhere(got != expected)
    if bad.size:
        idx = tuple(bad[0])
        flat = [x.reshape(-1)[:8] for x in inputs]
        pytest.fail(f"{label}: {len(bad)} of {expected.size} elements differ; first at {idx}: "
                    f"engine {expected[idx]}, hwsim {got[idx]} (inputs start {flat})")


@pytest.mark.parametrize("engine", ["litert_ref", "litert_opt", "litert_xnnpack", "tflm"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_model_matches_engine(name: str, engine: str) -> None:
    case = CASES[name]
    for seed in range(3 if case["inputs"][0]["shape"] not in ([1, 256], [1, 65536], [1, 4093]) else 1):
        inputs = _inputs(case, seed)
        expected = run_engine(engine, DATA / name, inputs)
        got = hwsim_result(case, engine, inputs)
        assert_same(expected, got, inputs, f"{name} on {engine} (seed {seed})")


ENGINE_SPLITS = [
    ("mul_split.tflite", "litert_ref", "tflm"),
    ("logistic_split.tflite", "litert_ref", "tflm"),
    ("tanh_split.tflite", "litert_ref", "tflm"),
    ("softmax_d40_split.tflite", "litert_ref", "litert_opt"),
    ("mean_hw_keep_cal.tflite", "litert_ref", "litert_opt"),
    ("add_pot.tflite", "litert_ref", "litert_xnnpack"),
    ("sub_pot.tflite", "litert_ref", "litert_xnnpack"),
    ("mul_pot.tflite", "litert_ref", "litert_xnnpack"),
    ("mean_hw_pot.tflite", "litert_ref", "litert_xnnpack"),
    ("quantize_tanh_dequantize_cal.tflite", "litert_ref", "litert_opt"),
    ("quantize_tanh_dequantize_cal.tflite", "litert_opt", "litert_xnnpack"),
]


@pytest.mark.parametrize("name, engine_a, engine_b", ENGINE_SPLITS)
def test_engines_really_differ_here(name: str, engine_a: str, engine_b: str) -> None:
    """The per-engine variants are not interchangeable: these two engines disagree on this model.

    Together with test_single_op_model_matches_engine (each engine == its own
    variant) this shows each variant is needed for its engine.
    """
    case = CASES[name]
    differ = 0
    for seed in range(3):
        inputs = _inputs(case, seed)
        differ += int(np.sum(run_engine(engine_a, DATA / name, inputs) != run_engine(engine_b, DATA / name, inputs)))
    assert differ > 0, f"{name}: {engine_a} and {engine_b} agree everywhere; the split case lost its point"
