"""Checked wrappers over the C primitives (``c_kernels/hw_primitives.c``,
``hw_requantize.c``).

Each function validates dtype, contiguity and ranges, then calls C; a bad
argument raises ``ValueError`` naming it.  No arithmetic happens here.
"""

from __future__ import annotations

import numpy as np

from hwsim._native import c_array, check_status, ffi, lib
from hwsim.numerics.requant_params import RequantParams
from hwsim.types import Overflow, Rounding

__all__ = ["round_shift", "narrow", "srdhm", "rdbpot", "requantize", "requant_spec", "OUT_DTYPES"]

#: numpy output dtype -> C hw_dtype_t value.
OUT_DTYPES = {
    np.dtype(np.int8): lib.HW_DT_S8,
    np.dtype(np.uint8): lib.HW_DT_U8,
    np.dtype(np.int16): lib.HW_DT_S16,
    np.dtype(np.int32): lib.HW_DT_S32,
}


def _int_arg(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an int in [{lo}, {hi}], got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}: expected an int in [{lo}, {hi}], got {value}")
    return int(value)


def _enum_arg(value, enum_type, name: str):
    try:
        return enum_type(value)
    except ValueError:
        names = ", ".join(m.value for m in enum_type)
        raise ValueError(f"{name}: expected one of {names}, got {value!r}") from None


def round_shift(x: np.ndarray, shift: int, mode: Rounding | str, seed: int = 0) -> np.ndarray:
    """Round ``x / 2**shift`` element-wise with ``mode`` (C ``hw_round_shift_s64``).

    ``x``: C-contiguous int64 array; ``shift`` in [0, 63]; ``seed`` keys
    stochastic rounding (the element's flat index is the counter).
    """
    shift = _int_arg(shift, "shift", 0, 63)
    mode = _enum_arg(mode, Rounding, "mode")
    seed = _int_arg(seed, "seed", 0, (1 << 64) - 1)
    out = np.empty_like(x) if isinstance(x, np.ndarray) else None
    px = c_array(x, "x", np.int64, "int64_t *")
    po = c_array(out, "out", np.int64, "int64_t *", writable=True)
    check_status(lib.hw_round_shift_s64(px, x.size, shift, mode.c_value, seed, po), "hw_round_shift_s64")
    return out


def narrow(x: np.ndarray, bits: int, signed: bool = True, overflow: Overflow | str = Overflow.SATURATE):
    """Narrow int64 ``x`` to a ``bits``-wide format (C ``hw_narrow_s64``).

    Returns ``(out, events)``: the narrowed int64 values and how many changed.
    Signed ``bits`` in [2, 64], unsigned in [1, 63].
    """
    if not isinstance(signed, (bool, np.bool_)):
        raise ValueError(f"signed: expected a bool, got {signed!r}")
    bits = _int_arg(bits, "bits", 2, 64) if signed else _int_arg(bits, "bits", 1, 63)
    overflow = _enum_arg(overflow, Overflow, "overflow")
    out = np.empty_like(x) if isinstance(x, np.ndarray) else None
    px = c_array(x, "x", np.int64, "int64_t *")
    po = c_array(out, "out", np.int64, "int64_t *", writable=True)
    events = ffi.new("int64_t *")
    check_status(lib.hw_narrow_s64(px, x.size, bits, int(signed), overflow.c_value, po, events), "hw_narrow_s64")
    return out, int(events[0])


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {a.shape}, got {b.shape}")


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul of int32 arrays (C ``hw_srdhm_s32``)."""
    _same_shape(a, b, "a", "b")
    out = np.empty_like(a) if isinstance(a, np.ndarray) else None
    pa = c_array(a, "a", np.int32, "int32_t *")
    pb = c_array(b, "b", np.int32, "int32_t *")
    po = c_array(out, "out", np.int32, "int32_t *", writable=True)
    check_status(lib.hw_srdhm_s32(pa, pb, a.size, po), "hw_srdhm_s32")
    return out


def rdbpot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT of int32 arrays, ``exponent`` in [0, 31] (C ``hw_rdbpot_s32``)."""
    _same_shape(x, exponent, "x", "exponent")
    px = c_array(x, "x", np.int32, "int32_t *")
    pe = c_array(exponent, "exponent", np.int32, "int32_t *")
    if exponent.size and (exponent.min() < 0 or exponent.max() > 31):
        raise ValueError(f"exponent: expected values in [0, 31], got [{exponent.min()}, {exponent.max()}]")
    out = np.empty_like(x)
    po = c_array(out, "out", np.int32, "int32_t *", writable=True)
    check_status(lib.hw_rdbpot_s32(px, pe, x.size, po), "hw_rdbpot_s32")
    return out


def requant_spec(params: RequantParams):
    """Build a C ``hw_requant_spec_t`` from validated ``params``.

    Returns ``(spec, keepalive)``; keep ``keepalive`` referenced while C may
    read ``spec`` (it owns the per-channel arrays).
    """
    if not isinstance(params, RequantParams):
        raise ValueError(f"params: expected a RequantParams, got {type(params).__name__}")
    spec = ffi.new("hw_requant_spec_t *")
    arrays = (params.multiplier_array, params.shift_array, params.scale_f32_array, params.scale_f64_array)
    spec.scheme = params.scheme.c_value
    spec.rounding = params.rounding.c_value
    spec.n_channels = params.n_channels
    spec.multiplier = ffi.cast("const int32_t *", ffi.from_buffer(arrays[0]))
    spec.shift = ffi.cast("const int32_t *", ffi.from_buffer(arrays[1]))
    spec.scale_f32 = ffi.cast("const float *", ffi.from_buffer(arrays[2]))
    spec.scale_f64 = ffi.cast("const double *", ffi.from_buffer(arrays[3]))
    spec.zero_point = params.zero_point
    spec.out_min = params.out_min
    spec.out_max = params.out_max
    spec.out_bits = params.out_bits
    spec.out_signed = int(params.out_signed)
    spec.out_overflow = params.out_overflow.c_value
    spec.seed = params.seed
    return spec, arrays


def _default_out_dtype(params: RequantParams) -> np.dtype:
    for dt in (np.int8, np.uint8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= params.out_min and params.out_max <= info.max:
            return np.dtype(dt)
    raise AssertionError("unreachable: out_min/out_max are int32")  # pragma: no cover


def requantize(acc: np.ndarray, params: RequantParams, out_dtype=None, return_events: bool = False):
    """Requantise int64 accumulators (C ``hw_requantize_s64``).

    Parameters
    ----------
    acc : np.ndarray
        C-contiguous int64, ndim >= 1; the last axis is the channel axis when
        ``params`` is per channel (its length must equal ``params.n_channels``).
    params : RequantParams
    out_dtype : numpy dtype, optional
        int8, uint8, int16 or int32; default: the narrowest that holds
        ``[out_min, out_max]``.
    return_events : bool
        Also return an int64 array of length ``params.n_channels``: per channel,
        the number of outputs that were clamped or wrapped.
    """
    if not isinstance(params, RequantParams):
        raise ValueError(f"params: expected a RequantParams, got {type(params).__name__}")
    if isinstance(acc, np.ndarray) and acc.ndim < 1:
        raise ValueError("acc: expected an array with at least one dimension, got a 0-d array")
    px = c_array(acc, "acc", np.int64, "int64_t *")
    cols = acc.shape[-1]
    rows = acc.size // cols if cols else 0
    if params.n_channels > 1 and cols != params.n_channels:
        raise ValueError(f"acc: last axis has {cols} entries, but params has {params.n_channels} channels")
    dt = _default_out_dtype(params) if out_dtype is None else np.dtype(out_dtype)
    if dt not in OUT_DTYPES:
        raise ValueError(f"out_dtype: expected int8, uint8, int16 or int32, got {dt}")
    info = np.iinfo(dt)
    if params.out_min < info.min or params.out_max > info.max:
        raise ValueError(f"out_dtype: {dt} cannot hold [out_min, out_max] = [{params.out_min}, {params.out_max}]")
    out = np.empty(acc.shape, dtype=dt)
    events = np.zeros(cols, dtype=np.int64)
    spec, keep = requant_spec(params)
    counters = ffi.new("hw_counters_t *")
    counters.out_events = ffi.cast("int64_t *", ffi.from_buffer(events, require_writable=True))
    po = ffi.from_buffer(out, require_writable=True)
    status = lib.hw_requantize_s64(px, rows, cols, spec, OUT_DTYPES[dt], po, counters)
    del keep
    check_status(status, "hw_requantize_s64")
    if not return_events:
        return out
    return out, (events if params.n_channels > 1 else events.sum(keepdims=True))
