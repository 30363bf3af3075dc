"""Vectorised numpy mirrors of hwsim's C integer primitives.

Each function computes bit for bit what its C twin in ``c_kernels/`` computes
(``hw_fixedpoint.h``, ``hw_requantize.h``), with the same q + carry rounding
recipes, on int64 / uint64 arrays (numpy array arithmetic wraps modulo 2^64
silently, which is exactly the two's complement behaviour the C code gets
through ``uint64_t``).  Tests hold these to the C path and to the pure-Python
oracle (``hwsim.oracle``).

Conventions: ``shift`` is a signed power of two exponent, positive = left;
``bits`` counts the sign bit; rounding modes are :class:`hwsim.types.Rounding`.
"""

from __future__ import annotations

import numpy as np

from hwsim.numerics.requant_params import RequantParams
from hwsim.types import Overflow, RequantScheme, Rounding

__all__ = [
    "wrap",
    "saturate",
    "narrow",
    "stochastic_bits",
    "round_shift",
    "round_float",
    "srdhm",
    "sqdmulh",
    "rdbpot",
    "srshl",
    "sshl",
    "requantize",
]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def _int_input(x, name: str) -> np.ndarray:
    """``x`` as int64, refusing floats and other non-integer dtypes (no silent truncation)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" or arr.dtype == np.uint64:
        raise ValueError(f"{name}: expected a signed integer array (or int32/int64 values), got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _in_range(x, name: str, lo: int, hi: int) -> np.ndarray:
    arr = _int_input(x, name)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name}: expected values in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
    return arr


def _mode(mode, name: str = "mode") -> Rounding:
    try:
        return Rounding(mode)
    except ValueError:
        raise ValueError(f"{name}: expected one of {', '.join(m.value for m in Rounding)}, got {mode!r}") from None


def _int32_input(x, name: str) -> np.ndarray:
    return _in_range(x, name, _INT32_MIN, _INT32_MAX)


def _u64(x) -> np.ndarray:
    return np.asarray(x).astype(np.uint64)


def _shl_wrap(x, n) -> np.ndarray:
    """x * 2^n modulo 2^64 (n in [0, 63])."""
    return (_u64(_i64(x)) << _u64(n)).astype(np.int64)


def wrap(x, bits: int, signed: bool = True) -> np.ndarray:
    """Two's complement wrap to ``bits`` (signed 2..64) or modulo 2^bits (unsigned 1..63)."""
    x = _i64(x)
    if signed and bits >= 64:
        return x.copy()
    mask = np.uint64((1 << bits) - 1)
    u = _u64(x) & mask
    if not signed:
        return u.astype(np.int64)
    sign = np.uint64(1 << (bits - 1))
    return ((u ^ sign) - sign).astype(np.int64)      # sign extension, modulo 2^64


def saturate(x, bits: int, signed: bool = True) -> np.ndarray:
    """Clamp to the range of a ``bits``-wide signed or unsigned integer."""
    x = _i64(x)
    if signed:
        if bits >= 64:
            return x.copy()
        return np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return np.clip(x, 0, (1 << bits) - 1)


def narrow(x, bits: int, signed: bool = True, overflow: Overflow | str = Overflow.SATURATE):
    """Narrow to ``bits`` with ``overflow``; returns ``(values, number changed)``.

    Signed ``bits`` in [2, 64], unsigned in [1, 63].
    """
    x = _int_input(x, "x")
    lo_bits, hi_bits = (2, 64) if signed else (1, 63)
    if not isinstance(bits, (int, np.integer)) or not lo_bits <= bits <= hi_bits:
        raise ValueError(f"bits: expected an int in [{lo_bits}, {hi_bits}], got {bits!r}")
    try:
        overflow = Overflow(overflow)
    except ValueError:
        raise ValueError(f"overflow: expected 'wrap' or 'saturate', got {overflow!r}") from None
    y = wrap(x, bits, signed) if overflow is Overflow.WRAP else saturate(x, bits, signed)
    return y, int(np.count_nonzero(y != x))


def stochastic_bits(seed: int, index) -> np.ndarray:
    """SplitMix64 output (index + 1) for ``seed``: the draws of stochastic rounding."""
    with np.errstate(over="ignore"):                   # modulo 2^64 is the definition
        z = np.uint64(seed) + (_u64(index) + np.uint64(1)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _carry(mode: Rounding, gt, eq, nonzero, neg, q_odd, stoch_up):
    """The +0/+1 that ``mode`` adds to floor (SEMANTICS.md section 0 recipes)."""
    if mode is Rounding.FLOOR:
        return np.zeros_like(gt)
    if mode is Rounding.CEIL:
        return nonzero
    if mode is Rounding.TRUNC:
        return neg & nonzero
    if mode is Rounding.HALF_UP:
        return gt | eq
    if mode is Rounding.HALF_DOWN:
        return gt
    if mode is Rounding.HALF_EVEN:
        return gt | (eq & q_odd)
    if mode is Rounding.HALF_AWAY:
        return gt | (eq & ~neg)
    if mode is Rounding.HALF_ZERO:
        return gt | (eq & neg)
    return stoch_up()


def _round_div_pow2(x, n, mode: Rounding, seed: int = 0, index=None) -> np.ndarray:
    """round(x / 2^n) with n in [0, 63] (array or scalar); index: stochastic counters."""
    x = _i64(x)
    n = np.broadcast_to(_i64(n), x.shape)
    pos = n > 0
    nn = np.where(pos, n, 1)                           # keep shift amounts valid where n == 0
    q = x >> nn
    r = _u64(x) & ((np.uint64(1) << _u64(nn)) - np.uint64(1))
    h = np.uint64(1) << _u64(nn - 1)

    def stoch_up():
        z = stochastic_bits(seed, np.arange(x.size).reshape(x.shape) if index is None else index)
        return (z >> _u64(64 - nn)) < r

    carry = _carry(Rounding(mode), r > h, r == h, r != 0, x < 0, (q & 1) == 1, stoch_up)
    return np.where(pos, q + carry.astype(np.int64), x)


def round_shift(x, shift, mode: Rounding | str, seed: int = 0) -> np.ndarray:
    """round(x / 2^shift) with ``mode``, exact (no intermediate overflow).

    ``shift`` in [0, 63] (scalar or broadcastable array).  Stochastic: for
    flat element index i, z = SplitMix64(seed)[i], round up iff
    ``z >> (64 - shift) < x mod 2^shift``.

    >>> round_shift(np.array([5, -5]), 1, "half_even").tolist()
    [2, -2]
    """
    return _round_div_pow2(_int_input(x, "x"), _in_range(shift, "shift", 0, 63), _mode(mode), seed)


def round_float(v, mode: Rounding | str, seed: int = 0, index=None) -> np.ndarray:
    """Round finite float64 values (|v| <= 2^62) to int64 with ``mode``.

    Stochastic: u = (z >> 11) * 2^-53, round up iff u < v - floor(v).
    """
    v = np.asarray(v, dtype=np.float64)
    if v.size and not (np.all(np.isfinite(v)) and np.abs(v).max() <= 2.0**62):
        raise ValueError("v: expected finite values with |v| <= 2**62")
    mode = _mode(mode)
    fl = np.floor(v)
    f = v - fl                                           # exact
    q = fl.astype(np.int64)

    def stoch_up():
        z = stochastic_bits(seed, np.arange(v.size).reshape(v.shape) if index is None else index)
        return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 < f

    carry = _carry(mode, f > 0.5, f == 0.5, f != 0, v < 0, (q & 1) == 1, stoch_up)
    return q + carry.astype(np.int64)


def _srdhm64(a, b) -> np.ndarray:
    a, b = _i64(a), _i64(b)
    y = (a * b + (1 << 30)) >> 31
    return np.where((a == _INT32_MIN) & (b == _INT32_MIN), _INT32_MAX, y)


def _sqdmulh64(a, b) -> np.ndarray:
    a, b = _i64(a), _i64(b)
    return np.where((a == _INT32_MIN) & (b == _INT32_MIN), _INT32_MAX, (a * b) >> 31)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul (= SQRDMULH) of int32 values: int32 result."""
    return _srdhm64(_int32_input(a, "a"), _int32_input(b, "b")).astype(np.int32)


def sqdmulh(a, b) -> np.ndarray:
    """ARM SQDMULH of int32 values: floor(a*b / 2^31), saturating INT32_MIN^2."""
    return _sqdmulh64(_int32_input(a, "a"), _int32_input(b, "b")).astype(np.int32)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero; exponent in [0, 31]."""
    x = _int32_input(x, "x")
    return _round_div_pow2(x, _in_range(exponent, "exponent", 0, 31), Rounding.HALF_AWAY).astype(np.int32)


def _shift32(x, s, rounding: Rounding) -> np.ndarray:
    x = _i64(x)
    s = np.broadcast_to(_i64(s), x.shape)
    left = wrap(_shl_wrap(x, np.where(s > 0, s, 0)), 32)
    right = _round_div_pow2(x, np.where(s < 0, -s, 0), rounding)
    return np.where(s >= 0, left, right)


def srshl(x, s) -> np.ndarray:
    """ARM SRSHL on 32-bit lanes: s >= 0 wrap_32(x * 2^s); s < 0 x / 2^-s rounded half up.  s in [-63, 63]."""
    return _shift32(_int32_input(x, "x"), _in_range(s, "s", -63, 63), Rounding.HALF_UP).astype(np.int32)


def sshl(x, s) -> np.ndarray:
    """ARM SSHL on 32-bit lanes: s >= 0 wrap_32(x * 2^s); s < 0 floor(x / 2^-s).  s in [-63, 63]."""
    return _shift32(_int32_input(x, "x"), _in_range(s, "s", -63, 63), Rounding.FLOOR).astype(np.int32)


def _scheme_value(acc: np.ndarray, p: RequantParams, index: np.ndarray):
    """The scheme's integer result before the zero point, and FLOAT32's float-clamp mask."""
    s = p.scheme
    m = p.multiplier_array.astype(np.int64)
    sh = p.shift_array.astype(np.int64)
    no_clamp = np.zeros(acc.shape, dtype=bool)
    if s in (RequantScheme.DOUBLE_ROUNDING, RequantScheme.SRDHM_HALF_UP):
        x = wrap(acc, 32)
        t = wrap(_shl_wrap(x, np.broadcast_to(np.maximum(sh, 0), x.shape)), 32)
        u = _srdhm64(t, m)
        mode = Rounding.HALF_AWAY if s is RequantScheme.DOUBLE_ROUNDING else Rounding.HALF_UP
        return _round_div_pow2(u, np.maximum(-sh, 0), mode), no_clamp
    if s is RequantScheme.SINGLE_ROUNDING:
        total = 31 - sh
        return (wrap(acc, 32) * m + (np.int64(1) << (total - 1))) >> total, no_clamp
    if s is RequantScheme.NEON_SINGLE:
        rs = np.minimum(sh, -1)
        t = sshl(wrap(acc, 32), np.broadcast_to(sh - rs, acc.shape))
        u = _sqdmulh64(t, m)
        return _round_div_pow2(u, -rs, Rounding.HALF_UP), no_clamp
    if s is RequantScheme.INT64_REDUCED:
        reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
        total = 15 - sh
        return (wrap(acc, 48) * reduced + (np.int64(1) << (total - 1))) >> total, no_clamp
    if s is RequantScheme.FLOAT32:
        lo = _i64(p.out_min - p.zero_point).astype(np.float32)
        hi = _i64(p.out_max - p.zero_point).astype(np.float32)
        v = acc.astype(np.float32) * p.scale_f32_array
        clamped = (v < lo) | (v > hi)
        v = np.minimum(np.maximum(v, lo), hi)
        return round_float(v.astype(np.float64), p.rounding, p.seed, index), clamped
    if s is RequantScheme.FLOAT64_ROUND:
        v = np.clip(acc.astype(np.float64) * p.scale_f64_array, -(2.0**62), 2.0**62)
        return round_float(v, p.rounding, p.seed, index), no_clamp
    # SHIFT_ONLY
    shb = np.broadcast_to(sh, acc.shape)
    left = _shl_wrap(acc, np.where(shb > 0, shb, 0))
    right = _round_div_pow2(acc, np.where(shb > 0, 0, -shb), p.rounding, p.seed, index)
    return np.where(shb > 0, left, right), no_clamp


def requantize(acc, params: RequantParams, return_changed: bool = False):
    """Requantise int64 accumulators exactly as ``hw_requantize_s64`` does.

    The last axis is the channel axis when ``params`` is per channel.  Returns
    int64 output values in [out_min, out_max]; with ``return_changed``, also a
    bool mask of the outputs that were clamped or wrapped (the output stage, or
    FLOAT32's clamp in float).  Stochastic rounding is keyed by the flat
    (row-major) element index.

    .. math:: y = \\mathrm{out}(\\mathrm{scheme}(acc) + zero\\_point)
    """
    if not isinstance(params, RequantParams):
        raise ValueError(f"params: expected a RequantParams, got {type(params).__name__}")
    acc = _int_input(acc, "acc")
    if params.n_channels > 1 and (acc.ndim == 0 or acc.shape[-1] != params.n_channels):
        raise ValueError(f"acc: last axis must have {params.n_channels} entries (one per channel), got shape {acc.shape}")
    index = np.arange(acc.size, dtype=np.uint64).reshape(acc.shape)
    r, clamped = _scheme_value(acc, params, index)
    y = r + np.int64(params.zero_point)                 # wraps mod 2^64 like the C code
    z = y
    if params.out_overflow is Overflow.WRAP:
        z = wrap(z, params.out_bits, params.out_signed)
    z = np.clip(z, params.out_min, params.out_max)
    return (z, clamped | (z != y)) if return_changed else z
