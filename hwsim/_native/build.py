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
        return warn + ["-O1", "-g"] + san, san
    return warn + ["-O3"], []


def _sources() -> list[str]:
    # Relative paths keep the build reproducible from an sdist as well.
    return sorted(str(p.relative_to(ROOT)) for p in KERNELS.glob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
_cflags, _ldflags = _compile_args()
ffibuilder.set_source(
    "hwsim._native._hwsim_c",
    '#include "hw_kernels.h"',
    sources=_sources(),
    include_dirs=[str(KERNELS.relative_to(ROOT))],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags + ["-lpthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
