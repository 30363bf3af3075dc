"""hwsim.quantize with non-uniform (codebook) weights: run on a target with a lookup stage, refused elsewhere."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import hwsim
from hwsim.demo import load_digits, model_path


@pytest.fixture(scope="module")
def digits():
    return hwsim.load_model(model_path()), load_digits()


def _lookup_target(tmp_path, index_bits):
    path = tmp_path / f"lut{index_bits}.yaml"
    path.write_text(textwrap.dedent(f"""\
        schema_version: 1
        name: npu-lut{index_bits}
        summary: onnxruntime-x86 with a {index_bits}-bit weight lookup stage
        base: onnxruntime-x86
        operands:
          weights: {{lookup: {{index_bits: {index_bits}}}}}
        """))
    return hwsim.load_target(path)


@pytest.mark.parametrize("method, index_bits", [("kmeans", 4), ("log", 4), ("binary", 3)])
def test_codebook_weights_run_on_a_lookup_target(digits, tmp_path, method, index_bits):
    g, d = digits
    target = _lookup_target(tmp_path, index_bits)
    q = hwsim.quantize(g, target, {"image": d["x_train"][:64]}, weight_method=method)
    weights = [t for t in q.tensors.values() if t.lookup is not None]
    assert len(weights) == 5                                 # every conv and the fully connected layer
    for t in weights:
        # the executed codes are the table entries the indices select, with at most 2^index_bits per channel
        rows = t.data.reshape(t.data.shape[0], -1)
        assert max(len(np.unique(r)) for r in rows) <= 1 << index_bits
        assert t.lookup.index_bits <= index_bits
    x, y = d["x_test"][:200], d["y_test"][:200]
    out = hwsim.simulate(q, target, {"image": x}).outputs["logits"]
    ref = hwsim.float_reference(g, {"image": x})["logits"]
    # the bundled model keeps most of its float predictions with 16 (8 for binary code) levels per channel
    assert np.mean(out.argmax(1) == ref.argmax(1)) > 0.8
    assert np.mean(out.argmax(1) == y) > 0.75


def test_codebook_weights_are_refused_without_a_lookup_stage(digits):
    g, d = digits
    with pytest.raises(ValueError, match="target tflm has no weight lookup stage"):
        hwsim.quantize(g, "tflm", {"image": d["x_train"][:16]}, weight_method="kmeans")


def test_codebook_weights_refuse_adaround_and_unknown_methods(digits, tmp_path):
    g, d = digits
    target = _lookup_target(tmp_path, 4)
    with pytest.raises(ValueError, match="adaround"):
        hwsim.quantize(g, target, {"image": d["x_train"][:16]}, weight_method="kmeans", ptq=("adaround",))
    with pytest.raises(ValueError, match="weight_method: expected one of minmax, mse, kmeans, log, binary"):
        hwsim.quantize(g, target, {"image": d["x_train"][:16]}, weight_method="lloyd")
