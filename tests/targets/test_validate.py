"""Bad profile files: each is a TargetError naming the file, the line, the key path and what was expected."""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest

from hwsim.targets import TargetError, load_target

# A complete profile; each case below breaks one thing in it.  Line numbers in the cases
# are those of this text (line 1 is schema_version).
GOOD = """\
schema_version: 1
name: good
summary: a complete profile written out in full
reference: {engine: nothing in particular, version: "0"}
operands:
  input:   {bits: 8, signed: true, symmetric: false, range: full, granularity: per-tensor, scale: any}
  weights: {bits: 8, signed: true, symmetric: true, range: restricted, granularity: per-channel, scale: any}
  bias:    {bits: 32, signed: true, symmetric: true, range: full, granularity: per-channel, scale: any}
  output:  {bits: 8, signed: true, symmetric: false, range: full, granularity: per-tensor, scale: any}
mac:
  group: 1
  accumulator: {bits: 32, overflow: wrap}
  input_zero_point: in_mac
  bias: last
requantize: {scheme: double_rounding, rounding: half_away}
output: {overflow: saturate}
quantize: {rounding: half_away}
calibration: {method: minmax}
ops:
  fully_connected:
    requantize: {scheme: float64_round, rounding: half_away}
"""


def write(tmp_path: pathlib.Path, text: str, name: str = "bad.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def replace_line(line_no: int, new: str) -> str:
    lines = GOOD.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def error_of(path: pathlib.Path) -> str:
    with pytest.raises(TargetError) as info:
        load_target(path)
    return str(info.value)


def test_good_profile_loads(tmp_path):
    t = load_target(write(tmp_path, GOOD, "good.yaml"))
    assert t.name == "good"
    assert t.for_op("fully_connected").requant.scheme.value == "float64_round"


def test_target_error_is_a_value_error():
    assert issubclass(TargetError, ValueError)


# (name, broken text, expected line, key path, fragments the message must contain)
CASES = [
    ("unknown top-level key", GOOD + "speed: fast\n", 22, "speed",
     ["unknown key", "expected one of:", "calibration", "requantize"]),
    ("unknown nested key", replace_line(12, "  acumulator: {bits: 32, overflow: wrap}"), 12, "mac.acumulator",
     ["unknown key", "accumulator, bias, group, group_accumulator, input_zero_point"]),
    ("unknown key in an operand", replace_line(6, "  input: {bits: 8, signed: true, symmetric: false, range: full, "
                                                  "granularity: per-tensor, scale: any, offset: 3}"),
     6, "operands.input.offset", ["unknown key", "granularity"]),
    ("unknown key in an op override", GOOD + "    rounding_mode: x\n", 22, "ops.fully_connected.rounding_mode",
     ["unknown key", "mac, operands, requantize"]),
    ("unknown op type", GOOD + "  conv3d: {}\n", 22, "ops.conv3d",
     ["unknown key", "conv2d, depthwise_conv2d, fully_connected, int16_activations, matmul"]),
    ("wrong type: string bits", replace_line(12, "  accumulator: {bits: thirty-two, overflow: wrap}"), 12,
     "mac.accumulator.bits", ["got a string 'thirty-two'", "expected an integer in [8, 64]"]),
    ("wrong type: int for bool", replace_line(6, "  input: {bits: 8, signed: 1, symmetric: false, range: full, "
                                                 "granularity: per-tensor, scale: any}"),
     6, "operands.input.signed", ["got an integer 1", "expected true or false"]),
    ("wrong type: bool for int", replace_line(12, "  accumulator: {bits: true, overflow: wrap}"), 12,
     "mac.accumulator.bits", ["got a boolean True", "expected an integer"]),
    ("wrong type: scalar for mapping", replace_line(17, "quantize: half_away"), 17, "quantize",
     ["got a string 'half_away'", "expected a mapping with keys rounding"]),
    ("bad enum: overflow", replace_line(16, "output: {overflow: clamp}"), 16, "output.overflow",
     ["unknown value 'clamp'", "expected one of: wrap, saturate"]),
    ("bad enum: rounding", replace_line(17, "quantize: {rounding: nearest}"), 17, "quantize.rounding",
     ["unknown value 'nearest'",
      "floor, ceil, trunc, half_up, half_down, half_even, half_away, half_zero, stochastic"]),
    ("bad enum: scheme", replace_line(15, "requantize: {scheme: fixed_point, rounding: half_away}"), 15,
     "requantize.scheme", ["unknown value 'fixed_point'", "double_rounding, single_rounding", "shift_only"]),
    ("bad enum: calibration", replace_line(18, "calibration: {method: kl}"), 18, "calibration.method",
     ["unknown value 'kl'", "minmax, percentile, entropy, mse, aciq, histogram"]),
    ("bad enum: group", replace_line(11, "  group: 3"), 11, "mac.group", ["unknown value 3", "1, 2, 4"]),
    ("bad enum: granularity", replace_line(7, "  weights: {bits: 8, signed: true, symmetric: true, range: restricted, "
                                              "granularity: per-row, scale: any}"),
     7, "operands.weights.granularity", ["unknown value 'per-row'", "per-group:N"]),
    ("bad granularity group size", replace_line(7, "  weights: {bits: 8, signed: true, symmetric: true, "
                                                   "range: restricted, granularity: 'per-group:0', scale: any}"),
     7, "operands.weights.granularity", ["unknown value 'per-group:0'", "positive integer"]),
    ("bits too large", replace_line(12, "  accumulator: {bits: 128, overflow: wrap}"), 12, "mac.accumulator.bits",
     ["128 is out of range", "expected an integer in [8, 64]"]),
    ("bits too small", replace_line(6, "  input: {bits: 1, signed: true, symmetric: false, range: full, "
                                       "granularity: per-tensor, scale: any}"),
     6, "operands.input.bits", ["1 is out of range", "[2, 16]"]),
    ("bias bits too large", replace_line(8, "  bias: {bits: 65, signed: true, symmetric: true, range: full, "
                                            "granularity: per-channel, scale: any}"),
     8, "operands.bias.bits", ["65 is out of range", "[8, 64]"]),
    ("missing schema_version", "\n".join(GOOD.splitlines()[1:]) + "\n", 1, "schema_version",
     ["missing", "schema_version: 1"]),
    ("unknown schema_version", replace_line(1, "schema_version: 2"), 1, "schema_version",
     ["unsupported version 2", "reads schema_version 1"]),
    ("schema_version as a string", replace_line(1, "schema_version: '1'"), 1, "schema_version",
     ["unsupported version '1'"]),
    ("missing name", replace_line(2, "# no name"), 1, "name", ["missing", "non-empty string"]),
    ("bad name", replace_line(2, "name: My Target"), 2, "name", ["not a valid name", "lower-case"]),
    ("empty summary", replace_line(3, "summary: ''"), 3, "summary", ["expected a non-empty string"]),
    ("missing section", replace_line(18, "# no calibration"), 1, "calibration",
     ["missing", "expected a mapping with keys method"]),
    ("missing key in a section", replace_line(15, "requantize: {scheme: double_rounding}"), 15,
     "requantize.rounding", ["missing", "expected one of: floor"]),
    ("missing operand key", replace_line(9, "  output:  {bits: 8, signed: true, symmetric: false, range: full, "
                                            "granularity: per-tensor}"),
     9, "operands.output.scale", ["missing", "any, power_of_two"]),
    ("reference without engine", replace_line(4, "reference: {version: '1'}"), 4, "reference.engine",
     ["missing", "non-empty string"]),
    ("restricted unsigned", replace_line(6, "  input: {bits: 8, signed: false, symmetric: false, range: restricted, "
                                            "granularity: per-tensor, scale: any}"),
     6, "operands.input.range", ["restricted range needs a signed operand"]),
    ("unsigned bias", replace_line(8, "  bias: {bits: 32, signed: false, symmetric: true, range: full, "
                                      "granularity: per-channel, scale: any}"),
     8, "operands.bias.signed", ["unsigned bias", "signed: true"]),
    ("rounding that the scheme does not do", replace_line(15, "requantize: {scheme: double_rounding, "
                                                              "rounding: half_up}"),
     15, "requantize.rounding", ["scheme double_rounding rounds half_away, got half_up"]),
    ("shift_only without power-of-two scales", replace_line(15, "requantize: {scheme: shift_only, rounding: half_up}"),
     15, "requantize.scheme", ["shift_only needs power-of-two scales", "operands.input.scale is any"]),
    ("rounding error inside an op override", GOOD.replace("float64_round, rounding: half_away",
                                                          "single_rounding, rounding: half_away"),
     21, "ops.fully_connected.requantize.rounding", ["(for fully_connected)", "single_rounding rounds half_up"]),
    ("incomplete tail", replace_line(15, "requantize: {scheme: double_rounding, rounding: half_away, "
                                         "tail: {multiple: 8, scheme: double_rounding}}"),
     15, "requantize.tail.rounding", ["missing"]),
    ("tail multiple out of range", replace_line(15, "requantize: {scheme: double_rounding, rounding: half_away, "
                                                    "tail: {multiple: 1, scheme: double_rounding, "
                                                    "rounding: half_away}}"),
     15, "requantize.tail.multiple", ["1 is out of range", "[2, 1024]"]),
    ("int16 variant that is not 16-bit", GOOD + "  int16_activations:\n    mac: {accumulator: {bits: 64}}\n", 22,
     "ops.int16_activations", ["8-bit activations", "operands.input.bits: 16"]),
    ("duplicate key", GOOD + "output: {overflow: wrap}\n", 22, "output", ["duplicate key (first on line 16)"]),
    ("non-string key", GOOD + "8: eight\n", 22, "(document)", ["key '8' is not a string"]),
    ("unknown built-in base", replace_line(4, "base: tflite"), 4, "base",
     ["unknown built-in target 'tflite'", "tflite-reference"]),
    ("missing base file", replace_line(4, "base: nowhere/base.yaml"), 4, "base", ["no such file"]),
]


@pytest.mark.parametrize("case,text,line,key,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_profile(tmp_path, case, text, line, key, fragments):
    msg = error_of(write(tmp_path, text))
    prefix = f"{tmp_path / 'bad.yaml'}:{line}: {key}"
    assert msg.startswith(prefix), f"{msg!r} does not start with {prefix!r}"
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_case_lines_are_what_the_cases_say():
    # guard the table above: the line numbers used by replace_line match GOOD's layout
    lines = GOOD.splitlines()
    assert lines[11].startswith("  accumulator:") and lines[14].startswith("requantize:")
    assert lines[15].startswith("output:") and lines[17].startswith("calibration:") and len(lines) == 21


@pytest.mark.parametrize("text,line,fragment", [
    ("schema_version: 1\nname: x\nsummary: [unclosed\n", 4, "YAML syntax error"),
    ("schema_version: 1\nname: x\n  summary: bad indent\n", 3, "YAML syntax error"),
    ("schema_version: 1\nname: 'x\n", 3, "YAML syntax error"),
    ("schema_version: 1\n---\nname: x\n", 2, "YAML syntax error: expected a single document"),
])
def test_broken_yaml_syntax(tmp_path, text, line, fragment):
    msg = error_of(write(tmp_path, text))
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:{line}: {fragment}"), msg


@pytest.mark.parametrize("text,fragment", [
    ("- schema_version: 1\n- name: x\n", "got a list; expected a mapping"),
    ("just a string\n", "got a scalar 'just a string'; expected a mapping"),
    ("", "the file is empty; expected a mapping"),
    ("# only a comment\n", "the file is empty; expected a mapping"),
])
def test_non_mapping_document(tmp_path, text, fragment):
    msg = error_of(write(tmp_path, text))
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:1: (document): {fragment}"), msg


def test_unsafe_yaml_tags_are_refused(tmp_path):
    text = GOOD.replace("summary: a complete", "summary: !!python/object/apply:os.system ['true']\nx: a complete")
    msg = error_of(write(tmp_path, text))
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:3: unsupported YAML:") and "python/object/apply" in msg


def test_yaml_anchors_and_merge_keys_are_plain_data(tmp_path):
    text = GOOD.replace("  input:   {bits: 8, signed: true, symmetric: false, range: full, granularity: per-tensor, "
                        "scale: any}",
                        "  input: &act {bits: 8, signed: true, symmetric: false, range: full, "
                        "granularity: per-tensor, scale: any}")
    text = text.replace("  output:  {bits: 8, signed: true, symmetric: false, range: full, granularity: per-tensor, "
                        "scale: any}", "  output: {<<: *act, bits: 16}")
    sem = load_target(write(tmp_path, text, "anchors.yaml")).for_op("conv2d")
    assert (sem.output.bits, sem.output.symmetric, sem.input.bits) == (16, False, 8)


def test_bad_value_inside_a_base_chain_names_the_file_that_holds_it(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, replace_line(12, "  accumulator: {bits: 7, overflow: wrap}"), "sub/base.yaml")
    top = write(tmp_path, "schema_version: 1\nname: top\nsummary: s\nbase: sub/base.yaml\n", "top.yaml")
    msg = error_of(top)
    assert re.search(r"sub/base\.yaml:12: mac\.accumulator\.bits: 7 is out of range", msg), msg


def test_missing_key_after_merge_points_at_the_file_that_lacks_it(tmp_path):
    # the base lacks quantize; the top file does not add it
    write(tmp_path, replace_line(17, "# no quantize"), "base.yaml")
    top = write(tmp_path, "schema_version: 1\nname: top\nsummary: s\nbase: base.yaml\n", "top.yaml")
    msg = error_of(top)
    assert "quantize: missing" in msg and "expected a mapping with keys rounding" in msg


def test_builtin_base_path_outside_builtins_is_resolved_relative_to_the_file(tmp_path):
    write(tmp_path, GOOD, "good.yaml")
    top = write(tmp_path, "schema_version: 1\nname: top\nsummary: s\nbase: ./good.yaml\n", "top.yaml")
    assert load_target(top).semantics == load_target(tmp_path / "good.yaml").semantics


@pytest.mark.parametrize("extra,key", [
    ("loop: &loop [*loop]\n", "loop"),
    ("operands2: &m {self: *m}\n", "operands2"),
    ("bomb: &b0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
     + "".join(f"b{i}: &b{i} [*b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, "
               f"*b{i - 1}, *b{i - 1}, *b{i - 1}]\n" for i in range(1, 9)), "bomb"),
])
def test_recursive_and_exploding_aliases_are_plain_errors(tmp_path, extra, key):
    msg = error_of(write(tmp_path, GOOD + extra))
    assert "unknown key" in msg and f": {key}:" in msg
