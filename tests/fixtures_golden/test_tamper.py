"""``hwsim fixtures check`` finds every kind of change: a flipped byte, a truncated or missing file
(by hash, before reading values), a value changed with the manifest re-hashed by hand (by
re-running: layer, file, index, expected, actual), a changed target profile, a changed model."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest

import hwsim
from hwsim.cli import main


def _check(directory, capsys, *extra):
    rc = main(["fixtures", "check", str(directory), *extra])
    captured = capsys.readouterr()
    return rc, captured.err, captured.out


def _entry(directory, path):
    m = json.loads((directory / "manifest.json").read_text())
    return m, next(f for f in m["files"] if f["path"] == path)


def test_a_flipped_byte_fails_by_hash_naming_the_file(fixture_copy, capsys):
    d = fixture_copy("tflite-reference")
    path = "layers/01_conv1_conv/weights.npy"
    raw = bytearray((d / path).read_bytes())
    raw[-5] ^= 0x01                                 # one weight's low bit
    (d / path).write_bytes(bytes(raw))
    rc, err, _ = _check(d, capsys)
    assert rc == 1
    assert f"{path}: hash mismatch" in err
    assert (d / path).read_bytes() == bytes(raw)     # never re-blessed or rewritten


def test_a_truncated_file_fails_by_hash(fixture_copy, capsys):
    d = fixture_copy("npu-acc16")
    path = "layers/08_fc/accumulator.npy"
    raw = (d / path).read_bytes()
    (d / path).write_bytes(raw[: len(raw) // 2])
    rc, err, _ = _check(d, capsys)
    assert rc == 1 and f"{path}: hash mismatch" in err


def test_a_missing_file_fails_naming_it(fixture_copy, capsys):
    d = fixture_copy("npu-acc16")
    (d / "layers/04_residual_add/output.npy").unlink()
    rc, err, _ = _check(d, capsys)
    assert rc == 1 and "layers/04_residual_add/output.npy: missing" in err


def test_a_changed_value_with_a_rehashed_manifest_fails_on_the_rerun(fixture_copy, capsys):
    d = fixture_copy("tflite-reference")
    path = "layers/03_conv3_pw_conv/accumulator.npy"
    acc = np.load(d / path)
    original = int(acc.reshape(-1)[37])
    acc.reshape(-1)[37] = original + 1
    np.save(d / path, acc)
    m, entry = _entry(d, path)
    entry["sha256"] = hashlib.sha256((d / path).read_bytes()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    rc, err, _ = _check(d, capsys)
    assert rc == 1
    # flat index 37 of [3, 8, 8, 16] NHWC is (0, 0, 2, 5)
    assert (f"layer 'conv3_pw/conv' (conv2d), {path}: first mismatch at flat index 37 [0, 0, 2, 5] "
            f"(accumulator, NHWC): expected {original + 1}, actual {original}") in err


def test_the_check_stops_at_the_first_mismatch_in_layer_order(fixture_copy):
    d = fixture_copy("npu-acc16")
    for path in ("layers/05_conv4_conv/output.npy", "layers/02_conv2_dw_conv/output.npy"):
        y = np.load(d / path)
        y.reshape(-1)[0] ^= 1
        np.save(d / path, y)
        m, entry = _entry(d, path)
        entry["sha256"] = hashlib.sha256((d / path).read_bytes()).hexdigest()
        (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(hwsim.fixtures.FixtureMismatch) as info:
        hwsim.fixtures.check(d)
    assert info.value.kind == "value" and info.value.layer == "conv2_dw/conv" and info.value.index == 0
    assert info.value.expected ^ 1 == info.value.actual


def test_a_changed_user_profile_fails_as_a_target_change(tmp_path, npz, model_file, capsys):
    profile = tmp_path / "my-npu.yaml"
    profile.write_text(hwsim.load_target("npu-acc16").to_yaml())
    d = tmp_path / "fx"
    assert main(["fixtures", "record", str(model_file), "-t", str(profile), "-i", npz["in"], "--calib", npz["cal"],
                 "-o", str(d), "-q"]) == 0
    m = json.loads((d / "manifest.json").read_text())
    assert m["target"]["source"] == "file" and m["target"]["path"] == str(profile.resolve())
    assert _check(d, capsys)[0] == 0
    text = profile.read_text()
    assert "{scheme: shift_only, rounding: half_up}" in text
    profile.write_text(text.replace("{scheme: shift_only, rounding: half_up}", "{scheme: shift_only, rounding: half_even}"))
    rc, err, _ = _check(d, capsys)
    assert rc == 1
    assert "the target profile changed" in err and "requantize.rounding" in err
    profile.unlink()
    rc, err, _ = _check(d, capsys)
    assert rc == 2 and f"{profile.resolve()}: the target profile file the fixtures were recorded with is missing" in err


def test_a_changed_or_missing_model_file(tmp_path, npz, model_file, capsys):
    model = tmp_path / "m.onnx"
    shutil.copyfile(model_file, model)
    d = tmp_path / "fx"
    assert main(["fixtures", "record", str(model), "-t", "tflite-reference", "-i", npz["in"], "--calib", npz["cal"],
                 "-o", str(d), "-q"]) == 0
    moved = tmp_path / "elsewhere.onnx"
    model.rename(moved)
    rc, err, _ = _check(d, capsys)
    assert rc == 2 and f"{model}: the model file the fixtures were recorded from is missing" in err
    assert _check(d, capsys, "--model", str(moved))[0] == 0
    proto = onnx.load(moved)
    proto.doc_string = "edited"
    onnx.save(proto, moved)
    rc, err, _ = _check(d, capsys, "--model", str(moved))
    assert rc == 1 and f"{moved}: the model file changed" in err


def test_not_a_fixture_directory_is_bad_usage(tmp_path, capsys):
    rc, err, _ = _check(tmp_path, capsys)
    assert rc == 2 and "not a fixture directory (no manifest.json)" in err
    rc, err, _ = _check(tmp_path / "nothing", capsys)
    assert rc == 2 and "no such fixture directory" in err
    (tmp_path / "manifest.json").write_text('{"format": "something else"}')
    rc, err, _ = _check(tmp_path, capsys)
    assert rc == 2 and "not a hwsim fixtures manifest" in err


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("layers"), "malformed manifest"),
    (lambda m: m["files"].remove(next(f for f in m["files"] if f["path"] == "model/input_0_image.npy")), "refers to 'model/input_0_image.npy', which its \"files\" list does not hold"),
    (lambda m: m["files"][1].update(path="../../etc/passwd"), "points outside the fixture directory"),
])
def test_a_malformed_manifest_is_bad_input(fixture_copy, capsys, edit, message):
    d = fixture_copy("npu-acc16")
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    rc, err, _ = _check(d, capsys)
    assert rc == 2 and message in err


def test_model_and_profile_are_found_relative_to_a_moved_fixture_directory(tmp_path, npz, model_file, capsys):
    """A repository clone moves the model, the profile and the fixtures together."""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    shutil.copyfile(model_file, repo / "models" / "m.onnx")
    (repo / "npu.yaml").write_text(hwsim.load_target("npu-acc16").to_yaml())
    assert main(["fixtures", "record", str(repo / "models" / "m.onnx"), "-t", str(repo / "npu.yaml"), "-i", npz["in"],
                 "--calib", npz["cal"], "-o", str(repo / "golden" / "m"), "-q"]) == 0
    m = json.loads((repo / "golden" / "m" / "manifest.json").read_text())
    assert m["model"]["relative_path"] == "../../models/m.onnx" and m["target"]["relative_path"] == "../../npu.yaml"
    clone = tmp_path / "clone"
    repo.rename(clone)
    assert _check(clone / "golden" / "m", capsys)[0] == 0
