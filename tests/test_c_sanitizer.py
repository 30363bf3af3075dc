"""Build and run the C primitive tests under ASan + UBSan (make -C tests/c asan)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

TESTS_C = pathlib.Path(__file__).resolve().parent / "c"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="needs make and a C compiler (cc/gcc)")
def test_c_primitives_under_asan_and_ubsan(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    proc = subprocess.run(
        ["make", "-C", str(TESTS_C), "asan", f"BUILD={tmp_path}", f"CC={cc}"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert ", 0 failures" in proc.stdout
