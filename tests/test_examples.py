"""The runnable examples run, quickly, and show what they claim."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("act", ["lsq", "pact"])
def test_qat_digits_recovers_what_ptq_lost(act):
    # W2A3 on the digits: post-training quantization loses > 5 points; fine-tuning through the LSQ / PACT
    # quantizers must win back most of it: clearly above PTQ and within 3 points of the float model
    result = _load("qat_digits").run("W2A3", seed=20261127, act=act, verbose=False)
    assert result["float"] >= 0.95
    assert result["ptq"] <= result["float"] - 0.05
    assert result["qat"] >= result["ptq"] + 0.05
    assert result["qat"] >= result["float"] - 0.03


def test_qat_digits_is_deterministic_and_runs_as_a_script():
    out = subprocess.run([sys.executable, str(EXAMPLES / "qat_digits.py"), "--bits", "W2A3"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    again = _load("qat_digits").run("W2A3", verbose=False)
    # the printed table carries the same numbers as a second, in-process run (fixed seeds)
    assert f"{again['float']:.1%}" in out and f"{again['ptq']:.1%}" in out and f"{again['qat']:.1%}" in out
    assert "PTQ" in out and "QAT" in out


def test_qat_digits_rejects_bad_bits():
    with pytest.raises(ValueError, match="WxAy"):
        _load("qat_digits").run("8bit", verbose=False)
