"""The C kernels on aarch64: cross-compiled with the project's warning flags and
run under qemu user-mode emulation.

One build must run on any x86-64 or aarch64 Linux, so the x86 fast paths must
compile away on ARM and the portable kernels must give the same bits there.
The standalone C tests (primitives, requantiser, kernels) are the check.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "c_kernels"
CC = shutil.which("aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64")
WARN = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wshadow", "-Werror", f"-I{KERNELS}"]

pytestmark = pytest.mark.skipif(
    CC is None or QEMU is None,
    reason="needs aarch64-linux-gnu-gcc and qemu-aarch64 (Debian gcc-aarch64-linux-gnu, qemu-user; .ci/run installs them)",
)


@pytest.mark.parametrize("source", sorted(p.name for p in KERNELS.glob("*.c")))
def test_every_kernel_source_compiles_for_aarch64(source, tmp_path):
    result = subprocess.run([CC, *WARN, "-c", str(KERNELS / source), "-o", str(tmp_path / "k.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "test_source, sources",
    [
        ("test_fixedpoint.c", ["hw_primitives.c", "hw_requantize.c"]),
        ("test_kernels.c", sorted(p.name for p in KERNELS.glob("*.c"))),
    ],
)
def test_c_tests_pass_on_aarch64(test_source, sources, tmp_path):
    exe = tmp_path / "t"
    build = subprocess.run(
        [CC, *WARN, "-static", "-pthread", "-o", str(exe), str(ROOT / "tests" / "c" / test_source),
         *[str(KERNELS / s) for s in sources], "-lm"],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([QEMU, str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "0 failures" in run.stdout or "all checks passed" in run.stdout, run.stdout[-2000:]
