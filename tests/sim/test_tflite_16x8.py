"""16x8 (int16 activations, int8 weights) MEAN and FULLY_CONNECTED == the TFLite engines.

MEAN: ``arith_tflite.tflite_fixed_point_mean`` on int16 == a pure-Python-int oracle of
TFLite's ``QuantizedMeanOrSum`` (written here from the C++ formula) and == every engine
(LiteRT reference, optimised, default/XNNPACK, TFLM) on the single-op models of
tests/data/tflite_16x8/ (tools/gen_tflite_16x8_ops.py), with full-range and extreme inputs.

FULLY_CONNECTED: hwsim.simulate on the 16x8 models == each engine; LiteRT rounds
(double) acc * s_in * s_w / s_out while TFLM uses the int64 MultiplyByQuantizedMultiplier,
and the models hold inputs on which the two disagree.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import edge_ints

import hwsim
from hwsim.graph.ir import QuantParams
from hwsim.oracle import tflite_ops as oracle
from hwsim.sim import arith_tflite as at

DATA = Path(__file__).resolve().parents[1] / "data" / "tflite_16x8"
MEANS = sorted(DATA.glob("mean16_*.tflite"))
FCS = sorted(DATA.glob("fc16_*.tflite")) + [DATA.parent / "tflite" / n for n in ("conv16x8.tflite",
                                                                               "conv16x8_pow2.tflite")]
I16 = np.dtype(np.int16)


def qp(scale: float) -> QuantParams:
    return QuantParams(np.float32(scale), np.int64(0))


# --------------------------------------------------------------------------------------------
# the formula, by hand and by a pure-Python-int oracle
# --------------------------------------------------------------------------------------------

def test_int16_mean_hand_vectors() -> None:
    # s_x / s_y = 2: QuantizeMultiplier(2.0) = (2^30, 2); n = 3 -> k = 1, M' = 2^31 // 3 = 715827882, e' = 1.
    # sum 3004: SRDHM(6008, M') = (6008 * 715827882 + 2^30) / 2^31 = 2003.17 -> 2003 (exact: 2002.67);
    # sum -3004: (-6008 * 715827882 + 1 - 2^30) / 2^31 = -2003.17 -> -2003 (C division truncates)
    x = np.array([[1000, 1001, 1003], [-1000, -1001, -1003]], dtype=np.int16)
    y = at.tflite_fixed_point_mean(x, qp(2.0**-12), qp(2.0**-13), axes=[1], out_dtype=np.int16)
    assert y.dtype == I16
    np.testing.assert_array_equal(y, [2003, -2003])
    # s_x = s_y, n = 2: (M, e) = (2^30, 1), k = 1 -> M' = 2^30, e' = 0: SRDHM(sum, 2^30) = sum / 2 with the
    # gemmlowp nudge: 1.5 -> 2, -1.5 -> (-3 * 2^30 + 1 - 2^30) / 2^31 = -1.99.. -> -1
    x = np.array([[1, 2], [-1, -2]], dtype=np.int16)
    np.testing.assert_array_equal(at.tflite_fixed_point_mean(x, qp(0.5), qp(0.5), [1], out_dtype=np.int16), [2, -1])
    # s_x / s_y = 2, n = 4, all 32767: k = 2, M' = 2^30, e' = 0 -> SRDHM(131068, 2^30) = 65534 -> clamp 32767
    x = np.array([[32767] * 4, [-32768] * 4], dtype=np.int16)
    y = at.tflite_fixed_point_mean(x, qp(2.0**-12), qp(2.0**-13), [1], out_dtype=np.int16)
    np.testing.assert_array_equal(y, [32767, -32768])


def test_int16_mean_sum_wraps_at_32_bits() -> None:
    # 65540 * 32767 = 2147549180 wraps to -2147418116; s_x = s_y: (2^30, 1), n = 65540 -> k = 16,
    # M' = 2^46 // 65540 = 1073676291, e' = -15: MBQM(-2147418116) = -32765 (the engines give it too)
    x = np.full((1, 65540), 32767, dtype=np.int16)
    np.testing.assert_array_equal(at.tflite_fixed_point_mean(x, qp(1.0), qp(1.0), [1], out_dtype=np.int16),
                                  [-32765])


def _quantize_multiplier(d: Fraction) -> tuple[int, int]:
    """TFLite QuantizeMultiplier of a positive double d, exactly: d = q * 2^e, q in [0.5, 1), M = round(q * 2^31)."""
    e = math.floor(math.log2(d)) + 1
    while d / Fraction(2) ** e >= 1:
        e += 1
    while d / Fraction(2) ** e < Fraction(1, 2):
        e -= 1
    scaled = d / Fraction(2) ** e * (1 << 31)
    m = math.floor(scaled + Fraction(1, 2))              # std::round: half away (scaled > 0)
    if m == 1 << 31:
        m, e = m // 2, e + 1
    return m, e


def _oracle_mean(rows: list[list[int]], s_x: float, s_y: float) -> list[int]:
    """QuantizedMeanOrSum (mean) over each row, one Python int at a time, zero points 0."""
    d = Fraction(float(np.float32(s_x))) / Fraction(float(np.float32(s_y)))   # (double) s_x / (double) s_y
    m, e = _quantize_multiplier(d)
    out = []
    for row in rows:
        n = len(row)
        k = min(n.bit_length() - 1, 32, 31 + e)          # 63 - clz(n), clamped as the C++ does
        m2 = (m << k) // n
        total = oracle.wrap32(sum(row))
        out.append(max(-32768, min(32767, oracle.mbqm(total, m2, e - k))))
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.integers(1, 70), st.data(),
       st.sampled_from([(2.0**-12, 2.0**-12), (2.0**-12, 2.0**-13), (9.155e-5, 3.414e-5), (3.0e-5, 9.0e-4),
                        (2.0**-10, 2.0**-15), (1.0, 1.0 / 3.0)]))
def test_int16_mean_matches_the_oracle(rows: int, n: int, data, scales) -> None:
    vals = data.draw(st.lists(edge_ints(16), min_size=rows * n, max_size=rows * n))
    x = np.array(vals, dtype=np.int16).reshape(rows, n)
    want = _oracle_mean(x.astype(int).tolist(), *scales)
    for engine in at.ENGINES:
        got = at.tflite_fixed_point_mean(x, qp(scales[0]), qp(scales[1]), [1], out_dtype=np.int16, engine=engine)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(at.xnnpack_f32_mean(x, qp(scales[0]), qp(scales[1]), [1], out_dtype=np.int16),
                                  want)


def test_int16_mean_refuses_what_the_engines_refuse() -> None:
    x = np.zeros((1, 4), dtype=np.int16)
    with pytest.raises(ValueError, match="x_qp: int16 MEAN needs zero point 0"):
        at.tflite_fixed_point_mean(x, QuantParams(np.float32(0.1), np.int64(3)), qp(0.1), [1], out_dtype=np.int16)
    with pytest.raises(ValueError, match="y_qp: int16 MEAN needs zero point 0"):
        at.xnnpack_f32_mean(x, qp(0.1), QuantParams(np.float32(0.1), np.int64(-1)), [1], out_dtype=np.int16)
    with pytest.raises(ValueError, match="out_dtype: expected one of int16, got int8"):
        at.tflite_fixed_point_mean(x, qp(0.1), qp(0.1), [1], out_dtype=np.int8)
    with pytest.raises(ValueError, match="out_dtype: expected one of int8, got int16"):
        at.tflite_fixed_point_mean(x.astype(np.int8), qp(0.1), qp(0.1), [1], out_dtype=np.int16)


# --------------------------------------------------------------------------------------------
# the engines
# --------------------------------------------------------------------------------------------

litert = pytest.importorskip("ai_edge_litert.interpreter")
RESOLVERS = {"litert_ref": "BUILTIN_REF", "litert_opt": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "BUILTIN"}


def _run(path: Path, x: np.ndarray, engine: str) -> np.ndarray:
    if engine == "tflm":
        runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
        it = runtime.Interpreter.from_file(str(path), arena_size=1 << 22)
        it.set_input(x, 0)
        it.invoke()
        return np.asarray(it.get_output(0))
    it = litert.Interpreter(model_path=str(path),
                            experimental_op_resolver_type=getattr(litert.OpResolverType, RESOLVERS[engine]))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _draws(shape, rng) -> list[np.ndarray]:
    """Full-range random values, then the extremes (every element at INT16_MAX / INT16_MIN, mixed)."""
    full = [rng.integers(-32768, 32768, shape).astype(np.int16) for _ in range(4)]
    edges = [np.full(shape, 32767, np.int16), np.full(shape, -32768, np.int16),
             rng.choice(np.array([-32768, -32767, -1, 0, 1, 32766, 32767], np.int16), shape)]
    return full + edges


def _mean_model(path: Path):
    it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    axes_index = [t["index"] for t in it.get_tensor_details() if t["dtype"] == np.int32][0]
    axes = [int(a) for a in it.get_tensor(axes_index)]
    for d in (i, o):                                     # 16x8 activations are symmetric
        assert not d["quantization_parameters"]["zero_points"].any()
    i_qp, o_qp = (qp(float(d["quantization_parameters"]["scales"][0])) for d in (i, o))
    return tuple(i["shape"]), axes, len(o["shape"]) == len(i["shape"]), i_qp, o_qp


@pytest.mark.parametrize("engine", ["litert_ref", "litert_opt", "tflm", "xnnpack"])
@pytest.mark.parametrize("path", MEANS, ids=[p.name for p in MEANS])
def test_int16_mean_function_matches_the_engine(path: Path, engine: str) -> None:
    shape, axes, keep, x_qp, y_qp = _mean_model(path)
    rng = np.random.default_rng(len(path.name))
    for x in _draws(shape, rng):
        want = _run(path, x, engine)
        if engine == "xnnpack":
            got = at.xnnpack_f32_mean(x, x_qp, y_qp, axes, keep, out_dtype=np.int16)
        else:
            got = at.tflite_fixed_point_mean(x, x_qp, y_qp, axes, keep, out_dtype=np.int16, engine=engine)
        assert got.dtype == want.dtype == I16
        np.testing.assert_array_equal(got, want)


TARGETS = {"tflite-reference": "litert_ref", "xnnpack": "xnnpack", "tflm": "tflm"}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("path", FCS, ids=[p.name for p in FCS])
def test_16x8_models_simulate_bit_exact(path: Path, target: str) -> None:
    graph = hwsim.load_model(path)
    (name,) = graph.inputs
    shape = tuple(1 if d is None else d for d in graph.tensors[name].shape)
    rng = np.random.default_rng(len(path.name))
    for x in _draws(shape, rng) + _draws(shape, rng)[:4]:
        want = _run(path, x, TARGETS[target])
        (got,) = hwsim.simulate(graph, target, {name: x}).outputs.values()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("model", ["fc16_b8_cal.tflite", "conv16x8.tflite"])
def test_litert_and_tflm_16x8_fully_connected_differ(model: str) -> None:
    # the reason for the per-engine 16x8 FULLY_CONNECTED requantisation: on these draws the engines disagree
    path = next(p for p in FCS if p.name == model)
    graph = hwsim.load_model(path)
    (name,) = graph.inputs
    shape = tuple(graph.tensors[name].shape)
    rng = np.random.default_rng(7)
    differ = sum(int(np.sum(_run(path, x, "litert_ref") != _run(path, x, "tflm")))
                 for x in [rng.integers(-32768, 32768, shape).astype(np.int16) for _ in range(30)])
    assert differ > 0
