"""The ``hwsim_golden`` fixture (hwsim.pytest_plugin), driven through pytest's own ``pytester``."""

from __future__ import annotations

import hashlib
import json
import textwrap

import numpy as np
import onnx  # noqa: F401
import pytest

import hwsim.graph.onnx_import  # noqa: F401

# pytester's in-process runs forget the modules first imported inside them; onnx's protobuf
# descriptors abort the process when imported a second time, so they are imported here, once.

pytest_plugins = ["pytester"]


@pytest.fixture()
def user_project(pytester, request, digits, model_file):
    """A user's project: a test that locks the digits model on npu-acc16 with hwsim_golden."""
    np.savez(pytester.path / "data.npz", x=digits["x"][:2], calib=digits["calib"][:32])
    pytester.makepyfile(test_model=textwrap.dedent(f"""
        import numpy as np

        def test_digits_on_npu(hwsim_golden):
            data = np.load("data.npz")
            hwsim_golden.check({str(model_file)!r}, "npu-acc16", {{"image": data["x"]}}, "digits_npu",
                               calibration={{"image": data["calib"]}})
    """))
    # the plugin comes from hwsim's pytest11 entry point when hwsim is installed; else load it by name
    args = [] if request.config.pluginmanager.hasplugin("hwsim") else ["-p", "hwsim.pytest_plugin"]
    return pytester, args


def test_missing_golden_vectors_fail_with_a_hint(user_project):
    pytester, args = user_project
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no golden vectors at *tests/golden/digits_npu; run pytest with "
                                 "--hwsim-update-golden*"])


def test_record_then_check_then_catch_a_changed_value(user_project):
    pytester, args = user_project
    pytester.runpytest(*args, "--hwsim-update-golden").assert_outcomes(passed=1)
    golden = pytester.path / "tests" / "golden" / "digits_npu"
    assert (golden / "manifest.json").is_file()
    pytester.runpytest(*args).assert_outcomes(passed=1)

    # a value changed and its hash re-written: the re-run names layer, file, index, expected and actual
    path = "layers/05_conv4_conv/output.npy"
    y = np.load(golden / path)
    original = int(y.reshape(-1)[3])
    y.reshape(-1)[3] = original ^ 1
    np.save(golden / path, y)
    m = json.loads((golden / "manifest.json").read_text())
    next(f for f in m["files"] if f["path"] == path)["sha256"] = hashlib.sha256((golden / path).read_bytes()).hexdigest()
    (golden / "manifest.json").write_text(json.dumps(m))
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*layer 'conv4/conv' (conv2d), {path}: first mismatch at flat index 3 *"
                                 f"expected {original ^ 1}, actual {original}*"])

    # a hand-edited file without a re-hash: caught by its hash
    raw = bytearray((golden / path).read_bytes())
    raw[-1] ^= 0x10
    (golden / path).write_bytes(bytes(raw))
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{path}: hash mismatch*"])

    # re-recording replaces the directory and the test passes again
    pytester.runpytest(*args, "--hwsim-update-golden").assert_outcomes(passed=1)
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_golden_dir_ini_and_bad_names(pytester, request):
    args = [] if request.config.pluginmanager.hasplugin("hwsim") else ["-p", "hwsim.pytest_plugin"]
    pytester.makeini("[pytest]\nhwsim_golden_dir = vectors\n")
    pytester.makepyfile(test_names=textwrap.dedent("""
        import pytest

        def test_root(hwsim_golden, pytestconfig):
            assert hwsim_golden.root == pytestconfig.rootpath / "vectors"
            assert hwsim_golden.update is False

        def test_bad_name(hwsim_golden):
            with pytest.raises(ValueError, match="name: expected letters"):
                hwsim_golden.directory("../escape")
    """))
    pytester.runpytest(*args).assert_outcomes(passed=2)
