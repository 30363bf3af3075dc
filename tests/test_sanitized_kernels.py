"""Run the C-facing tests against an ASan + UBSan build of the kernels.

The extension is compiled a second time with HWSIM_SANITIZE=1 into a temporary
copy of the package, and the kernel, primitive and unit tests run in a
subprocess with the sanitizer runtime preloaded.  Any report aborts the run
(-fno-sanitize-recover=all), so a pass means no out-of-bounds access and no
signed-overflow or shift UB on every path those tests take.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The test directories whose tests call into C.
SANITIZED_TEST_DIRS = ("tests/unit", "tests/property", "tests/kernels")


def _runtime(name: str) -> str | None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    path = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.skipif(os.environ.get("HWSIM_SANITIZED_RUN") == "1", reason="already inside the sanitized run")
def test_kernels_under_asan_ubsan(tmp_path):
    asan = _runtime("libasan.so")
    ubsan = _runtime("libubsan.so")
    if asan is None or ubsan is None:
        pytest.skip("gcc with libasan/libubsan is needed for the sanitizer build")

    pkg_root = tmp_path / "pkg"
    shutil.copytree(ROOT / "hwsim", pkg_root / "hwsim", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(ROOT / "targets", pkg_root / "hwsim" / "targets_data", ignore=shutil.ignore_patterns("__pycache__"))
    build_dir = tmp_path / "build"
    env = dict(os.environ, HWSIM_SANITIZE="1")
    build = subprocess.run(
        [sys.executable, "hwsim/_native/build.py", str(build_dir)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    built = list(build_dir.glob("hwsim/_native/_hwsim_c*.so"))
    assert len(built) == 1, f"expected one sanitized extension, found {built}"
    shutil.copy2(built[0], pkg_root / "hwsim" / "_native" / built[0].name)

    dirs = [d for d in SANITIZED_TEST_DIRS if (ROOT / d).is_dir()]
    run_env = dict(
        os.environ,
        PYTHONPATH=str(pkg_root),
        LD_PRELOAD=f"{asan} {ubsan}",
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        HWSIM_SANITIZED_RUN="1",
    )
    run_env.pop("HWSIM_SANITIZE", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import hwsim._native as n; print(n.__file__)"],
        cwd=tmp_path, env=run_env, capture_output=True, text=True,
    )
    assert probe.returncode == 0 and str(pkg_root) in probe.stdout, probe.stdout + probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *[str(ROOT / d) for d in dirs]],
        cwd=tmp_path, env=run_env, capture_output=True, text=True,
    )
    tail = (result.stdout[-6000:] + "\n" + result.stderr[-6000:])
    assert result.returncode in (0, 5), tail
    assert "ERROR: AddressSanitizer" not in tail and "runtime error:" not in tail, tail
