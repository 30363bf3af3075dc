"""Build tests/c/test_kernels.c with every C source under ASan + UBSan (and
without Python's -fwrapv, so signed overflow is caught) and run it, leak
checking on."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the sanitizer binary")
def test_c_kernels_under_asan_ubsan(tmp_path):
    sources = sorted(str(p) for p in (ROOT / "c_kernels").glob("*.c"))
    exe = tmp_path / "test_kernels"
    cmd = ["gcc", *FLAGS, "-I", str(ROOT / "c_kernels"), "-o", str(exe), str(ROOT / "tests/c/test_kernels.c"),
           *sources, "-lpthread", "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1")
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all checks passed" in run.stdout
