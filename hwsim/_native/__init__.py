"""Thin bridge to the compiled C kernels.

Only checks and marshalling live here: every array is checked for dtype,
shape and C-contiguity *before* a pointer crosses into C, and a failing
check raises ``ValueError`` naming the argument.  No arithmetic.
"""

from __future__ import annotations

import numpy as np

try:
    from hwsim._native._hwsim_c import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "hwsim's C kernels are not built; install the package with `pip install .` "
        "(it compiles them with cffi)"
    ) from exc

__all__ = ["ffi", "lib", "c_array", "check_status", "HwError"]


class HwError(RuntimeError):
    """A C kernel refused its arguments after Python's checks passed (a bug)."""


_STATUS = {1: "invalid argument", 2: "unsupported configuration", 3: "out of memory"}


def check_status(status: int, what: str) -> None:
    """Raise if a C call did not return HW_OK."""
    if status == 0:
        return
    reason = _STATUS.get(status, f"status {status}")
    if status == 2:
        raise NotImplementedError(f"{what}: {reason}")
    raise HwError(f"{what}: C kernel reported {reason}")


def c_array(arr: np.ndarray, name: str, dtype, ctype: str, shape: tuple | None = None, writable: bool = False):
    """Return a cffi pointer to ``arr`` after checking it.

    ``dtype`` is the exact numpy dtype required (no silent casts: a cast could
    hide an out-of-range value); ``shape`` (optional) the exact shape.
    """
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.dtype(dtype):
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(arr.shape)}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name}: array must be C-contiguous (use np.ascontiguousarray)")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name}: array must be writable")
    return ffi.cast(ctype, ffi.from_buffer(arr, require_writable=writable))
