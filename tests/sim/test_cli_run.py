"""``hwsim run``: npz in / npz out, float models through --calib, and exit status 2 on bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from hwsim.cli import main

from . import ort_models as om
from . import small_graph


@pytest.fixture()
def qmodel(tmp_path):
    sess, model = small_graph.make(np.random.default_rng(0), return_model=True)
    path = tmp_path / "small_qop.onnx"
    onnx.save(model, path)
    return sess, path


def _x(seed=1):
    return np.random.default_rng(seed).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)


def test_run_writes_onnxruntimes_outputs(qmodel, tmp_path, capsys):
    sess, path = qmodel
    x = _x()
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert list(out.files) == ["y"]
        np.testing.assert_array_equal(out["y"], sess.run(None, {"x": x})[0])
    assert "y [1, 10] float32" in capsys.readouterr().out


def test_single_input_model_takes_one_array_under_any_key(qmodel, tmp_path):
    sess, path = qmodel
    x = _x(2)
    np.savez(tmp_path / "in.npz", anything=x)
    assert main(["run", str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "o.npz"), "--threads", "2"]) == 0
    with np.load(tmp_path / "o.npz") as out:
        np.testing.assert_array_equal(out["y"], sess.run(None, {"x": x})[0])


def test_existing_output_is_kept_without_force(qmodel, tmp_path, capsys):
    _, path = qmodel
    np.savez(tmp_path / "in.npz", x=_x())
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep me")
    args = ["run", str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"), "-o", str(out)]
    assert main(args) == 2
    assert "already exists; use --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(args + ["--force"]) == 0
    assert out.read_bytes() != b"keep me"


EXPECTED = "expected shape [1, 3, 8, 8] and dtype float32"


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((1, 3, 8, 7), np.float32)}, f"input 'x': got shape [1, 3, 8, 7]; {EXPECTED}"),
    ({"x": np.zeros((1, 3, 8, 8), np.int16)}, f"input 'x': got dtype int16; {EXPECTED}"),
    ({"a": np.zeros(1), "b": np.zeros(1)}, "no array named 'x'; expected shape [1, 3, 8, 8] and dtype float32"),
    ({"x": np.zeros((1, 3, 8, 8), np.float32), "extra": np.zeros(1)}, "array 'extra' is not a model input"),
])
def test_bad_inputs_exit_2_naming_the_tensor(qmodel, tmp_path, capsys, arrays, message):
    _, path = qmodel
    np.savez(tmp_path / "in.npz", **arrays)
    assert main(["run", str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "o.npz")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_corrupt_files_and_unknown_target_exit_2(qmodel, tmp_path, capsys):
    _, path = qmodel
    np.savez(tmp_path / "in.npz", x=_x())
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:300])
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04 not really")
    cases = [
        [str(truncated), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz")],
        [str(tmp_path / "missing.onnx"), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz")],
        [str(path), "-t", "no-such-target", "-i", str(tmp_path / "in.npz")],
        [str(path), "-t", "onnxruntime-x86", "-i", str(bad_npz)],
        [str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "nothing.npz")],
    ]
    for args in cases:
        assert main(["run", *args, "-o", str(tmp_path / "o.npz")]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("hwsim: error: ") and "Traceback" not in err


def test_unsupported_op_exits_2_with_op_and_node(tmp_path, capsys):
    m = om.model([helper.make_node("Hardmax", ["x"], ["y"], name="the_hardmax")], [("x", np.float32, [1, 4])],
                 [("y", np.float32, [1, 4])], [])
    onnx.save(m, tmp_path / "hm.onnx")
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 4), np.float32))
    assert main(["run", str(tmp_path / "hm.onnx"), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "o.npz"), "--calib", str(tmp_path / "in.npz")]) == 2
    err = capsys.readouterr().err
    assert "Hardmax" in err and "the_hardmax" in err


def _float_model(tmp_path):
    rng = np.random.default_rng(4)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    wf = rng.normal(0, 0.3, (10, 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("GlobalAveragePool", ["r1"], ["gp"]),
             helper.make_node("Flatten", ["gp"], ["fl"]),
             helper.make_node("Gemm", ["fl", "wf"], ["y"], transB=1)]
    m = om.model(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, [1, 10])],
                 [om.const("w1", w1), om.const("b1", b1), om.const("wf", wf)])
    onnx.save(m, tmp_path / "float.onnx")
    return tmp_path / "float.onnx", om.session(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32)],
                                               [om.const("w1", w1), om.const("b1", b1), om.const("wf", wf)])


def test_float_model_needs_calib_then_is_quantized(tmp_path, capsys):
    path, sess = _float_model(tmp_path)
    np.savez(tmp_path / "in.npz", x=_x(5))
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(6).normal(0, 1, (8, 3, 8, 8)).astype(np.float32))
    base = ["run", str(path), "-t", "onnxruntime-x86", "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.npz")]
    assert main(base) == 2
    assert "a float model; give --calib" in capsys.readouterr().err
    for target in ("onnxruntime-x86", "tflite-reference", "npu-acc24"):
        base[3] = target
        assert main(base + ["--calib", str(tmp_path / "cal.npz"), "--force"]) == 0
        with np.load(tmp_path / "o.npz") as out:
            y = out["y"]
        want = sess.run(None, {"x": _x(5)})[0]
        assert y.shape == want.shape and y.dtype == np.float32
        assert np.max(np.abs(y - want)) < 0.15 * np.max(np.abs(want)) + 0.05, target   # 8-bit MinMax error


def test_run_tflite_model_matches_litert(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "data" / "tflite" / "small_cnn.tflite"
    it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    (inp,), outs = it.get_input_details(), it.get_output_details()
    info = np.iinfo(inp["dtype"]) if np.dtype(inp["dtype"]).kind in "iu" else None
    rng = np.random.default_rng(8)
    x = (rng.integers(info.min, info.max + 1, inp["shape"]) if info else rng.normal(0, 1, inp["shape"]))
    x = x.astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    np.savez(tmp_path / "in.npz", only=x)
    assert main(["run", str(path), "-t", "tflite-reference", "-i", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as got:
        for d in outs:
            np.testing.assert_array_equal(got[d["name"]], it.get_tensor(d["index"]))
