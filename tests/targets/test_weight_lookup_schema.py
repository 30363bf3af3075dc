"""``operands.weights.lookup`` (a dequantise-to-int stage for non-uniform weights) and the per-group profile."""

from __future__ import annotations

import textwrap

import pytest

from hwsim.targets import TargetError, load_target


def _write(tmp_path, body: str):
    path = tmp_path / "lut.yaml"
    path.write_text("schema_version: 1\nname: lut\nsummary: with a lookup stage\nbase: npu-acc16\n"
                    + textwrap.dedent(body))
    return path


def test_lookup_is_read_inherited_per_op_and_shown(tmp_path):
    path = _write(tmp_path, """\
        operands:
          weights: {lookup: {index_bits: 4}}
        ops:
          fully_connected: {operands: {weights: {lookup: null}}}
        """)
    t = load_target(path)
    assert t.for_op("conv2d").weights.lookup_index_bits == 4
    assert t.for_op("depthwise_conv2d").weights.lookup_index_bits == 4
    assert t.for_op("fully_connected").weights.lookup_index_bits is None      # null removes the stage
    assert t.for_op("conv2d").describe()["operands"]["weights"]["lookup"] == {"index_bits": 4}
    assert "lookup" not in t.for_op("fully_connected").describe()["operands"]["weights"]
    # the resolved profile loads back equal
    again = tmp_path / "again.yaml"
    again.write_text(t.to_yaml())
    assert load_target(again) == t
    assert load_target("npu-acc16").for_op("conv2d").weights.lookup_index_bits is None


@pytest.mark.parametrize("body, line, message", [
    ("operands:\n  weights: {lookup: {index_bits: 0}}\n", 6,
     r"operands\.weights\.lookup\.index_bits: 0 is out of range; expected an integer in \[1, 16\]"),
    ("operands:\n  weights: {lookup: {bits: 4}}\n", 6,
     r"operands\.weights\.lookup\.bits: unknown key; expected one of: index_bits"),
    ("operands:\n  weights: {lookup: {}}\n", 6,
     r"operands\.weights\.lookup\.index_bits: missing; expected an integer in \[1, 16\]"),
    ("operands:\n  input: {lookup: {index_bits: 4}}\n", 6,
     r"operands\.input\.lookup: unknown key; expected one of: bits, granularity"),
])
def test_lookup_errors_name_file_line_and_key(tmp_path, body, line, message):
    path = _write(tmp_path, body)
    with pytest.raises(TargetError, match=rf"lut\.yaml:{line}: " + message):
        load_target(path)


def test_cpu_w4a8_blocked_profile():
    t = load_target("cpu-w4a8-blocked")
    for op in ("conv2d", "fully_connected"):
        w = t.for_op(op).weights
        assert (w.bits, w.signed, w.symmetric, w.granularity.value, w.group_size) == (4, True, True, "per-group", 32)
        assert (w.min, w.max) == (-8, 7)
        assert t.for_op(op).accum.acc_bits == 32 and t.for_op(op).accum.acc_overflow.value == "wrap"
    dw = t.for_op("depthwise_conv2d").weights
    assert (dw.bits, dw.granularity.value) == (8, "per-channel")
    x = t.for_op("conv2d").input
    assert (x.bits, x.signed, x.symmetric) == (8, False, False)
    assert t.quantize_rounding.value == "half_even"


def test_cpu_w4a8_blocked_passes_targets_validate(capsys):
    import importlib.resources

    from hwsim.cli import main

    path = importlib.resources.files("hwsim.targets_data") / "cpu-w4a8-blocked.yaml"
    assert main(["targets", "validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "ok"
