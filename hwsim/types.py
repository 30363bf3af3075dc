"""The vocabulary of hwsim: rounding and overflow modes, integer formats and
the accumulator / requantisation specs that target profiles are made of.

Conventions, stated once:

* ``bits`` is always the total width, sign bit included; ``signed`` says
  whether the format is two's complement.  (gemmlowp and APyTypes count
  integer bits differently; hwsim never uses integer-bit counts for integers.)
* ``zero_point`` is always stored as the value that represents real 0 and is
  always *subtracted* (real = scale * (q - zero_point)); never a negated offset.
* ``shift`` is a signed power-of-two exponent, positive = left shift
  (TFLite's convention): a multiplier pair (M, shift) means
  ``M * 2**(shift - 31)``.

The integer values of the enums are the C enums' values in
``c_kernels/hw_types.h``; a test asserts that the two agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Rounding(str, enum.Enum):
    """Rounding of a real value to an integer (SEMANTICS.md section 0).

    Equivalents: ap_fixed / APyTypes / MATLAB fimath.
    """

    FLOOR = "floor"            #: toward -inf; AP_TRN, TRN, Floor; arithmetic shift right
    CEIL = "ceil"              #: toward +inf; TRN_INF, Ceiling
    TRUNC = "trunc"            #: toward 0; AP_TRN_ZERO, TRN_ZERO, Zero; C integer division
    HALF_UP = "half_up"        #: nearest, ties toward +inf; AP_RND, RND, Nearest; SQRDMULH
    HALF_DOWN = "half_down"    #: nearest, ties toward -inf; AP_RND_MIN_INF, RND_MIN_INF
    HALF_EVEN = "half_even"    #: nearest, ties to even; AP_RND_CONV, RND_CONV, Convergent; rint
    HALF_AWAY = "half_away"    #: nearest, ties away from 0; AP_RND_INF, RND_INF, Round; std::round
    HALF_ZERO = "half_zero"    #: nearest, ties toward 0; AP_RND_ZERO, RND_ZERO
    STOCHASTIC = "stochastic"  #: up with probability equal to the fraction; seeded, reproducible

    @property
    def c_value(self) -> int:
        return _ROUNDING_C[self]


_ROUNDING_C = {
    Rounding.FLOOR: 0,
    Rounding.CEIL: 1,
    Rounding.TRUNC: 2,
    Rounding.HALF_UP: 3,
    Rounding.HALF_DOWN: 4,
    Rounding.HALF_EVEN: 5,
    Rounding.HALF_AWAY: 6,
    Rounding.HALF_ZERO: 7,
    Rounding.STOCHASTIC: 8,
}


class Overflow(str, enum.Enum):
    """What happens to a value that does not fit a format."""

    WRAP = "wrap"          #: two's complement modulo 2**bits; AP_WRAP, WRAP
    SATURATE = "saturate"  #: clamp to the format's range; AP_SAT, SAT

    @property
    def c_value(self) -> int:
        return 0 if self is Overflow.WRAP else 1


class ZeroPointPlacement(str, enum.Enum):
    """Where an activation zero point enters a MAC array."""

    IN_MAC = "in_mac"                   #: products (x - zx) * (w - zw)
    FOLDED_INTO_BIAS = "folded_into_bias"  #: products x * (w - zw); -zx * sum(w - zw) added with the bias

    @property
    def c_value(self) -> int:
        return 0 if self is ZeroPointPlacement.IN_MAC else 1


class RequantScheme(str, enum.Enum):
    """Accumulator -> output requantisation (SEMANTICS.md sections 1-3, 10)."""

    DOUBLE_ROUNDING = "double_rounding"    #: gemmlowp SRDHM (ties up) then RoundingDivideByPOT (ties away)
    SINGLE_ROUNDING = "single_rounding"    #: TFLITE_SINGLE_ROUNDING / CMSIS-NN single rounding
    SRDHM_HALF_UP = "srdhm_half_up"        #: SRDHM then a half-up rounding shift (NEON without fixup, ruy x86)
    NEON_SINGLE = "neon_single"            #: SSHL, SQDMULH, SRSHL (ruy ARM64), with the pre-shift wrap
    INT64_REDUCED = "int64_reduced"        #: 16x8 kernels: int64 accumulator, 15-bit multiplier
    FLOAT32 = "float32"                    #: fl32(acc) * fl32(scale), clamp, round, + zero point (MLAS, XNNPACK)
    FLOAT64_ROUND = "float64_round"        #: round((double) acc * scale) + zero point (LiteRT reference FC)
    SHIFT_ONLY = "shift_only"              #: round(acc / 2**n) with a chosen rounding; no multiplier

    @property
    def c_value(self) -> int:
        return list(RequantScheme).index(self)


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (``signed``) or unsigned integer of ``bits`` bits."""

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 64:
            raise ValueError(f"IntFormat.bits must be an integer in [2, 64], got {self.bits!r}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}"


@dataclass(frozen=True)
class AccumSpec:
    """How a MAC array sums products (the C ``hw_accum_spec_t``).

    k-order: products of k = g*group ... g*group + group - 1 are summed exactly,
    the sum is narrowed to ``group_bits`` with ``group_overflow``, added to the
    accumulator, and the accumulator is narrowed to ``acc_bits`` with
    ``acc_overflow``; g runs 0, 1, 2, ... in order.
    """

    group: int = 1
    group_bits: int = 64
    group_overflow: Overflow = Overflow.WRAP
    acc_bits: int = 32
    acc_overflow: Overflow = Overflow.WRAP
    input_zero_point: ZeroPointPlacement = ZeroPointPlacement.IN_MAC
    bias_first: bool = False

    def __post_init__(self) -> None:
        if self.group not in (1, 2, 4):
            raise ValueError(f"AccumSpec.group must be 1, 2 or 4, got {self.group!r}")
        if not 2 <= self.group_bits <= 64:
            raise ValueError(f"AccumSpec.group_bits must be in [2, 64], got {self.group_bits!r}")
        if not 8 <= self.acc_bits <= 64:
            raise ValueError(f"AccumSpec.acc_bits must be in [8, 64], got {self.acc_bits!r}")


@dataclass(frozen=True)
class RequantSpec:
    """Which requantisation scheme a stage uses, and its final rounding."""

    scheme: RequantScheme = RequantScheme.DOUBLE_ROUNDING
    rounding: Rounding = Rounding.HALF_AWAY
