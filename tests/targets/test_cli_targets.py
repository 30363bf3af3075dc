"""`hwsim targets list | show | validate`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from hwsim.cli import main
from hwsim.targets import list_targets, load_target

BAD = "schema_version: 1\nname: bad\nsummary: s\nbase: tflm\nmac:\n  accumulator: {bits: 128}\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_builtin_with_its_reference(capsys):
    code, out, err = run(capsys, "targets", "list")
    assert code == 0 and err == ""
    for name in list_targets():
        assert name in out
    assert "1.32.0" in out and "2.3.0" in out  # engine versions of the references
    assert len(list_targets()) == 11  # the 10 engine profiles and cpu-w4a8-blocked (issue 4)


@pytest.mark.parametrize("name", list_targets())
def test_show_prints_yaml_that_loads_back_equal(capsys, tmp_path, name):
    code, out, err = run(capsys, "targets", "show", name)
    assert code == 0 and err == ""
    data = yaml.safe_load(out)
    assert "base" not in data  # fully resolved
    assert data["name"] == name
    path = tmp_path / "shown.yaml"
    path.write_text(out)
    assert load_target(path) == load_target(name)


def test_show_a_file_resolves_its_base(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("schema_version: 1\nname: mine\nsummary: s\nbase: tflm\nmac:\n  accumulator: {bits: 24}\n")
    code, out, _ = run(capsys, "targets", "show", str(path))
    assert code == 0
    data = yaml.safe_load(out)
    assert data["mac"]["accumulator"] == {"bits": 24, "overflow": "wrap"}
    assert data["ops"]["fully_connected"]["requantize"] == {"scheme": "double_rounding", "rounding": "half_away"}
    assert data["operands"]["weights"]["range"] == "restricted"
    assert "tflm.yaml" in out.splitlines()[0] and "tflite-reference.yaml" in out.splitlines()[0]


def test_show_unknown_name_exits_2_with_the_names(capsys):
    code, out, err = run(capsys, "targets", "show", "no-such-target")
    assert code == 2 and out == ""
    assert err.startswith("hwsim: error: unknown built-in target 'no-such-target'")
    assert "tflite-reference" in err


def test_validate_good_file(capsys):
    code, out, err = run(capsys, "targets", "validate", load_target("npu-acc24").source)
    assert (code, out, err) == (0, "ok\n", "")


def test_validate_bad_file_exits_2_with_the_cause(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(capsys, "targets", "validate", str(path))
    assert code == 2 and out == ""
    assert err == (f"hwsim: error: {path}:6: mac.accumulator.bits: 128 is out of range; "
                   f"expected an integer in [8, 64]\n")


@pytest.mark.parametrize("text,fragment", [
    ("schema_version: 2\nname: x\nsummary: s\n", ":1: schema_version: unsupported version 2"),
    ("name: x\n", ":1: schema_version: missing"),
    ("schema_version: 1\nname: [\n", ":3: YAML syntax error"),
    ("- 1\n", ":1: (document): got a list"),
    ("schema_version: 1\nname: x\nsummary: s\nbase: x.yaml\n", ":4: base: cycle of bases"),
])
def test_validate_reports_each_kind_of_error(capsys, tmp_path, text, fragment):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "targets", "validate", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"hwsim: error: {path}{fragment}"), err


def test_validate_takes_a_file_even_without_yaml_suffix(capsys, tmp_path):
    path = tmp_path / "profile"
    path.write_text(BAD)
    code, _, err = run(capsys, "targets", "validate", str(path))
    assert code == 2 and f"{path}:6:" in err


def test_validate_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "targets", "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err


def test_targets_without_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["targets"])
    assert info.value.code == 2


def test_no_traceback_from_the_real_command(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    proc = subprocess.run([sys.executable, "-m", "hwsim", "targets", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "mac.accumulator.bits: 128 is out of range" in proc.stderr


def test_show_op_prints_the_resolved_semantics(capsys):
    code, out, err = run(capsys, "targets", "show", "arm-neon-sdot", "--op", "depthwise_conv2d")
    assert code == 0 and err == ""
    data = yaml.safe_load(out)
    assert (data["op"], data["activation_bits"]) == ("depthwise_conv2d", 8)
    # SEMANTICS 10.3: srdhm_half_up below 8 * floor(C / 8), double rounding for the rest
    assert data["requantize"] == {"scheme": "srdhm_half_up", "rounding": "half_up",
                                  "tail": {"multiple": 8, "scheme": "double_rounding", "rounding": "half_away"}}
    assert data["operands"]["weights"]["range"] == "restricted"


def test_show_op_16x8(capsys):
    code, out, _ = run(capsys, "targets", "show", "tflite-reference", "--op", "fully_connected",
                       "--activation-bits", "16")
    data = yaml.safe_load(out)
    assert code == 0
    assert data["mac"]["accumulator"] == {"bits": 64, "overflow": "wrap"}
    # LiteRT's 16x8 FULLY_CONNECTED rounds in double (ops.fully_connected.int16_activations; measured
    # in tests/sim/test_tflite_16x8.py), its 16x8 CONV_2D keeps the int64 overload
    assert data["requantize"] == {"scheme": "float64_round", "rounding": "half_away"}
    code, out, _ = run(capsys, "targets", "show", "tflite-reference", "--op", "conv2d", "--activation-bits", "16")
    assert code == 0
    assert yaml.safe_load(out)["requantize"] == {"scheme": "int64_reduced", "rounding": "half_up"}


@pytest.mark.parametrize("argv,fragment", [
    (["npu-acc16", "--op", "conv2d", "--activation-bits", "16"], "no 16-bit activations"),
    (["npu-acc16", "--activation-bits", "16"], "--activation-bits needs --op"),
])
def test_show_op_errors(capsys, argv, fragment):
    code, out, err = run(capsys, "targets", "show", *argv)
    assert code == 2 and out == "" and fragment in err
