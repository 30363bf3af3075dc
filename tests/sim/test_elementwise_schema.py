"""The target schema's ``elementwise`` section: validated like the rest, inherited, defaults per profile."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from hwsim.targets import ELEMENTWISE_SCHEMES, TargetError, list_targets, load_target, to_yaml

BASE = textwrap.dedent("""\
    schema_version: 1
    name: mine
    summary: derived from onnxruntime-x86
    base: onnxruntime-x86
    """)


def _write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_builtin_defaults_per_engine_family():
    assert load_target("onnxruntime-x86").elementwise_scheme("add") == "ort_fma_f32"
    assert load_target("onnxruntime-x86").elementwise_scheme("mean") == "ort_f32"
    assert load_target("onnxruntime-arm64").elementwise_scheme("add") == "ort_neon_fixed"
    assert load_target("onnxruntime-arm64").elementwise_scheme("mean") == "ort_f32"       # inherited from x86
    for name in ("tflite-reference", "tflm", "arm-neon-sdot"):
        t = load_target(name)
        assert t.elementwise_scheme("add") == "tflite_fixed_point"
        assert t.elementwise_scheme("mean") == "tflite_fixed_point"
    assert load_target("arm-neon-sdot").elementwise_scheme("softmax") == "tflite_lut_u16"
    assert load_target("tflite-reference").elementwise_scheme("softmax") == "tflite_reference"


def test_every_builtin_scheme_is_a_known_name():
    for name in list_targets():
        for op, scheme in load_target(name).elementwise:
            assert scheme in ELEMENTWISE_SCHEMES[op]


def test_unknown_scheme_is_refused_with_line_and_choices(tmp_path):
    path = _write(tmp_path, BASE + "elementwise: {add: ort_fma_f64}\n")
    with pytest.raises(TargetError, match=r"mine.yaml:5.*elementwise.add.*ort_fma_f32"):
        load_target(path)


def test_unknown_op_key_is_refused(tmp_path):
    with pytest.raises(TargetError, match=r"elementwise.*gelu"):
        load_target(_write(tmp_path, BASE + "elementwise: {gelu: ort_f32}\n"))


def test_override_merges_key_by_key_and_roundtrips(tmp_path):
    t = load_target(_write(tmp_path, BASE + "elementwise: {add: ort_neon_fixed}\n"))
    assert t.elementwise_scheme("add") == "ort_neon_fixed"
    assert t.elementwise_scheme("mean") == "ort_f32"
    again = load_target(_write(tmp_path, t.to_yaml()))
    assert again == t and again.elementwise == t.elementwise


def test_missing_scheme_is_an_error_naming_the_key(tmp_path):
    data = load_target("npu-acc16").describe()
    del data["elementwise"]
    t = load_target(_write(tmp_path, to_yaml(data)))
    assert t.elementwise == ()
    with pytest.raises(TargetError, match=r"no elementwise.add scheme"):
        t.elementwise_scheme("add")
