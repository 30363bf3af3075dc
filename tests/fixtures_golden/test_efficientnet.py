"""Fixtures of the real model (EfficientNet-Lite0, 60 integer layers): record, check, export, a test bench re-run."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
from tests.conftest import SHARED, SHARED_MISSING

MODEL = SHARED / "models" / "efficientnet_lite0_fp32.onnx"
CALIB = SHARED / "models" / "efficientnet_lite0_calib.npz"


@pytest.mark.skipif(not MODEL.is_file(), reason=SHARED_MISSING)
def test_efficientnet_round_trip_on_tflite_reference(tmp_path):
    from .test_record_check import _bench_rerun

    with np.load(CALIB) as data:
        images = data["input"]
    g = hwsim.load_model(MODEL)
    m = hwsim.fixtures.record(g, "tflite-reference", {"input": images[:1]}, tmp_path / "fx",
                              calibration={"input": images[1:3]})
    ops = [layer["op"] for layer in m.layers]
    # Lite0: stem + 1 block of (depthwise, project) + 15 blocks of (expand, depthwise, project) + head = 49 convs;
    # stage repeats (1, 2, 2, 3, 3, 4, 1) give 16 - 7 = 9 residual adds; global average pool; classifier
    assert {op: ops.count(op) for op in set(ops)} == {"conv2d": 49, "add": 9, "mean": 1, "fully_connected": 1}
    assert _bench_rerun(tmp_path / "fx") == 50
    summary = hwsim.fixtures.check(tmp_path / "fx")
    assert summary.layers == len(m.layers) and summary.arrays_compared == len(m.files) - 1
