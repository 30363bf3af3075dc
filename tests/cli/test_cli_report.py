"""``hwsim report``: tables, --json / --html, and exit status 2 naming the problem on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.demo import load_digits, model_path

MODEL = str(model_path())


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    d = load_digits()
    root = tmp_path_factory.mktemp("npz")
    np.savez(root / "in.npz", image=d["x_test"][:30])
    np.savez(root / "cal.npz", image=d["x_train"][:24])
    np.savez(root / "labels.npz", logits=d["y_test"][:30])
    np.savez(root / "wrong.npz", pixels=d["x_test"][:3], other=d["x_test"][:3])
    return root


def _args(npz, *extra):
    return ["report", MODEL, "-t", "tflm", "-t", "npu-acc16", "-i", str(npz / "in.npz"),
            "--calib", str(npz / "cal.npz"), *extra]


def test_report_prints_tables_and_writes_json_and_html(npz, tmp_path, capsys):
    js, page = tmp_path / "out" / "r.json", tmp_path / "r.html"
    assert main(_args(npz, "--labels", str(npz / "labels.npz"), "--json", str(js), "--html", str(page))) == 0
    out = capsys.readouterr().out
    assert "tflm" in out and "npu-acc16" in out and "SQNR" in out and "accuracy" in out
    assert f"wrote {js}" in out and f"wrote {page}" in out
    d = json.loads(js.read_text())
    assert d["schema"] == "hwsim.report/1" and d["n_samples"] == 30
    assert [t["name"] for t in d["targets"]] == ["tflm", "npu-acc16"]
    assert d["targets"][0]["outputs"][0]["accuracy"] is not None
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_quiet_prints_nothing(npz, tmp_path, capsys):
    assert main(_args(npz, "-q", "--json", str(tmp_path / "r.json"), "--threads", "2")) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert (tmp_path / "r.json").is_file()


def test_existing_output_is_kept_and_checked_before_any_work(npz, tmp_path, capsys):
    js = tmp_path / "r.json"
    js.write_text("keep me")
    # the model does not exist either: the output check comes first, so nothing ran
    assert main(["report", str(tmp_path / "missing.onnx"), "-t", "tflm", "-i", str(npz / "in.npz"),
                 "--json", str(js)]) == 2
    assert "r.json: already exists; use --force" in capsys.readouterr().err
    assert js.read_text() == "keep me"
    assert main(_args(npz, "-q", "--json", str(js), "--force")) == 0
    assert json.loads(js.read_text())["schema"] == "hwsim.report/1"


def _bad(npz, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    (tmp_path / "a_dir").mkdir()
    i, cal = str(npz / "in.npz"), str(npz / "cal.npz")
    return [
        (["report", str(tmp_path / "nope.onnx"), "-t", "tflm", "-i", i, "--calib", cal],
         "nope.onnx: no such model file"),
        (["report", MODEL, "-t", "tflm", "-i", str(tmp_path / "none.npz"), "--calib", cal],
         "none.npz: no such input file"),
        (["report", MODEL, "-t", "tflm", "-i", str(npz / "wrong.npz"), "--calib", cal],
         "no array named 'image'; expected shape [N, 1, 8, 8] and dtype float32"),
        (["report", MODEL, "-t", "tflm", "-t", "no-such-chip", "-i", i, "--calib", cal],
         "unknown built-in target 'no-such-chip'; expected one of: arm-neon-mlal"),
        (["report", MODEL, "-t", "tflm", "-i", i], "a float model; give --calib CAL.npz"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", str(npz / "wrong.npz")],
         "wrong.npz: no array named 'image'"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--labels", str(npz / "wrong.npz")],
         "array 'other' is not a model output (the model's outputs: logits)"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--labels", str(npz / "cal.npz")],
         "labels['logits']: expected 30 integer class labels"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--json", str(blocker / "r.json")],
         "is not a directory"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--html", str(tmp_path / "a_dir")],
         "a_dir: is a directory; expected a file name"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--json", str(tmp_path / "same"),
          "--html", str(tmp_path / "same")], "--json and --html name the same file"),
        (["report", MODEL, "-t", "tflm", "-t", "tflm", "-i", i, "--calib", cal], "-t tflm: given twice"),
        (["report", MODEL, "-t", "tflm", "-i", i, "--calib", cal, "--threads", "0"],
         "--threads: expected an integer >= 1"),
    ]


def test_bad_input_exits_2_naming_the_problem(npz, tmp_path, capsys):
    for argv, message in _bad(npz, tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]    # nothing written
    assert not any((tmp_path / "a_dir").iterdir())


def test_unwritable_directory(npz, tmp_path, capsys):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root may write into a read-only directory; /proc refuses new files to everyone
        target = locked if os.geteuid() != 0 else "/proc"
        if target == "/proc" and not os.path.isdir("/proc"):
            pytest.skip("running as root without /proc: no directory that refuses a new file")
        assert main(_args(npz, "--html", f"{target}/sub/r.html")) == 2
        assert f"cannot write in directory {target}" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


@pytest.fixture()
def quantized_model(tmp_path):
    import onnx

    from sim import small_graph     # tests/sim (pytest puts tests/ on sys.path for these packages)

    _, model = small_graph.make(np.random.default_rng(0), return_model=True)
    path = tmp_path / "small_qop.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(1).normal(0, 1, (1, 3, 8, 8)).astype(np.float32))
    return path, tmp_path / "x.npz"


def test_quantized_model_on_targets_that_fuse_differently(quantized_model, tmp_path, capsys):
    path, x = quantized_model
    js = tmp_path / "q.json"
    # onnxruntime-x86 and xnnpack load the model with different QDQ fusion rules: two graphs, one report
    assert main(["report", str(path), "-t", "xnnpack", "-t", "onnxruntime-x86", "-i", str(x), "--json", str(js),
                 "-q"]) == 0
    d = json.loads(js.read_text())
    assert [t["name"] for t in d["targets"]] == ["xnnpack", "onnxruntime-x86"]
    assert all(t["graph_kind"] == "qoperator" for t in d["targets"])
    assert all(t["layers"] for t in d["targets"])
    assert main(["report", str(path), "-t", "tflm", "-i", str(x), "--calib", str(x)]) == 2
    assert "is already quantized (qoperator); --calib is for a float model" in capsys.readouterr().err
