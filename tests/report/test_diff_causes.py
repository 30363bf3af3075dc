"""hwsim.report.diff on hand-built one- and two-layer graphs where exactly one stage differs between two targets.

Every expected count is computed here, independently of hwsim, from the arithmetic written out with Python ints
(SEMANTICS.md 1.4-1.7, 2.3, 3.2, 3.6): which outputs the two targets give differently, and which of them sit on an
exact .5 tie.  The diff must find the same elements and name the stage.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor
from hwsim.report.diff import diff_targets

F32 = np.float32


def _qp(scale, zero_point=0, axis=None):
    return QuantParams(np.array(scale, F32), np.array(zero_point, np.int64), axis)


def _fc_graph(w, x_q, w_q, y_q, x_dtype=np.int8, y_dtype=np.int8):
    o, k = w.shape
    tensors = {"x": Tensor("x", (None, k), np.dtype(x_dtype), x_q),
               "w": Tensor("w", w.shape, np.dtype(np.int8), w_q, w),
               "y": Tensor("y", (None, o), np.dtype(y_dtype), y_q)}
    nodes = [Node("fully_connected", ["x", "w"], ["y"], {}, name="fc", source_op="FullyConnected")]
    return Graph(tensors, nodes, ["x"], ["y"], kind="qdq")


def _conv1x1_layers(weights, scales):
    """A chain of 1x1 convolutions on int8 NHWC tensors; ``scales`` = [s_x, (s_w, s_y) per layer]."""
    s_x = scales[0]
    c = weights[0].shape[1]
    tensors = {"x": Tensor("x", (None, 2, 2, c), np.dtype(np.int8), _qp(s_x))}
    nodes, prev = [], "x"
    for i, (w, (s_w, s_y)) in enumerate(zip(weights, scales[1:])):
        o = w.shape[0]
        tensors[f"w{i}"] = Tensor(f"w{i}", (o, 1, 1, w.shape[1]), np.dtype(np.int8), _qp(s_w),
                                  np.ascontiguousarray(w.reshape(o, 1, 1, -1)))
        tensors[f"y{i}"] = Tensor(f"y{i}", (None, 2, 2, o), np.dtype(np.int8), _qp(s_y))
        nodes.append(Node("conv2d", [prev, f"w{i}"], [f"y{i}"],
                          {"stride": (1, 1), "dilation": (1, 1), "padding": (0, 0, 0, 0), "groups": 1},
                          name=f"conv{i}", source_op="Conv"))
        prev = f"y{i}"
    return Graph(tensors, nodes, ["x"], [prev], kind="qdq")


# ---- the arithmetic, written out (SEMANTICS.md) --------------------------------------------------


def _half_away(r: Fraction) -> int:
    return math.floor(r + Fraction(1, 2)) if r >= 0 else -math.floor(-r + Fraction(1, 2))


def _half_even(r: Fraction) -> int:
    lo = math.floor(r)
    d = r - lo
    return lo + (d > Fraction(1, 2) or (d == Fraction(1, 2) and lo % 2 == 1))


def _srdhm(a: int, m: int) -> int:                       # 1.4: nudge, then C division (truncation)
    p = a * m
    num = p + ((1 << 30) if p >= 0 else 1 - (1 << 30))
    return abs(num) // (1 << 31) * (1 if num >= 0 else -1)


def _double_rounding(acc: int, m: int, shift: int) -> Fraction:   # 1.6 with shift <= 0: value before the last rounding
    return Fraction(_srdhm(acc, m), 1 << -shift)


def _single_rounding(acc: int, m: int, shift: int) -> int:        # 1.7
    t = 31 - shift
    return (acc * m + (1 << (t - 1))) >> t


def _tie(r: Fraction) -> bool:
    return r - math.floor(r) == Fraction(1, 2)


def _clamp8(v: int) -> int:
    return max(-128, min(127, v))


def _only(layer, kind):
    found = [c for c in layer.causes if c.kind == kind]
    assert len(found) == 1, [(c.kind, c.elements) for c in layer.causes]
    return found[0]


# ---- (a) tie rounding ------------------------------------------------------------------------------


def test_tie_rounding_half_away_vs_half_even(tmp_path):
    # tflite-reference's FULLY_CONNECTED rounds (double) acc * d half away from zero; the profile below is the
    # same target rounding half to even.  d = 0.5 * 0.25 / 0.25 = 0.5, so every odd accumulator is a .5 tie.
    profile = tmp_path / "half-even.yaml"
    profile.write_text("schema_version: 1\nname: fc-half-even\nsummary: tflite-reference, FC ties to even\n"
                       "base: tflite-reference\nops:\n  fully_connected:\n"
                       "    requantize: {scheme: float64_round, rounding: half_even}\n")
    rng = np.random.default_rng(1)
    w = rng.integers(-5, 6, (6, 8)).astype(np.int8)
    x = rng.integers(-5, 6, (5, 8)).astype(np.int8)
    g = _fc_graph(w, _qp(0.5), _qp(0.25), _qp(0.25))
    acc = x.astype(np.int64) @ w.T.astype(np.int64)           # |acc| <= 200: no clamping at /2
    a = np.vectorize(lambda v: _half_away(Fraction(int(v), 2)))(acc)
    b = np.vectorize(lambda v: _half_even(Fraction(int(v), 2)))(acc)
    expected = int(np.count_nonzero(a != b))
    assert expected > 0

    result = diff_targets(g, "tflite-reference", profile, {"x": x})
    (layer,) = result.layers
    assert (layer.differ, layer.introduced, layer.max_lsb, layer.status) == (expected, expected, 1, "introduced")
    cause = _only(layer, "tie_rounding")
    assert (cause.stage, cause.elements, cause.max_lsb) == ("requantize", expected, 1)
    ex = cause.example
    assert ex["acc_a"] % 2 != 0 and ex["a"] == a[tuple(ex["index"])] and ex["b"] == b[tuple(ex["index"])]
    assert layer.histogram == {"1": expected}
    assert result.first_divergence is layer
    assert "half away from zero" in result.summary() and "half to even" in result.summary()


# ---- (b) double vs single rounding -----------------------------------------------------------------


def _double_vs_single_case(rng):
    # d = 0.046875 * 0.0625 / 1.0 = 0.75 * 2^-8 exactly: M = 0.75 * 2^31, shift -8 (frexp), on both targets
    w = rng.integers(-20, 21, (8, 16)).astype(np.int8)
    x = rng.integers(-20, 21, (64, 2, 2, 16)).astype(np.int8)
    return w, x, [0.046875, (0.0625, 1.0)], 1610612736, -8


def test_double_vs_single_rounding_tflite_reference_vs_neon_sdot():
    w, x, scales, m, shift = _double_vs_single_case(np.random.default_rng(2))
    g = _conv1x1_layers([w], scales)
    acc = (x.reshape(-1, 16).astype(np.int64) @ w.T.astype(np.int64)).reshape(64, 2, 2, 8)
    n_double = n_tie = 0
    for v in acc.reshape(-1).tolist():
        a = _clamp8(_half_away(_double_rounding(v, m, shift)))
        b = _clamp8(_single_rounding(v, m, shift))
        if a != b:
            exact = Fraction(v * m, 1 << (31 - shift))
            n_tie += _tie(exact)
            n_double += not _tie(exact)
    assert n_double > 0

    result = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == n_double + n_tie
    cause = _only(layer, "double_vs_single_rounding")
    assert (cause.stage, cause.elements, cause.max_lsb) == ("requantize", n_double, 1)
    if n_tie:
        assert _only(layer, "tie_rounding").elements == n_tie
    # the worked example: an accumulator whose exact value is not a tie, but whose SRDHM-rounded value is one
    acc0 = cause.example["acc_a"]
    assert not _tie(Fraction(acc0 * m, 1 << 39)) and _tie(_double_rounding(acc0, m, shift))


# ---- (c) float32 vs Q31 ----------------------------------------------------------------------------


def _tflite_multiplier(d: float) -> tuple[int, int]:     # SEMANTICS 1.3: frexp, round half away, fix-up
    q, e = math.frexp(d)
    m = _half_away(Fraction(q) * (1 << 31))
    return (m // 2, e + 1) if m == 1 << 31 else (m, e)


def test_onnxruntime_vs_tflite_reference_parts_on_tflites_double_rounding():
    # MLAS rounds fl32(fl32(acc) * scale) once; LiteRT's reference rounds twice.  Every difference here is either
    # an exact tie rounded by two rules or a double-rounding case (SRDHM lands on a tie the exact value is not on)
    rng = np.random.default_rng(3)
    s_x, s_w, s_y = F32(0.0213), F32(0.00731), F32(0.0419)
    w = rng.integers(-127, 128, (16, 32)).astype(np.int8)
    x = rng.integers(-128, 128, (32, 2, 2, 32)).astype(np.int8)
    g = _conv1x1_layers([w], [s_x, (s_w, s_y)])
    acc = (x.reshape(-1, 32).astype(np.int64) @ w.T.astype(np.int64)).reshape(-1).tolist()
    scale = F32(F32(s_x * s_w) / s_y)                                 # MLAS: fl32(fl32(sx * sw) / sy)
    m, shift = _tflite_multiplier(float(s_x) * float(s_w) / float(s_y))
    buckets = {"tie_rounding": 0, "double_vs_single_rounding": 0, "float_vs_fixed_requant": 0}
    for v in acc:
        fa = Fraction(float(F32(v) * scale))                          # float32 product (exact |acc| < 2^24)
        fb = _double_rounding(v, m, shift)
        if _clamp8(_half_even(fa)) != _clamp8(_half_away(fb)):
            if fa == fb and _tie(fa):
                buckets["tie_rounding"] += 1
            elif _tie(fb) and not _tie(Fraction(v * m, 1 << (31 - shift))):
                buckets["double_vs_single_rounding"] += 1
            else:
                buckets["float_vs_fixed_requant"] += 1
    assert buckets["double_vs_single_rounding"] > 0

    result = diff_targets(g, "onnxruntime-x86", "tflite-reference", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == sum(buckets.values())
    assert {c.kind: c.elements for c in layer.causes} == {k: n for k, n in buckets.items() if n}
    assert _only(layer, "double_vs_single_rounding").explanation.startswith("B requantises with double_rounding")


def test_float32_vs_q31_requantisation_onnxruntime_vs_single_rounding_litert(tmp_path):
    # LiteRT built with TFLITE_SINGLE_ROUNDING rounds acc * M / 2^(31 - shift) once, half up; MLAS rounds the
    # float32 product half to even.  With these scales acc = +-10142 gives fl32 42.50000381 (-> 43) but the
    # exact 42.49999942 (-> 42): the float32 scale, not a rounding rule, puts them on different sides of .5
    profile = tmp_path / "single.yaml"
    profile.write_text("schema_version: 1\nname: litert-single\nsummary: LiteRT reference, single rounding\n"
                       "base: tflite-reference\nrequantize: {scheme: single_rounding, rounding: half_up}\n")
    s_x, s_w, s_y = F32(0.02091497741639614), F32(0.006898733787238598), F32(0.03443193808197975)
    accs = list(range(-16000, 16001, 7)) + [10142, -10142]
    x0 = np.clip(np.rint(np.array(accs) / 127), -128, 127).astype(np.int64)
    x = np.stack([x0, np.array(accs) - 127 * x0], axis=-1).astype(np.int8).reshape(1, 1, -1, 2)
    g = _conv1x1_layers([np.array([[127, 1]], np.int8)], [s_x, (s_w, s_y)])      # acc = 127 * x0 + x1
    g.tensors["x"].shape, g.tensors["y0"].shape = (None, 1, None, 2), (None, 1, None, 1)
    scale = F32(F32(s_x * s_w) / s_y)
    m, shift = _tflite_multiplier(float(s_x) * float(s_w) / float(s_y))
    n_fixed = n_tie = 0
    for v in accs:
        fa, exact = Fraction(float(F32(v) * scale)), Fraction(v * m, 1 << (31 - shift))
        if _clamp8(_half_even(fa)) != _clamp8(_single_rounding(v, m, shift)):
            n_tie += fa == exact and _tie(fa)
            n_fixed += not (fa == exact and _tie(fa))
    assert n_fixed >= 2

    result = diff_targets(g, "onnxruntime-x86", profile, {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == n_fixed + n_tie
    cause = _only(layer, "float_vs_fixed_requant")
    assert cause.elements == n_fixed and "42.500003815" in cause.example["why"]
    assert "a float32 scale (float32) and B with a Q31 fixed-point multiplier" in cause.explanation


def test_depthwise_head_channels_round_negative_ties_half_up_on_neon():
    # LiteRT's NEON depthwise (arm-neon-sdot) rounds the final shift half up for channels 0..7 and keeps the
    # reference's half-away rounding for the tail channels 8..11 of 12.  d = 0.25 * 0.25 / 1.0 = 2^-4: M = 2^30,
    # shift -3, so SRDHM gives u = round_half_up(acc / 2) and the value rounded last is u / 8
    rng = np.random.default_rng(12)
    c = 12
    w = rng.integers(-3, 4, (c, 1, 1, 1)).astype(np.int8)
    x = rng.integers(-128, 128, (4, 3, 3, c)).astype(np.int8)
    tensors = {"x": Tensor("x", (None, 3, 3, c), np.dtype(np.int8), _qp(0.25)),
               "w": Tensor("w", w.shape, np.dtype(np.int8), _qp(0.25), w),
               "y": Tensor("y", (None, 3, 3, c), np.dtype(np.int8), _qp(1.0))}
    g = Graph(tensors, [Node("conv2d", ["x", "w"], ["y"], {"stride": (1, 1), "dilation": (1, 1),
                                                          "padding": (0, 0, 0, 0), "groups": c},
                             name="dw", source_op="DepthwiseConv2D")], ["x"], ["y"], kind="tflite")
    acc = x.astype(np.int64) * w.reshape(-1).astype(np.int64)
    expected = 0
    for idx in np.ndindex(*acc.shape):
        r = Fraction(_srdhm(int(acc[idx]), 1 << 30), 8)
        a, b = _half_away(r), math.floor(r + Fraction(1, 2))
        expected += idx[-1] < 8 and a != b
    assert expected > 0

    result = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == expected
    cause = _only(layer, "tie_rounding")
    assert cause.elements == expected and cause.example["index"][-1] < 8 and cause.example["b"] < 0
    assert cause.b == "srdhm_half_up (half_up), channels past a multiple of 8: double_rounding (half_away)"
    assert "half away from zero while B rounds them half up" in cause.explanation


def test_16x8_fully_connected_double_scale_vs_15_bit_multiplier():
    # 16x8 FULLY_CONNECTED: LiteRT's reference rounds (double) acc * d half away; TFLM keeps the int64
    # MultiplyByQuantizedMultiplier, whose multiplier is rounded to 15 bits (SEMANTICS 1.7)
    rng = np.random.default_rng(14)
    s_x, s_w, s_y = F32(0.000713), F32(0.00419), F32(0.00137)
    w = rng.integers(-127, 128, (8, 16)).astype(np.int8)
    x = rng.integers(-3000, 3001, (16, 16)).astype(np.int16)
    g = _fc_graph(w, _qp(s_x), _qp(s_w), _qp(s_y), np.int16, np.int16)
    d = float(s_x) * float(s_w) / float(s_y)
    m, shift = _tflite_multiplier(d)
    reduced = (m + (1 << 15)) >> 16
    n_fixed = n_tie = 0
    for v in (x.astype(np.int64) @ w.T.astype(np.int64)).reshape(-1).tolist():
        fa, fb = Fraction(float(v) * d), Fraction(v * reduced, 1 << (15 - shift))     # fl64 product; exact
        clamp16 = lambda r: max(-32768, min(32767, r))                                   # noqa: E731
        if clamp16(_half_away(fa)) != clamp16(math.floor(fb + Fraction(1, 2))):
            n_tie += fa == fb and _tie(fa)
            n_fixed += not (fa == fb and _tie(fa))
    assert n_fixed > 0

    (layer,) = diff_targets(g, "tflite-reference", "tflm", {"x": x}).layers
    assert layer.differ == layer.introduced == n_fixed + n_tie
    cause = _only(layer, "float_vs_fixed_requant")
    assert cause.elements == n_fixed and "15-bit fixed-point multiplier (int64_reduced)" in cause.explanation
    assert f"* {reduced} / 2^{15 - shift}" in cause.example["why"]


# ---- (d) int16 pair saturation ---------------------------------------------------------------------


def test_int16_pair_saturation_x86_avx2_vs_onnxruntime():
    # both targets: u8 x s8, float32 requantisation; x86-avx2 sums pairs (2i, 2i+1) in a saturating int16
    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, (12, 16)).astype(np.int8)
    x = rng.integers(150, 256, (10, 16)).astype(np.uint8)
    s = F32(2.0 ** -9)                                               # scale = 2^-8 * 2^-8 / 2^-7 = 2^-9, exact
    g = _fc_graph(w, _qp(2.0 ** -8, 0), _qp(2.0 ** -8), _qp(2.0 ** -7, 128), np.uint8, np.uint8)
    prods = x.astype(np.int64)[:, None, :] * w.astype(np.int64)[None, :, :]
    exact = prods.sum(axis=2)
    pairs = prods[:, :, 0::2] + prods[:, :, 1::2]
    saturated = np.clip(pairs, -32768, 32767).sum(axis=2)
    n_pair_events = int(np.count_nonzero(pairs != np.clip(pairs, -32768, 32767)))

    def out(acc):
        return np.clip(np.rint(acc.astype(F32) * s), -128, 127) + 128

    expected = int(np.count_nonzero(out(exact) != out(saturated)))
    assert expected > 0

    result = diff_targets(g, "onnxruntime-x86", "x86-avx2", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == expected
    cause = _only(layer, "pair_saturation")
    assert (cause.stage, cause.elements) == ("product_group", expected)
    assert f"{n_pair_events} group sums saturated" in cause.explanation
    i, j = cause.example["index"]
    assert (cause.example["acc_a"], cause.example["acc_b"]) == (exact[i, j], saturated[i, j])


# ---- (e) accumulator saturation --------------------------------------------------------------------


def test_accumulator_saturation_npu_acc16_vs_32_bit(tmp_path):
    profile = tmp_path / "npu32.yaml"
    profile.write_text("schema_version: 1\nname: npu-acc32\nsummary: npu-acc16 with a 32-bit wrapping accumulator\n"
                       "base: npu-acc16\nmac:\n  accumulator: {bits: 32, overflow: wrap}\n"
                       "  group_accumulator: {bits: 64, overflow: wrap}\n")
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (8, 64)).astype(np.int8)
    x = rng.integers(-127, 128, (6, 64)).astype(np.int8)
    g = _fc_graph(w, _qp(2.0 ** -4), _qp(2.0 ** -4), _qp(2.0))      # shift-only by 2^-9, rounded half up
    exact = x.astype(np.int64) @ w.T.astype(np.int64)
    sat = np.zeros_like(exact)
    for k in range(64):                                                # k in order, clamped at every step
        sat = np.clip(sat + x[:, k:k + 1].astype(np.int64) * w[:, k].astype(np.int64)[None, :], -32768, 32767)

    def out(acc):
        return np.clip(np.floor(acc / 512 + 0.5), -128, 127)

    expected = int(np.count_nonzero(out(sat) != out(exact)))
    assert expected > 0

    result = diff_targets(g, "npu-acc16", profile, {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == expected
    cause = _only(layer, "accumulator_overflow")
    assert (cause.stage, cause.elements) == ("accumulator", expected)
    assert (cause.a, cause.b) == ("16-bit saturate", "32-bit wrap")
    i, j = cause.example["index"]
    assert (cause.example["acc_a"], cause.example["acc_b"]) == (sat[i, j], exact[i, j])


def test_zero_point_placement_matters_only_through_a_narrow_accumulator(tmp_path):
    # two 16-bit saturating variants of tflite-reference: A subtracts the input zero point in the MAC, B sums
    # raw x * w and adds -zx * sum(w) afterwards (SEMANTICS 3.3); with 32-bit accumulators they would agree
    head = "schema_version: 1\nsummary: a 16-bit saturating LiteRT\nbase: tflite-reference\n"
    (tmp_path / "in-mac.yaml").write_text(head + "name: acc16-in-mac\nmac: {accumulator: {bits: 16, overflow: "
                                          "saturate}}\n")
    (tmp_path / "folded.yaml").write_text(head + "name: acc16-folded\nmac: {accumulator: {bits: 16, overflow: "
                                          "saturate}, input_zero_point: folded_into_bias}\n")
    rng = np.random.default_rng(13)
    zx = -100
    w = rng.integers(-127, 128, (6, 16)).astype(np.int8)
    x = rng.integers(-128, 128, (8, 16)).astype(np.int8)
    g = _fc_graph(w, _qp(2.0 ** -4, zx), _qp(2.0 ** -4), _qp(1.0))    # FC: round_half_away(acc / 256)

    def sat16(v):
        return max(-32768, min(32767, v))

    def acc(row, col, folded):
        total = 0
        for k in range(16):
            total = sat16(total + (int(x[row, k]) - (0 if folded else zx)) * int(w[col, k]))
        return sat16(total + sat16(-zx * int(w[col].astype(np.int64).sum()))) if folded else total

    def out(a):
        return _clamp8(_half_away(Fraction(a, 256)))

    pairs = [(acc(i, j, False), acc(i, j, True)) for i in range(8) for j in range(6)]
    expected = sum(out(a) != out(b) for a, b in pairs)
    assert expected > 0

    result = diff_targets(g, tmp_path / "in-mac.yaml", tmp_path / "folded.yaml", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == expected
    cause = _only(layer, "zero_point_placement")
    assert (cause.stage, cause.elements, cause.a, cause.b) == ("zero_point_placement", expected, "in_mac",
                                                               "folded_into_bias")
    i, j = cause.example["index"]
    assert (cause.example["acc_a"], cause.example["acc_b"]) == pairs[i * 6 + j]


# ---- (f) introduced vs propagated ------------------------------------------------------------------


def test_second_layer_only_propagates_the_first_layers_differences():
    # layer 0: the double vs single rounding case above; layer 1: s_x * s_w / s_y = 1 exactly, so both
    # targets requantise it without any rounding (M = 2^30, shift 1) and it can only pass differences on
    rng = np.random.default_rng(6)
    w0, x, scales, m, shift = _double_vs_single_case(rng)
    w1 = rng.integers(-2, 3, (4, 8)).astype(np.int8)
    g = _conv1x1_layers([w0, w1], scales + [(0.5, 0.5)])
    acc0 = (x.reshape(-1, 16).astype(np.int64) @ w0.T.astype(np.int64)).reshape(-1)
    y0_a = np.array([_clamp8(_half_away(_double_rounding(int(v), m, shift))) for v in acc0]).reshape(-1, 8)
    y0_b = np.array([_clamp8(_single_rounding(int(v), m, shift)) for v in acc0]).reshape(-1, 8)
    y1_a = np.clip(y0_a @ w1.T.astype(np.int64), -128, 127)
    y1_b = np.clip(y0_b @ w1.T.astype(np.int64), -128, 127)
    n0, n1 = int(np.count_nonzero(y0_a != y0_b)), int(np.count_nonzero(y1_a != y1_b))
    assert n0 > 0 and n1 > 0

    result = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x})
    first, second = result.layers
    assert (first.name, first.status, first.differ, first.introduced) == ("conv0", "introduced", n0, n0)
    assert (second.name, second.status, second.differ, second.introduced) == ("conv1", "propagated", n1, 0)
    assert second.inputs_differ and not second.causes
    assert result.first_divergence is first
    assert "propagated" in result.summary()


def test_same_target_twice_is_identical_pipelines():
    w, x, scales, _, _ = _double_vs_single_case(np.random.default_rng(7))
    result = diff_targets(_conv1x1_layers([w], scales), "arm-neon-sdot", "arm-neon-sdot", {"x": x})
    assert result.identical_pipelines and result.first_divergence is None
    assert [(l.differ, l.introduced, l.status) for l in result.layers] == [(0, 0, "same")]
    assert "identical pipelines" in result.summary()


def test_pipelines_that_differ_without_a_difference_show_say_so():
    # layer 1 of (f) alone, fed values that need no rounding: the pipelines differ, the bits do not
    g = _conv1x1_layers([np.eye(8, dtype=np.int8)], [0.5, (1.0, 0.5)])
    x = np.random.default_rng(8).integers(-100, 100, (2, 2, 2, 8)).astype(np.int8)
    result = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x})
    assert not result.identical_pipelines and result.first_divergence is None
    assert "mac.group: 1 vs 4" in result.pipeline_differences
    assert "identical bits" in result.summary()


# ---- quantize and elementwise nodes -----------------------------------------------------------------


def test_quantize_node_ties_half_even_vs_half_away():
    # float -> int8 with scale 0.25: x = (k + 0.5) * 0.25 are ties; ONNX rounds them to even, TFLite away
    k = np.arange(-20, 20)
    x = ((k + 0.5) * 0.25).astype(F32).reshape(1, -1)
    tensors = {"x": Tensor("x", (None, 40), np.dtype(F32)),
               "x__q": Tensor("x__q", (None, 40), np.dtype(np.int8), _qp(0.25))}
    g = Graph(tensors, [Node("quantize", ["x"], ["x__q"], name="x/quantize", source_op="QuantizeLinear")],
              ["x"], ["x__q"], kind="qdq")
    ties = [Fraction(int(v) * 2 + 1, 2) for v in k]
    expected = sum(_half_even(r) != _half_away(r) for r in ties)       # the ties with an even floor... 20 of 40

    result = diff_targets(g, "onnxruntime-x86", "tflite-reference", {"x": x})
    (layer,) = result.layers
    assert layer.differ == layer.introduced == expected == 20
    cause = _only(layer, "quantize_rounding")
    assert cause.elements == expected and "20 of the 20 inputs sit on a .5 tie" in cause.explanation


def test_elementwise_add_scheme_is_named():
    # the add's own arithmetic differs (MLAS float FMA vs TFLite fixed point); count what each target gives.
    # Scales 0.5 / 0.25 -> 1.0 put many sums on exact .5 ties, which the two round differently.
    import hwsim

    rng = np.random.default_rng(9)
    tensors = {n: Tensor(n, (None, 64), np.dtype(np.int8), _qp(s, z))
               for n, s, z in (("a", 0.5, 0), ("b", 0.25, 0), ("y", 1.0, 0))}
    g = Graph(tensors, [Node("add", ["a", "b"], ["y"], name="add", source_op="Add")], ["a", "b"], ["y"],
              kind="qdq")
    inputs = {"a": rng.integers(-128, 128, (8, 64)).astype(np.int8),
              "b": rng.integers(-128, 128, (8, 64)).astype(np.int8)}
    ya = hwsim.simulate(g, "onnxruntime-x86", inputs).outputs["y"]
    yb = hwsim.simulate(g, "tflite-reference", inputs).outputs["y"]
    expected = int(np.count_nonzero(ya != yb))
    assert expected > 0

    (layer,) = diff_targets(g, "onnxruntime-x86", "tflite-reference", inputs).layers
    assert layer.differ == layer.introduced == expected
    cause = _only(layer, "elementwise_scheme")
    assert cause.elements == expected
    assert (cause.a, cause.b) == ("add: ort_fma_f32", "add: tflite_fixed_point (litert_ref)")


def test_threads_do_not_change_the_diff():
    w, x, scales, _, _ = _double_vs_single_case(np.random.default_rng(10))
    g = _conv1x1_layers([w], scales)
    one = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x}).to_dict()
    two = diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x}, n_threads=2).to_dict()
    assert one == two


def test_bad_arguments_raise_value_errors_naming_them():
    w, x, scales, _, _ = _double_vs_single_case(np.random.default_rng(11))
    g = _conv1x1_layers([w], scales)
    with pytest.raises(ValueError, match="no-such-target"):
        diff_targets(g, "tflite-reference", "no-such-target", {"x": x})
    with pytest.raises(ValueError, match="graph: expected a hwsim Graph"):
        diff_targets("model.onnx", "tflite-reference", "arm-neon-sdot", {"x": x})
    with pytest.raises(ValueError, match="input 'x'"):
        diff_targets(g, "tflite-reference", "arm-neon-sdot", {"x": x.astype(np.int16)})
