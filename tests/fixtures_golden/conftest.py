"""Shared set-up: the bundled digits model, small npz files, and fixture directories recorded once per session."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import hwsim
from hwsim.demo import load_digits, model_path

#: the two targets the round trip runs on: a fixed-point engine and a narrow shift-only NPU
TARGETS = ("tflite-reference", "npu-acc16")


@pytest.fixture(scope="session")
def digits():
    d = load_digits()
    return {"x": d["x_test"][:3], "calib": d["x_train"][:64]}


@pytest.fixture(scope="session")
def npz(tmp_path_factory, digits):
    """in.npz (3 test images) and cal.npz (64 training images), keyed by the model's input name."""
    root = tmp_path_factory.mktemp("npz")
    np.savez(root / "in.npz", image=digits["x"])
    np.savez(root / "cal.npz", image=digits["calib"])
    return {"in": str(root / "in.npz"), "cal": str(root / "cal.npz")}


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A private copy of the demo model (tests may change or remove it)."""
    path = tmp_path_factory.mktemp("model") / "digits_cnn.onnx"
    shutil.copyfile(model_path(), path)
    return path


@pytest.fixture(scope="session")
def recorded(tmp_path_factory, digits, model_file):
    """target name -> a fixture directory recorded from model_file (do not modify: copy it)."""
    root = tmp_path_factory.mktemp("recorded")
    graph = hwsim.load_model(model_file)
    out = {}
    for target in TARGETS:
        hwsim.fixtures.record(graph, target, {"image": digits["x"]}, root / target, model_path=model_file,
                              calibration={"image": digits["calib"]})
        out[target] = root / target
    return out


@pytest.fixture()
def fixture_copy(recorded, tmp_path):
    """A function returning a private copy of the recorded directory of a target."""
    def copy(target):
        dest = tmp_path / f"copy-{target}"
        shutil.copytree(recorded[target], dest)
        return dest
    return copy
