"""Loading built-in and user target profiles; base inheritance; for_op.

Expected values come from the task brief, SEMANTICS.md sections 1, 2, 3 and 10
and DESIGN.md's table -- never from the YAML files under test.
"""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from hwsim.targets import (
    OP_TYPES,
    CalibrationMethod,
    Granularity,
    OpSemantics,
    ScaleConstraint,
    TargetError,
    TargetProfile,
    ValueRange,
    list_targets,
    load_target,
)
from hwsim.types import Overflow, RequantScheme, RequantSpec, Rounding, ZeroPointPlacement

BUILTINS = {
    "tflite-reference", "tflm", "xnnpack", "onnxruntime-x86", "onnxruntime-arm64", "x86-avx2",
    "arm-neon-sdot", "arm-neon-mlal", "npu-acc16", "npu-acc24", "cpu-w4a8-blocked",
}

DR = RequantSpec(RequantScheme.DOUBLE_ROUNDING, Rounding.HALF_AWAY)
F64 = RequantSpec(RequantScheme.FLOAT64_ROUND, Rounding.HALF_AWAY)
F32 = RequantSpec(RequantScheme.FLOAT32, Rounding.HALF_EVEN)
I64R = RequantSpec(RequantScheme.INT64_REDUCED, Rounding.HALF_UP)
NEON1 = RequantSpec(RequantScheme.NEON_SINGLE, Rounding.HALF_UP)
SRDHM_UP = RequantSpec(RequantScheme.SRDHM_HALF_UP, Rounding.HALF_UP)
SHIFT_UP = RequantSpec(RequantScheme.SHIFT_ONLY, Rounding.HALF_UP)


def write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------


def test_list_targets_names_every_builtin():
    assert set(list_targets()) == BUILTINS
    assert list_targets() == sorted(list_targets())


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_loads_and_resolves_every_op(name):
    t = load_target(name)
    assert isinstance(t, TargetProfile)
    assert t.name == name
    assert t.summary
    assert t.reference is not None and t.reference.engine
    for op in OP_TYPES:
        for bits in t.activation_bits:
            sem = t.for_op(op, bits)
            assert isinstance(sem, OpSemantics)
            assert (sem.op, sem.activation_bits) == (op, bits)
    assert t.for_op("conv2d") == t.for_op("conv2d", t.activation_bits[0])


@pytest.mark.parametrize("name", ["tflite-reference", "tflm", "xnnpack", "arm-neon-sdot"])
def test_litert_operands_follow_the_int8_spec(name):
    # SEMANTICS 1.1: activations int8 asymmetric per-tensor; weights int8 symmetric in [-127, 127],
    # per-channel; bias int32.
    sem = load_target(name).for_op("conv2d", 8)
    assert (sem.input.bits, sem.input.signed, sem.input.symmetric) == (8, True, False)
    assert sem.input.granularity is Granularity.PER_TENSOR
    assert (sem.weights.bits, sem.weights.signed, sem.weights.symmetric) == (8, True, True)
    assert (sem.weights.min, sem.weights.max) == (-127, 127)
    assert sem.weights.value_range is ValueRange.RESTRICTED
    assert sem.weights.granularity is Granularity.PER_CHANNEL
    assert (sem.bias.bits, sem.bias.signed) == (32, True)
    assert (sem.output.bits, sem.output.signed) == (8, True)
    assert sem.output_overflow is Overflow.SATURATE
    assert sem.quantize_rounding is Rounding.HALF_AWAY  # std::round, SEMANTICS 1.9


@pytest.mark.parametrize("name", ["tflite-reference", "tflm", "xnnpack"])
def test_litert_reference_mac(name):
    acc = load_target(name).for_op("conv2d").accum
    assert acc.group == 1
    assert (acc.acc_bits, acc.acc_overflow) == (32, Overflow.WRAP)
    assert acc.input_zero_point is ZeroPointPlacement.IN_MAC
    assert acc.bias_first is False


# requantisation per op, SEMANTICS 10.2 table (and the brief)
REQUANT_8BIT = {
    "tflite-reference": {"conv2d": DR, "depthwise_conv2d": DR, "fully_connected": F64},
    "tflm": {"conv2d": DR, "depthwise_conv2d": DR, "fully_connected": DR},
    "xnnpack": {"conv2d": F32, "depthwise_conv2d": F32, "fully_connected": F32},
    "onnxruntime-x86": {"conv2d": F32, "depthwise_conv2d": F32, "fully_connected": F32, "matmul": F32},
    "onnxruntime-arm64": {"conv2d": F32, "depthwise_conv2d": F32, "fully_connected": F32, "matmul": F32},
    "x86-avx2": {"conv2d": F32, "fully_connected": F32, "matmul": F32},
    "arm-neon-sdot": {"conv2d": NEON1, "fully_connected": NEON1, "depthwise_conv2d": SRDHM_UP},
    "arm-neon-mlal": {"conv2d": NEON1, "fully_connected": NEON1, "depthwise_conv2d": SRDHM_UP},
    "npu-acc16": {op: SHIFT_UP for op in OP_TYPES},
    "npu-acc24": {op: SHIFT_UP for op in OP_TYPES},
}


@pytest.mark.parametrize("name,op,spec", [(n, op, s) for n, ops in REQUANT_8BIT.items() for op, s in ops.items()])
def test_requantisation_per_op(name, op, spec):
    assert load_target(name).for_op(op, 8).requant == spec


def test_fully_connected_differs_between_litert_reference_and_tflm():
    # SEMANTICS 10.2: LiteRT's reference FC moved to float64 rounding; TFLM kept double rounding
    assert load_target("tflite-reference").for_op("fully_connected").requant.scheme is RequantScheme.FLOAT64_ROUND
    assert load_target("tflm").for_op("fully_connected").requant.scheme is RequantScheme.DOUBLE_ROUNDING


@pytest.mark.parametrize("name", ["tflite-reference", "tflm", "xnnpack", "arm-neon-sdot", "arm-neon-mlal"])
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d"])
def test_16x8_variant_uses_int64_accumulator_and_reduced_multiplier(name, op):
    sem = load_target(name).for_op(op, activation_bits=16)
    assert sem.activation_bits == 16
    assert (sem.input.bits, sem.input.signed, sem.input.symmetric) == (16, True, True)
    assert (sem.weights.bits, sem.weights.min, sem.weights.max) == (8, -127, 127)
    assert (sem.accum.acc_bits, sem.accum.acc_overflow) == (64, Overflow.WRAP)
    assert sem.accum.group == 1 and sem.accum.group_bits == 64
    assert sem.bias.bits == 64
    assert sem.requant == I64R
    assert sem.requant_tail is None


def test_onnxruntime_x86():
    t = load_target("onnxruntime-x86")
    assert t.reference.version == "1.32.0"
    sem = t.for_op("conv2d")
    assert (sem.input.bits, sem.input.signed, sem.input.symmetric) == (8, False, False)
    assert (sem.weights.bits, sem.weights.signed, sem.weights.symmetric) == (8, True, True)
    assert sem.weights.granularity is Granularity.PER_CHANNEL
    acc = sem.accum
    assert (acc.group, acc.group_bits, acc.group_overflow) == (4, 32, Overflow.WRAP)  # VPDPBUSD
    assert (acc.acc_bits, acc.acc_overflow) == (32, Overflow.WRAP)
    assert acc.input_zero_point is ZeroPointPlacement.FOLDED_INTO_BIAS
    assert (sem.output.bits, sem.output.signed) == (8, False)
    assert sem.output_overflow is Overflow.SATURATE
    assert sem.quantize_rounding is Rounding.HALF_EVEN  # QuantizeLinear, SEMANTICS 3.7
    assert t.activation_bits == (8,)


def test_onnxruntime_arm64_has_the_x86_arithmetic_with_exact_dot_groups():
    x86, arm = load_target("onnxruntime-x86"), load_target("onnxruntime-arm64")
    for op in OP_TYPES:
        a, b = x86.for_op(op), arm.for_op(op)
        assert (a.requant, a.input, a.weights, a.output, a.quantize_rounding) == \
               (b.requant, b.input, b.weights, b.output, b.quantize_rounding)
        assert (b.accum.group, b.accum.group_bits, b.accum.acc_bits) == (4, 32, 32)
    assert "aarch64" in arm.reference.engine


def test_x86_avx2_is_designs_example():
    sem = load_target("x86-avx2").for_op("matmul")
    assert (sem.input.bits, sem.input.signed) == (8, False)
    assert (sem.weights.bits, sem.weights.signed, sem.weights.granularity) == (8, True, Granularity.PER_CHANNEL)
    acc = sem.accum
    assert acc.input_zero_point is ZeroPointPlacement.FOLDED_INTO_BIAS
    assert (acc.group, acc.group_bits, acc.group_overflow) == (2, 16, Overflow.SATURATE)  # VPMADDUBSW
    assert (acc.acc_bits, acc.acc_overflow) == (32, Overflow.WRAP)                        # VPADDD
    assert sem.requant == F32
    assert (sem.output.bits, sem.output.signed, sem.output_overflow) == (8, False, Overflow.SATURATE)
    assert load_target("x86-avx2").calibration is CalibrationMethod.ENTROPY


def test_arm_neon_sdot():
    t = load_target("arm-neon-sdot")
    conv = t.for_op("conv2d")
    assert (conv.accum.group, conv.accum.group_bits, conv.accum.group_overflow) == (4, 32, Overflow.WRAP)
    assert (conv.input.bits, conv.input.signed) == (8, True)
    assert (conv.weights.min, conv.weights.max) == (-127, 127)
    assert conv.requant_tail is None
    dw = t.for_op("depthwise_conv2d")
    assert dw.requant == SRDHM_UP
    assert dw.requant_tail is not None and dw.requant_tail.multiple == 8
    assert dw.requant_tail.requant == DR


@pytest.mark.parametrize("n_channels,first_tail", [(20, 16), (16, 16), (7, 0), (8, 8), (1, 0), (9, 8)])
def test_depthwise_tail_channels(n_channels, first_tail):
    # SEMANTICS 10.2/10.3: srdhm_half_up for channels < 8 * floor(C / 8), double rounding for the rest
    dw = load_target("arm-neon-sdot").for_op("depthwise_conv2d")
    assert dw.requant_tail.first_channel(n_channels) == first_tail
    got = [dw.requant_for_channel(c, n_channels) for c in range(n_channels)]
    assert got == [SRDHM_UP] * first_tail + [DR] * (n_channels - first_tail)


def test_requant_for_channel_checks_its_index():
    dw = load_target("arm-neon-sdot").for_op("depthwise_conv2d")
    with pytest.raises(ValueError, match="channel"):
        dw.requant_for_channel(5, 5)
    assert load_target("tflm").for_op("conv2d").requant_for_channel(4, 5) == DR


def test_arm_neon_mlal():
    sem = load_target("arm-neon-mlal").for_op("conv2d")
    acc = sem.accum
    assert (acc.group, acc.group_bits, acc.group_overflow) == (2, 16, Overflow.WRAP)  # SMLAL is modular
    assert acc.input_zero_point is ZeroPointPlacement.FOLDED_INTO_BIAS
    assert (sem.weights.min, sem.weights.max) == (-127, 127)
    assert sem.requant == NEON1


@pytest.mark.parametrize("name,acc_bits", [("npu-acc16", 16), ("npu-acc24", 24)])
def test_npu(name, acc_bits):
    t = load_target(name)
    assert t.activation_bits == (8,)
    assert t.calibration is CalibrationMethod.MINMAX
    for op in OP_TYPES:
        sem = t.for_op(op)
        for fmt in (sem.input, sem.weights, sem.output):
            assert (fmt.bits, fmt.signed, fmt.symmetric) == (8, True, True)
        for fmt in (sem.input, sem.weights):
            assert fmt.scale is ScaleConstraint.POWER_OF_TWO
        assert sem.accum.group == 1
        assert (sem.accum.acc_bits, sem.accum.acc_overflow) == (acc_bits, Overflow.SATURATE)
        assert sem.accum.bias_first is True
        assert sem.requant == SHIFT_UP
        assert sem.output_overflow is Overflow.SATURATE


@pytest.mark.parametrize("name", ["tflite-reference", "tflm", "arm-neon-sdot", "npu-acc16"])
def test_arm_toolchains_calibrate_minmax(name):
    assert load_target(name).calibration is CalibrationMethod.MINMAX


# ---------------------------------------------------------------------------------------------
# for_op errors
# ---------------------------------------------------------------------------------------------


def test_for_op_unknown_op_lists_the_op_types():
    with pytest.raises(TargetError, match="unknown op type 'conv3d'.*conv2d, depthwise_conv2d"):
        load_target("tflm").for_op("conv3d")


@pytest.mark.parametrize("name,bits", [("npu-acc16", 16), ("tflm", 4), ("onnxruntime-x86", 16)])
def test_for_op_unavailable_activation_bits(name, bits):
    with pytest.raises(TargetError, match=f"no {bits}-bit activations"):
        load_target(name).for_op("conv2d", bits)


# ---------------------------------------------------------------------------------------------
# Inheritance
# ---------------------------------------------------------------------------------------------


def test_user_file_overrides_one_key_of_a_builtin(tmp_path):
    path = write(tmp_path, "acc24.yaml", """\
        schema_version: 1
        name: tflite-acc24
        summary: the reference kernels with a 24-bit accumulator
        base: tflite-reference
        mac:
          accumulator: {bits: 24}
        """)
    t, ref = load_target(path), load_target("tflite-reference")
    assert t.name == "tflite-acc24"
    assert t.reference is None  # never inherited: the derived profile is not bit-exact to LiteRT
    assert t.bases == (str(pathlib.Path(ref.source)),)
    for op in OP_TYPES:
        mine, theirs = t.for_op(op), ref.for_op(op)
        assert mine.accum.acc_bits == 24
        assert mine.accum.acc_overflow is Overflow.WRAP  # sibling key kept by the deep merge
        assert mine.requant == theirs.requant
        assert (mine.input, mine.weights, mine.bias, mine.output) == \
               (theirs.input, theirs.weights, theirs.bias, theirs.output)
    assert t.for_op("conv2d", 16).accum.acc_bits == 64  # the 16x8 override still applies on top


def test_load_by_string_path_and_pathlike_agree(tmp_path):
    path = write(tmp_path, "p.yaml", "schema_version: 1\nname: p\nsummary: s\nbase: tflm\n")
    assert load_target(str(path)) == load_target(path)


def test_equal_profiles_ignore_where_they_come_from(tmp_path):
    path = write(tmp_path, "copy.yaml", "schema_version: 1\nname: tflm\nsummary: x\nbase: tflm\n")
    copy, tflm = load_target(path), load_target("tflm")
    assert copy.semantics == tflm.semantics
    assert copy != tflm  # summary and reference differ


def test_chain_of_bases(tmp_path):
    write(tmp_path, "lib/base1.yaml", """\
        schema_version: 1
        name: base1
        summary: tflm with 16-bit saturating accumulators
        base: tflm
        mac:
          accumulator: {bits: 16, overflow: saturate}
        """)
    write(tmp_path, "lib/base2.yaml", """\
        schema_version: 1
        name: base2
        summary: and power-of-two input scales
        base: base1.yaml
        operands:
          input: {scale: power_of_two}
        """)
    top = write(tmp_path, "top.yaml", """\
        schema_version: 1
        name: top
        summary: and half-even float32 requantisation for matmul
        base: lib/base2.yaml
        ops:
          matmul:
            requantize: {scheme: float32, rounding: half_even}
        """)
    t = load_target(top)
    assert len(t.bases) == 4  # tflite-reference, tflm, base1, base2
    mm, fc, conv = t.for_op("matmul"), t.for_op("fully_connected"), t.for_op("conv2d")
    assert (conv.accum.acc_bits, conv.accum.acc_overflow) == (16, Overflow.SATURATE)  # base1
    assert conv.input.scale is ScaleConstraint.POWER_OF_TWO                           # base2
    assert conv.input.bits == 8 and conv.input.symmetric is False                      # tflite-reference
    assert fc.requant == DR                                                            # tflm
    assert mm.requant == F32                                                           # top
    assert conv.requant == DR


def test_null_tail_removes_an_inherited_tail(tmp_path):
    path = write(tmp_path, "notail.yaml", """\
        schema_version: 1
        name: notail
        summary: depthwise without the tail split
        base: arm-neon-sdot
        ops:
          depthwise_conv2d:
            requantize: {tail: null}
        """)
    dw = load_target(path).for_op("depthwise_conv2d")
    assert dw.requant == SRDHM_UP and dw.requant_tail is None


def test_tail_can_be_added_by_a_user(tmp_path):
    path = write(tmp_path, "tail.yaml", """\
        schema_version: 1
        name: tail4
        summary: s
        base: tflm
        requantize: {tail: {multiple: 4, scheme: srdhm_half_up, rounding: half_up}}
        """)
    conv = load_target(path).for_op("conv2d")
    assert [conv.requant_for_channel(c, 6) for c in range(6)] == [DR] * 4 + [SRDHM_UP] * 2


def test_per_group_granularity(tmp_path):
    path = write(tmp_path, "g.yaml", """\
        schema_version: 1
        name: g
        summary: s
        base: tflm
        operands:
          weights: {granularity: "per-group:32", bits: 4}
        """)
    w = load_target(path).for_op("conv2d").weights
    assert (w.granularity, w.group_size, w.bits, w.min, w.max) == (Granularity.PER_GROUP, 32, 4, -7, 7)


@pytest.mark.parametrize("chain", [("a.yaml", "a.yaml"), ("a.yaml", "b.yaml", "a.yaml"),
                                   ("a.yaml", "b.yaml", "c.yaml", "b.yaml")])
def test_base_cycle_is_an_error(tmp_path, chain):
    files = dict(zip(chain, chain[1:]))
    for name, base in files.items():
        write(tmp_path, name, f"schema_version: 1\nname: {name[0]}\nsummary: s\nbase: {base}\n")
    with pytest.raises(TargetError) as info:
        load_target(tmp_path / chain[0])
    msg = str(info.value)
    assert "cycle" in msg
    assert ":4: base:" in msg  # the line of the base key that closes the cycle
    for name in set(chain[chain.index(chain[-1]):]):
        assert name in msg


def test_error_in_a_base_names_the_base_file(tmp_path):
    write(tmp_path, "broken.yaml", "schema_version: 1\nname: broken\nsummary: s\nmac:\n  group: 3\n")
    top = write(tmp_path, "top.yaml", "schema_version: 1\nname: top\nsummary: s\nbase: broken.yaml\n")
    with pytest.raises(TargetError, match=r"broken\.yaml:5: mac\.group: unknown value 3; expected one of: 1, 2, 4"):
        load_target(top)


def test_missing_key_supplied_by_the_base_is_not_an_error(tmp_path):
    path = write(tmp_path, "min.yaml", "schema_version: 1\nname: m\nsummary: s\nbase: npu-acc16\n")
    assert load_target(path).semantics == load_target("npu-acc16").semantics


def test_builtin_name_that_is_also_a_file_in_the_cwd_is_the_builtin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tflm").write_text("not yaml: [")
    assert load_target("tflm").name == "tflm"


def test_unknown_builtin_name_lists_the_builtins():
    with pytest.raises(TargetError, match="unknown built-in target 'tflite'.*npu-acc16"):
        load_target("tflite")


def test_builtin_profiles_are_parsed_once():
    # simulate(graph, "name", ...) loads the target on every call; a built-in must not be re-read each time
    from hwsim import targets

    assert targets.load_target("tflm") is targets.load_target("tflm")
