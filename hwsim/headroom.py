"""Accumulator headroom: can a MAC array's group sums or accumulator ever overflow?

This makes TFLite Micro's headroom comment executable (STYLE.md 8.3): given the
number of products k that one output sums, the operand ranges and the
accumulator description of a target (:class:`hwsim.types.AccumSpec`), it gives
the worst-case accumulator value and whether each narrowing stage can trigger.
All arithmetic is on Python ints, so the answer is exact.

k-order (the one of ``AccumSpec``): products are summed exactly in groups of
``group`` (the last group may be short), each group sum is narrowed to
``group_bits``, added to the accumulator, and the accumulator is narrowed to
``acc_bits``; the bias (with any folded zero-point term) is the accumulator's
start value when ``bias_first``, else it is added last.

Every partial sum is a sum of intervals, so its extremes are reached when all
operands sit at the corners that maximise (or minimise) their product; the
extremes over all partial sums are at the ends of the runs of equal groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hwsim.types import AccumSpec, IntFormat, Overflow

__all__ = ["Headroom", "headroom", "min_safe_acc_bits", "max_safe_k", "signed_bits"]

#: An operand range: an ``IntFormat``, a ``hwsim.targets.OperandFormat`` (anything with
#: integer ``min`` and ``max``), or an inclusive ``(lo, hi)`` pair, e.g. the range of x - zx.
Operand = Union[IntFormat, "object", tuple]

_K_LIMIT = 1 << 62


def signed_bits(lo: int, hi: int) -> int:
    """Fewest bits of a two's complement integer that holds every value in [lo, hi].

    >>> signed_bits(-128, 127), signed_bits(0, 128), signed_bits(-1, 0)
    (8, 9, 1)
    """
    def one(v: int) -> int:
        return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1

    return max(one(lo), one(hi))


def _interval(fmt: Operand, name: str) -> tuple[int, int]:
    if isinstance(fmt, tuple):
        if len(fmt) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in fmt) or fmt[0] > fmt[1]:
            raise ValueError(f"{name} must be an IntFormat, an OperandFormat or a (lo, hi) pair of ints with "
                             f"lo <= hi, got {fmt!r}")
        return fmt
    lo, hi = getattr(fmt, "min", None), getattr(fmt, "max", None)
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
        raise ValueError(f"{name} must be an IntFormat, an OperandFormat or a (lo, hi) pair, got {fmt!r}")
    return lo, hi


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _K_LIMIT:
        raise ValueError(f"k must be an integer in [1, 2**62] (products per output), got {k!r}")


def _check_bias(bias_max: int) -> None:
    if isinstance(bias_max, bool) or not isinstance(bias_max, int) or bias_max < 0:
        raise ValueError(f"bias_max must be a non-negative integer (largest |bias| incl. folded zero-point "
                         f"terms), got {bias_max!r}")


@dataclass(frozen=True)
class Headroom:
    """Worst case of one output's accumulation (all bounds inclusive, exact integers).

    ``group_min``/``group_max`` and ``acc_min``/``acc_max`` are the mathematical
    values before each narrowing.  When a wrapping group stage can overflow,
    the wrapped group sums are bounded by the full group range, so ``acc_*``
    become bounds rather than attained values and ``exact`` is False.
    """

    k: int
    group: int
    product_min: int
    product_max: int
    group_min: int           #: extremes of one group's exact sum
    group_max: int
    group_bits_needed: int   #: signed bits that hold every group sum
    group_bits: int
    group_can_overflow: bool
    acc_min: int             #: extremes of every partial and final accumulator value, bias included
    acc_max: int
    acc_bits_needed: int     #: signed bits that hold every accumulator value (min_safe_acc_bits)
    acc_bits: int
    acc_can_overflow: bool
    exact: bool

    @property
    def max_abs_acc(self) -> int:
        return max(-self.acc_min, self.acc_max)

    @property
    def headroom_bits(self) -> int:
        """Spare accumulator bits (negative: the accumulator can overflow)."""
        return self.acc_bits - self.acc_bits_needed

    @property
    def can_overflow(self) -> bool:
        return self.group_can_overflow or self.acc_can_overflow

    def __str__(self) -> str:
        stages = []
        if self.group > 1:
            stages.append(f"group of {self.group}: needs {self.group_bits_needed} of {self.group_bits} bits"
                          f"{' (can overflow)' if self.group_can_overflow else ''}")
        stages.append(f"accumulator: |acc| <= {self.max_abs_acc}{'' if self.exact else ' (bound)'}, needs "
                      f"{self.acc_bits_needed} of {self.acc_bits} bits"
                      f"{' (can overflow)' if self.acc_can_overflow else ''}")
        return f"k={self.k}: " + "; ".join(stages)


def headroom(k: int, x_fmt: Operand, w_fmt: Operand, accum: AccumSpec, bias_max: int = 0) -> Headroom:
    """Worst-case accumulator of ``k`` products x*w under ``accum``, and whether it can overflow.

    Parameters
    ----------
    k
        Products summed into one output (e.g. kernel_h * kernel_w * in_channels / groups).
    x_fmt, w_fmt
        Ranges of the two factors as they enter the multiplier: an ``IntFormat``,
        an ``OperandFormat`` (its restricted range is honoured) or an inclusive
        ``(lo, hi)`` pair (e.g. ``(-255, 255)`` for x - zx of int8 with the zero
        point inside the MAC).
    accum
        The MAC description: group size and width, accumulator width, bias placement.
    bias_max
        Largest |bias|, including any zero-point term folded into it: with
        ``input_zero_point: folded_into_bias`` pass the raw input range as
        ``x_fmt`` and add ``|zx| * k * max|w|`` here (a bound: the folded term
        and the products share the weights).

    Returns
    -------
    Headroom

    .. math:: \\text{bits} = \\operatorname{signed\\_bits}(acc_{min}, acc_{max})
              \\le \\lceil \\log_2(k \\max|x| \\max|w| + \\max|b| + 1) \\rceil + 1

    Examples
    --------
    2**16 products of int8 weights in [-127, 127] and int8 inputs in [-127, 127]:
    |acc| <= 127 * 127 * 2**16 = 1057030144 < 2**30, so 31 bits suffice.

    >>> h = headroom(1 << 16, (-127, 127), (-127, 127), AccumSpec(acc_bits=32))
    >>> h.max_abs_acc, h.acc_bits_needed, h.acc_can_overflow
    (1057030144, 31, False)
    """
    _check_k(k)
    _check_bias(bias_max)
    if not isinstance(accum, AccumSpec):
        raise ValueError(f"accum must be a hwsim.types.AccumSpec, got {type(accum).__name__}")
    xlo, xhi = _interval(x_fmt, "x_fmt")
    wlo, whi = _interval(w_fmt, "w_fmt")
    corners = (xlo * wlo, xlo * whi, xhi * wlo, xhi * whi)
    pmin, pmax = min(corners), max(corners)

    g = accum.group
    n_full, rest = divmod(k, g)
    gmin_fmt, gmax_fmt = -(1 << (accum.group_bits - 1)), (1 << (accum.group_bits - 1)) - 1

    def narrowed(m: int) -> tuple[int, int, bool, bool]:
        """A group of m products: its narrowed range, whether it can overflow, and whether the range is attained."""
        lo, hi = m * pmin, m * pmax
        overflow = lo < gmin_fmt or hi > gmax_fmt
        if not overflow:
            return lo, hi, False, True
        if accum.group_overflow is Overflow.SATURATE:
            return max(lo, gmin_fmt), min(hi, gmax_fmt), True, True
        return gmin_fmt, gmax_fmt, True, False

    exact_group = (g * pmin, g * pmax) if n_full else (rest * pmin, rest * pmax)
    full_lo, full_hi, full_over, full_exact = narrowed(g)
    rest_lo, rest_hi, rest_over, rest_exact = narrowed(rest) if rest else (0, 0, False, True)
    group_over = (full_over and n_full > 0) or rest_over
    exact = (full_exact or n_full == 0) and rest_exact

    start = (-bias_max, bias_max) if accum.bias_first else (0, 0)
    after_full = (start[0] + n_full * full_lo, start[1] + n_full * full_hi)
    after_all = (after_full[0] + rest_lo, after_full[1] + rest_hi)
    final = after_all if accum.bias_first else (after_all[0] - bias_max, after_all[1] + bias_max)
    points = (start, after_full, after_all, final)
    acc_lo, acc_hi = min(p[0] for p in points), max(p[1] for p in points)
    acc_needed = signed_bits(acc_lo, acc_hi)

    return Headroom(
        k=k,
        group=g,
        product_min=pmin,
        product_max=pmax,
        group_min=exact_group[0],
        group_max=exact_group[1],
        group_bits_needed=signed_bits(*exact_group),
        group_bits=accum.group_bits,
        group_can_overflow=group_over,
        acc_min=acc_lo,
        acc_max=acc_hi,
        acc_bits_needed=acc_needed,
        acc_bits=accum.acc_bits,
        acc_can_overflow=acc_needed > accum.acc_bits,
        exact=exact,
    )


def min_safe_acc_bits(k: int, x_fmt: Operand, w_fmt: Operand, bias_max: int = 0,
                      accum: AccumSpec | None = None) -> int:
    """Fewest accumulator bits that can never overflow for ``k`` products (and the bias).

    With ``accum`` its group stage (and bias placement) is taken into account;
    without, products are summed exactly one by one.

    >>> min_safe_acc_bits(1 << 16, (-128, 127), (-128, 127))   # (-128)**2 * 2**16 = 2**30
    32
    """
    return headroom(k, x_fmt, w_fmt, accum if accum is not None else AccumSpec(), bias_max).acc_bits_needed


def max_safe_k(x_fmt: Operand, w_fmt: Operand, accum: AccumSpec, bias_max: int = 0) -> int | None:
    """Largest k for which neither the group stage nor the accumulator can overflow.

    Returns 0 if even one product (with the bias) can overflow, and None if no
    k can (all products are 0).

    >>> max_safe_k((-255, 255), (-127, 127), AccumSpec(acc_bits=32))   # TFLite int8 with zx in the MAC
    66311
    """
    _check_bias(bias_max)

    def safe(k: int) -> bool:
        return not headroom(k, x_fmt, w_fmt, accum, bias_max).can_overflow

    if not safe(1):
        return 0
    if safe(_K_LIMIT):
        return None
    lo, hi = 1, 2
    while safe(hi):  # safe(k) is monotone: every partial-sum range grows with k
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if safe(mid) else (lo, mid)
    return lo
