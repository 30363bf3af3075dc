"""Terminal tables, JSON and the self-contained HTML page (checked in headless Chromium when installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from rich.console import Console

import hwsim

from .tiny import fc_graph

X = {"x": np.array([[127 / 128] * 4, [0.5] * 4, [-0.25] * 4], np.float32)}
NASTY = 'fc<b>&"x"</b>'


@pytest.fixture(scope="module")
def report():
    # a layer name with markup in it: every renderer must escape it
    return hwsim.compare(fc_graph(127, layer_name=NASTY), ["npu-acc16", "tflite-reference"], X)


def _text(report, width: int, detail=None) -> str:
    console = Console(record=True, width=width, color_system=None)
    report.render(console, detail=detail)
    return console.export_text()


def test_terminal_tables_side_by_side(report):
    text = _text(report, 140)
    assert "npu-acc16" in text and "tflite-reference" in text
    assert NASTY in text                          # printed literally, not taken as rich markup
    # the output table: MAC overflows of npu-acc16 (3 samples, each saturating) next to 0
    row = next(line for line in text.splitlines() if line.strip().startswith("MAC overflows"))
    npu_events = report.targets["npu-acc16"].mac_events
    assert row.split()[2:] == [f"{npu_events:,}", "0"]
    # accumulator table: 17 bits needed at worst, of 16 and 32
    assert "17/16" in text and "17/32" in text
    assert "exact" in text                         # the input quantize of npu-acc16 is exact (codes fit)


def test_terminal_tables_split_to_fit_a_narrow_console():
    rep = hwsim.compare(fc_graph(64), ["npu-acc16", "npu-acc24", "tflite-reference", "tflm", "xnnpack"],
                        {"x": np.full((2, 4), 0.5, np.float32)})
    text = _text(rep, 60, detail=False)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "(1/" in text and "…" not in text


def test_json_is_strict_and_complete(report, tmp_path):
    path = tmp_path / "r.json"
    text = report.to_json(path)
    assert path.read_text() == text
    d = json.loads(text)                           # strict JSON: no NaN / Infinity tokens
    assert "Infinity" not in text and "NaN" not in text
    assert d["schema"] == "hwsim.report/1" and d["n_samples"] == 3
    assert [t["name"] for t in d["targets"]] == ["npu-acc16", "tflite-reference"]
    npu = d["targets"][0]
    layer = next(l for l in npu["layers"] if l["name"] == NASTY)
    assert layer["accumulator"]["events"]["accumulator"] > 0 and layer["accumulator"]["min_safe_bits"] == 17
    hist = npu["outputs"][0]["error_histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == 3
    # histogram edges are shared across targets, so the bars compare
    assert hist["edges"] == d["targets"][1]["outputs"][0]["error_histogram"]["edges"]


def test_html_is_self_contained_and_escaped(report, tmp_path):
    html = report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == html
    # nothing fetched from anywhere: no src/href attributes, no CSS imports or url(), and the only
    # URL is the SVG namespace name
    assert not re.search(r"\b(src|href)\s*=", html)
    assert "@import" not in html and "url(" not in html and "<link" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert NASTY not in html and "fc&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;" in html
    assert html.count("<svg") >= 5               # SQNR chart, 2 histograms, 3 heat maps, channel strips


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian package 'chromium'; .ci/run "
                                                "installs it)")
def test_html_renders_in_headless_chromium(tmp_path):
    from hwsim.demo import load_digits, model_path

    d = load_digits()
    rep = hwsim.compare(hwsim.load_model(str(model_path())), ["tflm", "x86-avx2", "npu-acc16"],
                        {"image": d["x_test"][:60]}, calibration={"image": d["x_train"][:32]},
                        labels={"logits": d["y_test"][:60]})
    page = tmp_path / "report.html"
    rep.to_html(page)
    n_svg = page.read_text(encoding="utf-8").count("<svg")
    base = [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    run = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    # the page's script ran to its end without an exception, after every SVG was in the DOM
    assert 'data-rendered="ok"' in dom
    assert f"rendered {n_svg} svg" in dom
    console_errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert not console_errors, console_errors
    shot = tmp_path / "report.png"
    subprocess.run(base + ["--hide-scrollbars", "--window-size=1300,2000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_progress_bar_goes_to_stderr_only(capsys):
    quiet = hwsim.compare(fc_graph(127), ["npu-acc16", "tflm"], X)
    shown = hwsim.compare(fc_graph(127), ["npu-acc16", "tflm"], X, progress=True)
    assert capsys.readouterr().out == ""
    assert shown.to_json() == quiet.to_json()


def test_json_fields_are_the_documented_schema(report):
    d = report.to_dict()
    assert set(d) == {"schema", "hwsim_version", "model", "n_samples", "float", "targets"}
    t = d["targets"][0]
    assert set(t) == {"name", "summary", "reference", "graph_kind", "deviations", "outputs", "layers"}
    assert set(t["outputs"][0]) == {"name", "shape", "lsb", "metrics", "top1_agreement", "top5_agreement",
                                    "accuracy", "top5_accuracy", "error_histogram"}
    layer = t["layers"][1]
    assert set(layer) == {"name", "op", "tensor", "shape", "lsb", "metrics", "channel_clip_share", "accumulator"}
    assert set(layer["metrics"]) == {"mse", "sqnr_db", "max_abs_error", "max_error_lsb", "mean_error", "cosine",
                                     "rails_share", "clip_share"}
    assert set(layer["accumulator"]) == {"bits", "overflow", "group", "group_bits", "group_overflow",
                                         "input_zero_point", "events", "max_abs_acc", "headroom_bits",
                                         "worst_case_abs_acc", "min_safe_bits", "group_can_overflow", "k"}
    assert set(layer["accumulator"]["events"]) == {"group", "accumulator", "output"}
