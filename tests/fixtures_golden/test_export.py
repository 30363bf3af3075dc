"""``hwsim fixtures export``: hex and mem parse back to the .npy values; the C headers compile with gcc
and a program over them prints checksums equal to numpy's."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from hwsim.cli import main


def _files(directory):
    m = json.loads((directory / "manifest.json").read_text())
    return [f for f in m["files"] if f["role"] != "calibration"]


def _from_hex(lines, dtype):
    """Parse $readmemh words back: two's complement of the storage width (written independently of the exporter)."""
    dt = np.dtype(dtype)
    width = 8 * dt.itemsize
    words = [int(s, 16) for s in lines]
    assert all(len(s) == width // 4 for s in lines)
    if dt.kind == "f":
        return np.array(words, dtype=f"u{dt.itemsize}").view(dt)
    if dt.kind == "i":
        words = [w - (1 << width) if w >> (width - 1) else w for w in words]
    return np.array(words, dtype=dt)


def test_hex_parses_back_to_every_array(recorded, tmp_path, capsys):
    d = recorded["tflite-reference"]
    out = tmp_path / "hex"
    assert main(["fixtures", "export", str(d), "--format", "hex", "-o", str(out)]) == 0
    files = _files(d)
    assert f"{len(files)} hex files" in capsys.readouterr().out
    for f in files:
        lines = (out / (f["path"][:-4] + ".hex")).read_text().splitlines()
        ref = np.load(d / f["path"])
        got = _from_hex(lines, f["dtype"])
        np.testing.assert_array_equal(got.view(f"u{ref.dtype.itemsize}"), ref.reshape(-1).view(f"u{ref.dtype.itemsize}"),
                                      err_msg=f["path"])
    # hand check: int8 -1 -> ff, int8 -128 -> 80, int32 accumulators take 8 digits
    assert _from_hex(["ff", "80", "7f"], "int8").tolist() == [-1, -128, 127]


def test_mem_has_comments_an_address_and_the_same_values(recorded, tmp_path):
    d = recorded["npu-acc16"]
    out = tmp_path / "mem"
    assert main(["fixtures", "export", str(d), "--format", "mem", "-o", str(out), "-q"]) == 0
    address = 0
    index = json.loads((out / "exports.json").read_text())["files"]
    for f, entry in zip(_files(d), index):
        lines = (out / (f["path"][:-4] + ".mem")).read_text().splitlines()
        comments = [s for s in lines if s.startswith("//")]
        assert comments and f["path"] in comments[0]
        at = [s for s in lines if s.startswith("@")]
        assert at == [f"@{address:08x}"]                  # the arrays lie back to back in one word memory
        values = lines[len(comments) + 1:]
        ref = np.load(d / f["path"])
        np.testing.assert_array_equal(_from_hex(values, f["dtype"]), ref.reshape(-1))
        assert entry["address"] == address and entry["count"] == ref.size
        address += ref.size


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_headers_compile_and_checksums_match(recorded, tmp_path):
    d = recorded["tflite-reference"]
    out = tmp_path / "c"
    assert main(["fixtures", "export", str(d), "--format", "c", "-o", str(out), "-q"]) == 0
    index = json.loads((out / "exports.json").read_text())["files"]
    headers = sorted({e["file"] for e in index})
    assert "model_io.h" in headers and "01_conv1_conv.h" in headers
    text = (out / "01_conv1_conv.h").read_text()
    assert "#ifndef HWSIM_FIXTURE_L01_CONV1_CONV_H" in text and "#include <stdint.h>" in text
    assert "static const int8_t l01_conv1_conv_weights[L01_CONV1_CONV_WEIGHTS_SIZE]" in text
    assert "#define L01_CONV1_CONV_WEIGHTS_DIM0 16" in text
    # checksum: sum over i of (i + 1) * (the element's bits as an unsigned 64-bit word, sign-extended for ints)
    body = ["#include <inttypes.h>", "#include <stdio.h>", "#include <string.h>"]
    body += [f'#include "{h}"' for h in headers]
    body += ["#define SUM(arr, n, T) do { uint64_t s = 0; for (size_t i = 0; i < (n); i++) { T v = (arr)[i]; "
             "uint64_t w = 0; if ((T)0.5 == 0) w = (uint64_t)(int64_t)v; else { memcpy(&w, &v, sizeof v); } "
             "s += (uint64_t)(i + 1) * w; } printf(\"%s %016\" PRIx64 \"\\n\", #arr, s); } while (0)",
             "int main(void) {"]
    for e in index:
        ctype = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
                 "float32": "float", "float64": "double"}[e["dtype"]]
        body.append(f"    SUM({e['array']}, {e['array'].upper()}_SIZE, {ctype});")
    body += ["    return 0;", "}"]
    (out / "main.c").write_text("\n".join(body) + "\n")
    exe = tmp_path / "sums"
    subprocess.run(["gcc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-float-equal",
                    "-I", str(out), str(out / "main.c"), "-o", str(exe)], check=True, capture_output=True)
    printed = dict(line.split() for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                           text=True).stdout.splitlines())
    assert len(printed) == len(index)
    for e in index:
        arr = np.load(d / e["source"]).reshape(-1)
        if arr.dtype.kind == "f":
            words = arr.view(f"u{arr.dtype.itemsize}").astype(np.uint64)
        else:
            words = arr.astype(np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            want = int(np.sum(words * np.arange(1, arr.size + 1, dtype=np.uint64), dtype=np.uint64))
        assert printed[e["array"]] == f"{want:016x}", e["source"]


def test_export_refuses_to_overwrite_and_only_replaces_its_own_output(recorded, tmp_path, capsys):
    d = recorded["npu-acc16"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    args = ["fixtures", "export", str(d), "--format", "hex", "-o", str(mine)]
    assert main(args) == 2 and "already exists; use --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 2 and "not a hwsim export" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"
    out = tmp_path / "hex"
    assert main(["fixtures", "export", str(d), "--format", "hex", "-o", str(out), "-q"]) == 0
    assert main(["fixtures", "export", str(d), "--format", "hex", "-o", str(out), "-q"]) == 2
    assert main(["fixtures", "export", str(d), "--format", "hex", "-o", str(out), "-q", "--force"]) == 0


def test_export_of_a_tampered_directory_fails_and_writes_nothing(fixture_copy, tmp_path, capsys):
    d = fixture_copy("npu-acc16")
    path = d / "layers/01_conv1_conv/bias.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))
    out = tmp_path / "c"
    assert main(["fixtures", "export", str(d), "--format", "c", "-o", str(out)]) == 1
    assert "layers/01_conv1_conv/bias.npy: hash mismatch" in capsys.readouterr().err
    assert not out.exists() and not any(p.name.startswith(".c.") for p in pathlib.Path(tmp_path).iterdir())


def test_default_export_directory_is_inside_the_fixtures(fixture_copy):
    d = fixture_copy("npu-acc16")
    assert main(["fixtures", "export", str(d), "--format", "mem", "-q"]) == 0
    assert (d / "mem" / "exports.json").is_file()
    assert main(["fixtures", "check", str(d), "-q"]) == 0       # exports do not disturb the recorded files
