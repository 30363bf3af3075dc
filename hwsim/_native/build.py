"""cffi build script for hwsim's C kernels (API mode, out-of-line).

setuptools runs this through ``cffi_modules`` during ``pip install``; nothing
else is needed.  ``HWSIM_SANITIZE=1`` builds with ASan + UBSan (tests only).
"""

from __future__ import annotations

import os
import pathlib

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[2]
KERNELS = ROOT / "c_kernels"
# The headers cffi parses; the preprocessor is not run on them, so we drop
# its lines (include guards, includes).
CDEF_HEADERS = ("hw_types.h", "hw_kernels.h")


def _cdef_text() -> str:
    lines = []
    for name in CDEF_HEADERS:
        for line in (KERNELS / name).read_text().splitlines():
            if not line.lstrip().startswith("#"):
                lines.append(line)
    return "\n".join(lines)


def _compile_args() -> tuple[list[str], list[str]]:
    warn = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Werror", "-fno-strict-aliasing"]
    if os.environ.get("HWSIM_SANITIZE") == "1":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
        # Python's own CFLAGS carry -fwrapv, which would define signed overflow and hide it from UBSan.
        warn = warn + ["-fno-wrapv"]
        return warn + ["-O1", "-g"] + san, san
    return warn + ["-O3"], []


def _sources(absolute: bool) -> list[str]:
    # setuptools wants paths relative to the project; a standalone compile
    # (cffi changes into its output directory) needs absolute ones.
    paths = sorted(KERNELS.glob("*.c"))
    return [str(p if absolute else p.relative_to(ROOT)) for p in paths]


def make_builder(standalone: bool = False) -> FFI:
    builder = FFI()
    builder.cdef(_cdef_text())
    cflags, ldflags = _compile_args()
    builder.set_source(
        "hwsim._native._hwsim_c",
        '#include "hw_kernels.h"',
        sources=_sources(absolute=standalone),
        include_dirs=[str(KERNELS if standalone else KERNELS.relative_to(ROOT))],
        extra_compile_args=cflags,
        extra_link_args=ldflags + ["-lpthread"],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    # `python hwsim/_native/build.py [OUTDIR]`: compile into OUTDIR (default: the
    # current directory), e.g. for the sanitizer test run.  Run from the project root.
    import sys

    make_builder(standalone=True).compile(tmpdir=sys.argv[1] if len(sys.argv) > 1 else ".", verbose=False)
