"""``ops.<op>.int16_activations``: an op's own 16x8 override, merged after ``ops.int16_activations``.

LiteRT's 16x8 FULLY_CONNECTED rounds in double while its 16x8 CONV_2D uses the int64
MultiplyByQuantizedMultiplier; TFLM uses the int64 overload for both (measured in
tests/sim/test_tflite_16x8.py).
"""

from __future__ import annotations

import textwrap

import pytest

from hwsim.targets import TargetError, load_target
from hwsim.types import RequantScheme, RequantSpec, Rounding

F64 = RequantSpec(RequantScheme.FLOAT64_ROUND, Rounding.HALF_AWAY)
I64R = RequantSpec(RequantScheme.INT64_REDUCED, Rounding.HALF_UP)


DR = RequantSpec(RequantScheme.DOUBLE_ROUNDING, Rounding.HALF_AWAY)
F32 = RequantSpec(RequantScheme.FLOAT32, Rounding.HALF_EVEN)
NEON1 = RequantSpec(RequantScheme.NEON_SINGLE, Rounding.HALF_UP)


@pytest.mark.parametrize("name,fc8,fc16", [("tflite-reference", F64, F64), ("xnnpack", F32, F64),
                                           ("arm-neon-sdot", NEON1, F64), ("arm-neon-mlal", NEON1, F64),
                                           ("tflm", DR, I64R)])
def test_16x8_fully_connected_requantisation_per_engine(name, fc8, fc16):
    t = load_target(name)
    assert t.for_op("fully_connected", 16).requant == fc16
    assert t.for_op("fully_connected", 8).requant == fc8          # the 16x8 override leaves int8 alone
    assert t.for_op("conv2d", 16).requant == I64R


def _profile(tmp_path, ops: str):
    path = tmp_path / "p.yaml"
    path.write_text("base: tflite-reference\nschema_version: 1\nname: p\nsummary: s\n" + textwrap.dedent(ops))
    return path


def test_op_override_is_applied_after_the_shared_16x8_variant(tmp_path):
    path = _profile(tmp_path, """\
        ops:
          conv2d:
            int16_activations:
              requantize: {scheme: double_rounding, rounding: half_away}
        """)
    t = load_target(path)
    assert t.for_op("conv2d", 16).requant == RequantSpec(RequantScheme.DOUBLE_ROUNDING, Rounding.HALF_AWAY)
    assert t.for_op("conv2d", 8).requant == RequantSpec(RequantScheme.DOUBLE_ROUNDING, Rounding.HALF_AWAY)
    assert t.for_op("depthwise_conv2d", 16).requant == I64R           # other ops keep ops.int16_activations
    assert t.for_op("fully_connected", 16).requant == F64             # inherited from the base
    # the resolved profile writes the nested override back and loads to an equal profile
    again = tmp_path / "again.yaml"
    again.write_text(t.to_yaml())
    assert load_target(again) == t


def test_op_override_checks_its_keys(tmp_path):
    path = _profile(tmp_path, """\
        ops:
          fully_connected:
            int16_activations:
              requantise: {scheme: float64_round, rounding: half_away}
        """)
    with pytest.raises(TargetError, match=r"ops\.fully_connected\.int16_activations\.requantise: unknown key"):
        load_target(path)


def test_op_override_needs_16_bit_activations(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""\
        base: npu-acc16
        schema_version: 1
        name: p
        summary: s
        ops:
          fully_connected:
            int16_activations:
              requantize: {scheme: float64_round, rounding: half_away}
        """))
    with pytest.raises(TargetError, match=r"ops\.fully_connected\.int16_activations: .*expected "
                                          r"ops\.int16_activations as well"):
        load_target(path)


def test_op_override_cannot_narrow_the_input_again(tmp_path):
    path = _profile(tmp_path, """\
        ops:
          fully_connected:
            int16_activations:
              operands:
                input: {bits: 8}
        """)
    with pytest.raises(TargetError, match="expected operands.input.bits: 16"):
        load_target(path)
