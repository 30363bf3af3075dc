"""``hwsim fixtures record`` on bad input: exit 2 with a message naming the problem, and nothing the user had
is changed (no directory created, an existing one untouched)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hwsim.cli import main


def _record(model, npz_in, out, *extra, target="npu-acc16", calib=None):
    args = ["fixtures", "record", str(model), "-t", target, "-i", str(npz_in), "-o", str(out), "-q"]
    if calib:
        args += ["--calib", str(calib)]
    return main(args + list(extra))


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_missing_model(tmp_path, npz, capsys):
    assert _record(tmp_path / "nope.onnx", npz["in"], tmp_path / "fx", calib=npz["cal"]) == 2
    assert f"{tmp_path / 'nope.onnx'}: no such model file" in capsys.readouterr().err
    assert not (tmp_path / "fx").exists()


def test_wrong_npz_keys(tmp_path, model_file, npz, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros((1, 1, 8, 8), np.float32), b=np.zeros((1, 1, 8, 8), np.float32))
    assert _record(model_file, bad, tmp_path / "fx", calib=npz["cal"]) == 2
    assert "no array named 'image'; expected shape [N, 1, 8, 8] and dtype float32" in capsys.readouterr().err
    assert not (tmp_path / "fx").exists()


def test_wrongly_shaped_input(tmp_path, model_file, npz, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((1, 1, 8, 7), np.float32))
    assert _record(model_file, bad, tmp_path / "fx", calib=npz["cal"]) == 2
    assert "input 'image': got shape [1, 1, 8, 7]" in capsys.readouterr().err
    assert not (tmp_path / "fx").exists()


def test_missing_inputs_file_and_missing_calibration(tmp_path, model_file, npz, capsys):
    assert _record(model_file, tmp_path / "none.npz", tmp_path / "fx", calib=npz["cal"]) == 2
    assert f"{tmp_path / 'none.npz'}: no such input file" in capsys.readouterr().err
    assert _record(model_file, npz["in"], tmp_path / "fx") == 2
    assert "a float model; give --calib CAL.npz" in capsys.readouterr().err
    assert not (tmp_path / "fx").exists()


def test_unknown_target(tmp_path, model_file, npz, capsys):
    assert _record(model_file, npz["in"], tmp_path / "fx", target="npu-acc99", calib=npz["cal"]) == 2
    assert "unknown built-in target 'npu-acc99'" in capsys.readouterr().err
    assert not (tmp_path / "fx").exists()


def test_existing_directory_without_force_is_kept(tmp_path, model_file, npz, recorded, capsys):
    import shutil

    d = tmp_path / "fx"
    shutil.copytree(recorded["npu-acc16"], d)
    before = _snapshot(d)
    assert _record(model_file, npz["in"], d, calib=npz["cal"]) == 2
    assert f"{d}: already exists; use --force" in capsys.readouterr().err
    assert _snapshot(d) == before
    # --force replaces an earlier fixture directory (here with another target's vectors)
    assert _record(model_file, npz["in"], d, "--force", target="tflite-reference", calib=npz["cal"]) == 0
    assert main(["fixtures", "check", str(d), "-q"]) == 0
    assert '"name": "tflite-reference"' in (d / "manifest.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["fx"]          # no temporary directories left behind


def test_force_never_replaces_a_directory_that_is_not_a_fixture_directory(tmp_path, model_file, npz, capsys):
    d = tmp_path / "my-work"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    (d / "manifest.json").write_text('{"format": "not hwsim"}')
    before = _snapshot(d)
    assert _record(model_file, npz["in"], d, "--force", calib=npz["cal"]) == 2
    assert "is not a hwsim fixture directory" in capsys.readouterr().err
    assert _snapshot(d) == before
    f = tmp_path / "a-file"
    f.write_text("x")
    assert _record(model_file, npz["in"], f, "--force", calib=npz["cal"]) == 2
    assert f.read_text() == "x"


def test_unwritable_parent(tmp_path, model_file, npz, capsys):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory")
    assert _record(model_file, npz["in"], blocker / "fx", calib=npz["cal"]) == 2
    assert f"{blocker}: cannot create the fixture directory there" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_parent(tmp_path, model_file, npz, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert _record(model_file, npz["in"], parent / "fx", calib=npz["cal"]) == 2
        assert "cannot create the fixture directory there" in capsys.readouterr().err
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o700)


def test_calibration_for_a_quantized_model_is_refused(tmp_path, npz, capsys):
    import onnx

    from tests.sim import small_graph

    _, model = small_graph.make(np.random.default_rng(0), return_model=True)
    path = tmp_path / "q.onnx"
    onnx.save(model, path)
    x = tmp_path / "x.npz"
    np.savez(x, x=np.random.default_rng(1).normal(0, 1, (1, 3, 8, 8)).astype(np.float32))
    assert _record(path, x, tmp_path / "fx", calib=x, target="onnxruntime-x86") == 2
    assert "is already quantized (qoperator); --calib is for a float model" in capsys.readouterr().err
    # a quantized model records without calibration and checks by re-loading the file
    assert _record(path, x, tmp_path / "fx", target="onnxruntime-x86") == 0
    assert main(["fixtures", "check", str(tmp_path / "fx"), "-q"]) == 0
