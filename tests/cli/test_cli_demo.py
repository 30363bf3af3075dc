"""``hwsim demo``: the main job runs offline on the bundled model and writes a report it can stand behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwsim.cli import main


def _demo(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "hwsim", "demo", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full demo run (every built-in target), as a user types it, plus --json for the assertions."""
    d = tmp_path_factory.mktemp("demo")
    proc = _demo(d, "--json", "demo.json")
    return d, proc


def test_demo_succeeds_and_writes_the_html_report(demo_run):
    d, proc = demo_run
    assert proc.returncode == 0, proc.stderr
    html = (d / "hwsim-demo.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "hwsim demo" in html
    assert "accuracy" in proc.stdout and "npu-acc16" in proc.stdout


def test_demo_report_numbers(demo_run):
    d, proc = demo_run
    rep = json.loads((d / "demo.json").read_text())
    import hwsim

    names = [t["name"] for t in rep["targets"]]
    assert names == hwsim.list_targets()
    assert rep["n_samples"] == 540
    float_acc = rep["float"]["logits"]["accuracy"]
    assert float_acc >= 0.97          # the bundled model's held-out accuracy (training script: 98.3%)
    by_name = {t["name"]: t for t in rep["targets"]}

    def out(name):
        return by_name[name]["outputs"][0]

    # 8-bit per-channel engines stay within a point of float ...
    for name in ("onnxruntime-x86", "tflite-reference", "tflm", "xnnpack"):
        assert abs(out(name)["accuracy"] - float_acc) <= 0.01, name
        assert out(name)["metrics"]["sqnr_db"] > 30, name
    # ... while the narrow datapaths overflow somewhere in the MAC and lose signal quality
    def mac_events(name):
        return sum(layer["accumulator"]["events"][k] for layer in by_name[name]["layers"]
                   if layer.get("accumulator") for k in ("group", "accumulator"))
    assert mac_events("npu-acc16") > 0
    assert mac_events("x86-avx2") > 0
    assert mac_events("onnxruntime-x86") == 0
    sqnr = {name: out(name)["metrics"]["sqnr_db"] for name in by_name}
    assert sqnr["x86-avx2"] < sqnr["onnxruntime-x86"] - 10
    assert sqnr["npu-acc16"] < sqnr["npu-acc24"]


def test_demo_accumulator_sweep(demo_run):
    d, proc = demo_run
    sweep = json.loads((d / "demo.json").read_text())["accumulator_sweep"]
    assert sweep["base"] == "npu-acc16"
    rows = {r["accumulator_bits"]: r for r in sweep["rows"]}
    assert sorted(rows) == [12, 13, 14, 15, 16, 18, 20, 24]
    events = [rows[b]["mac_events"] for b in sorted(rows)]
    assert events == sorted(events, reverse=True)        # a wider saturating accumulator never saturates more
    assert events[-1] == 0 and rows[16]["mac_events"] > 0
    # the sweep's 16-bit row is npu-acc16 itself, its 24-bit row behaves as npu-acc24 (same operands otherwise)
    rep = json.loads((d / "demo.json").read_text())
    by_name = {t["name"]: t["outputs"][0] for t in rep["targets"]}
    assert rows[16]["sqnr_db"] == by_name["npu-acc16"]["metrics"]["sqnr_db"]
    assert rows[24]["accuracy"] == by_name["npu-acc24"]["accuracy"]
    # the cliff: a 12-bit accumulator loses the model, 18 bits lose nothing to overflow
    assert rows[12]["accuracy"] < rep["float"]["logits"]["accuracy"] - 0.1
    assert rows[18]["sqnr_db"] > rows[14]["sqnr_db"] + 20
    html = (d / "hwsim-demo.html").read_text(encoding="utf-8")
    assert "Accumulator width sweep" in html


def test_demo_keeps_an_existing_user_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "hwsim-demo.html"
    user.write_text("my notes\n")
    assert main(["demo", "-q", "--no-sweep", "-t", "tflm"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert user.read_text() == "my notes\n"
    # the demo's own earlier report is replaced without asking
    user.unlink()
    assert main(["demo", "-q", "--no-sweep", "-t", "tflm"]) == 0
    first = user.read_text()
    assert main(["demo", "-q", "--no-sweep", "-t", "tflm"]) == 0
    assert user.read_text() == first          # same model, same data: the same page, bit for bit


@pytest.mark.parametrize("args, message", [
    (["-t", "no-such-target"], "no-such-target"),
    (["--html", "a-file/r.html"], "is not a directory"),
    (["--threads", "0"], "--threads"),
])
def test_demo_bad_input_exits_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("a user's file, not a directory")
    assert main(["demo", "-q", "--no-sweep", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "hwsim-demo.html").exists()


def test_demo_json_needs_force(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text("{}")
    assert main(["demo", "-q", "--no-sweep", "-t", "tflm", "--json", "r.json"]) == 2
    assert (tmp_path / "r.json").read_text() == "{}"
    assert main(["demo", "-q", "--no-sweep", "-t", "tflm", "--json", "r.json", "--force"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "hwsim.report/1"
