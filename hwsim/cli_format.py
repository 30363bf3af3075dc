"""``hwsim format VALUE --as FORMAT``: how one real number is stored in a number format.

Shows the exact binary form of the input, the bit fields (sign, biased exponent,
mantissa; or sign, integer and fraction bits), the value actually represented
after rounding, the exact error, and the format's range and resolution.  Every
number printed is computed exactly (``fractions.Fraction``); a value that needs
more than 40 significant decimal digits is shown rounded and marked ``≈``.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
from rich.console import Console
from rich.text import Text

from hwsim.cli import UsageError
from hwsim.numerics import fixed, floating
from hwsim.numerics.fixed import FixedFormat
from hwsim.numerics.floating import FloatFormat
from hwsim.numerics.formats import binary_string, exact_decimal, normalised, parse_format
from hwsim.types import Overflow, Rounding

_LABEL_WIDTH = 15


def register(sub) -> None:
    p = sub.add_parser(
        "format",
        help="show how a number is stored in a fixed- or floating-point format",
        description=(
            "Show how VALUE is stored in FORMAT: bit fields, the value represented after rounding, the error, "
            "the range and the resolution.  Qm.n counts integer bits EXCLUDING the sign: qM.N is signed with "
            "M + N + 1 bits in total, uqM.N unsigned with M + N bits.  For a negative value put the options "
            "first and the value after `--` (hwsim format --as fp16 -- -inf) when it starts like an option."
        ),
    )
    p.add_argument("value", metavar="VALUE", help="a decimal or hex-float number (inf and nan accepted)")
    p.add_argument("--as", dest="fmt", required=True, metavar="FORMAT",
                   help="fp32, fp16, bf16, e4m3, e5m2, qM.N (signed) or uqM.N (unsigned)")
    p.add_argument("--rounding", default=None, metavar="MODE",
                   help="fixed point: " + ", ".join(r.value for r in Rounding)
                   + " (default half_even); float formats always round half_even")
    p.add_argument("--overflow", default=None, metavar="MODE",
                   help="fixed point: saturate (default) or wrap; float formats: saturate clamps to ±max "
                        "(default: the format's own rule, inf or NaN)")
    p.add_argument("--seed", type=int, default=0, help="seed for --rounding stochastic (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    value = _parse_value(args.value)
    try:
        fmt = parse_format(args.fmt)
    except ValueError as exc:
        raise UsageError(f"--as: {exc}") from None
    rounding = _parse_choice(args.rounding, Rounding, "--rounding")
    overflow = _parse_choice(args.overflow, Overflow, "--overflow")
    if isinstance(fmt, FixedFormat):
        lines = _describe_fixed(args.value, value, fmt, rounding or Rounding.HALF_EVEN,
                                overflow or Overflow.SATURATE, args.seed)
    else:
        if rounding not in (None, Rounding.HALF_EVEN):
            raise UsageError(f"--rounding: {fmt.name} rounds to nearest, ties to even (the IEEE default); "
                             f"--rounding {rounding.value} applies to fixed-point formats only")
        if overflow is Overflow.WRAP:
            raise UsageError("--overflow: floating-point formats cannot wrap; use saturate or leave it out")
        lines = _describe_float(args.value, value, fmt, overflow)
    _print(lines)
    return 0


def _parse_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        if text.strip().lstrip("+-").lower().startswith("0x"):
            return float.fromhex(text)
    except (ValueError, OverflowError):
        pass
    raise UsageError(f"VALUE: {text!r} is not a number (expected e.g. 7.625, -0.1, 1e-3, 0x1.8p3, inf, nan)") from None


def _parse_choice(text, enum_type, option: str):
    if text is None:
        return None
    try:
        return enum_type(text.strip().lower())
    except ValueError:
        names = ", ".join(m.value for m in enum_type)
        raise UsageError(f"{option}: expected one of {names}, got {text!r}") from None


# --------------------------------------------------------------------------------------------- text pieces


def _dec(q: Fraction, max_digits: int = 40) -> str:
    """Exact decimal, or a 17-digit approximation marked with ≈."""
    text = exact_decimal(q, max_digits)
    return text if text is not None else f"≈ {float(q):.17g}"


def _binary_forms(q: Fraction) -> str:
    """'111.101 (binary) = 1.11101 x 2^2' (the plain expansion only when it is short)."""
    if q == 0:
        return "0 (binary)"
    significand, exponent = normalised(q)
    norm = f"{significand} x 2^{exponent}"
    plain = binary_string(q, max_digits=64)
    return f"{plain} (binary) = {norm}" if plain is not None else norm


def _input_line(text: str, x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return f"{text} ({x})"
    exact = Fraction(x)
    line = f"{text} = {_binary_forms(exact)}"
    try:
        typed = Fraction(text)
    except (ValueError, ZeroDivisionError):
        typed = exact
    if typed != exact:
        line += f"   [read as the nearest float64, {_dec(exact, 60)}]"
    return line


def _error_lines(x: float, represented: Fraction | None) -> list[tuple[str, str]]:
    if represented is None or not math.isfinite(x):
        return [("error", "undefined (not a finite number)")]
    err = represented - Fraction(x)
    if err == 0:
        return [("error", "0 (exact)")]
    if x == 0:
        return [("error", _dec(err))]
    rel = abs(err) / abs(Fraction(x))
    return [("error", f"{_dec(err)}   (relative {float(rel):.3e})")]


def _group(bits: str, sizes: list[int]) -> str:
    out, pos = [], 0
    for size in sizes:
        if size:
            out.append(bits[pos:pos + size])
            pos += size
    return " ".join(out)


def _eq(q: Fraction) -> str:
    """'= 0.0625' when the exact decimal is short, else '≈ 1.1754943508222875e-38'."""
    text = _dec(q)
    return text if text.startswith("≈") else "= " + text


def _pow2(e: int) -> str:
    return f"2^{e} {_eq(Fraction(2) ** e)}"


# --------------------------------------------------------------------------------------------- float


def _describe_float(text: str, x: float, fmt: FloatFormat, overflow) -> list[tuple[str, str]]:
    stored = floating.cast(np.array([x]), fmt, overflow)
    bits = int(floating.to_bits(stored, fmt)[0])
    fields = floating.decompose(np.array([bits]), fmt)
    sign, exp_field, man_field = int(fields.sign[0]), int(fields.exponent[0]), int(fields.mantissa[0])
    kind = str(floating.classify(np.array([bits]), fmt)[0])
    y = float(stored.astype(np.float64)[0])

    native = "inf" if fmt.has_inf else "NaN (no inf in this format)"
    over_text = "saturate to ±max" if overflow is Overflow.SATURATE else f"the format's rule (beyond max: {native})"
    exp_bits = format(exp_field, f"0{fmt.exp_bits}b")
    man_bits = format(man_field, f"0{fmt.man_bits}b")

    if kind == "normal":
        e = exp_field - fmt.bias
        exp_text = f"{e} + {fmt.bias} = {exp_field} = {exp_bits}"
        man_text = f"{man_bits} ({fmt.man_bits} bits; value 1.{man_bits} with the implicit leading 1)"
    elif kind in ("subnormal", "zero"):
        exp_text = f"{exp_bits} = 0: {kind}, value = 0.f x 2^{fmt.min_exponent} (no implicit 1)"
        man_text = f"{man_bits} ({fmt.man_bits} bits)"
    else:
        exp_text = f"{exp_bits} (all ones: {kind})" if fmt.has_inf else f"{exp_bits} (all ones with mantissa all ones: NaN)"
        man_text = f"{man_bits} ({fmt.man_bits} bits)"

    hex_digits = fmt.bits // 4
    lines = [
        ("format", f"{fmt.name}: {fmt.title}, 1 sign + {fmt.exp_bits} exponent + {fmt.man_bits} mantissa bits "
                   f"= {fmt.bits} bits, bias {fmt.bias}"),
        ("input", _input_line(text, x)),
        ("rounding", f"nearest, ties to even; overflow: {over_text}"),
        ("sign", f"{sign} ({'-' if sign else '+'})"),
        ("exponent", exp_text),
        ("mantissa", man_text),
        ("bit pattern", f"{_group(format(bits, f'0{fmt.bits}b'), [1, fmt.exp_bits, fmt.man_bits])} "
                        f"= 0x{bits:0{hex_digits}X}"),
        ("class", kind),
    ]
    if math.isfinite(y):
        rep = Fraction(y)
        rep_text = f"{_dec(rep)} = {_binary_forms(rep)}" if rep != 0 else ("-0" if sign else "0")
        if kind == "subnormal":
            rep_text += f" = 0.{man_bits} x 2^{fmt.min_exponent}"
        lines.append(("represented", rep_text))
        lines += _error_lines(x, rep)
    else:
        lines.append(("represented", str(y).replace("nan", "NaN")))
        if math.isnan(x) or math.isnan(y):
            lines.append(("error", "undefined (NaN)"))
        elif math.isinf(x):
            lines.append(("error", "0 (infinity is represented)"))
        else:
            lines.append(("error", "infinite (overflow to inf)"))
    lines.append(("range", f"max {_dec(Fraction(fmt.max))} = {normalised(Fraction(fmt.max))[0]} x 2^{fmt.max_exponent}"))
    lines.append(("", f"min normal {_pow2(fmt.min_exponent)}"))
    lines.append(("", f"min subnormal {_pow2(fmt.min_exponent - fmt.man_bits)}"))
    return lines


# --------------------------------------------------------------------------------------------- fixed


def _describe_fixed(text: str, x: float, fmt: FixedFormat, rounding: Rounding, overflow: Overflow,
                    seed: int) -> list[tuple[str, str]]:
    if math.isnan(x):
        raise UsageError("VALUE: NaN has no fixed-point encoding")
    if math.isinf(x) and overflow is Overflow.WRAP:
        raise UsageError("VALUE: infinity cannot be wrapped into a fixed-point format (use --overflow saturate)")
    codes, flags = fixed.encode_with_flags(np.array([x]), fmt, rounding, overflow, np.random.default_rng(seed))
    code, rounded_fits = int(codes[0]), not bool(flags[0])
    pattern = int(fixed.bit_pattern(np.array([code], dtype=fmt.code_dtype), fmt)[0])
    n = fmt.frac_bits

    if fmt.signed:
        kind = f"signed fixed point (two's complement), 1 sign + {fmt.int_bits} integer + {n} fraction bits"
        sizes = [1, fmt.int_bits, n]
        layout = "sign | integer | fraction"
    else:
        kind = f"unsigned fixed point, {fmt.int_bits} integer + {n} fraction bits"
        sizes = [fmt.int_bits, n]
        layout = "integer | fraction"
    layout = " | ".join(name for name, size in zip(layout.split(" | "), sizes) if size)
    rep = Fraction(code, 1 << n)
    hex_digits = (fmt.bits + 3) // 4

    lines = [
        ("format", f"{fmt}: {kind} = {fmt.bits} bits total (Qm.n counts integer bits excluding the sign)"),
        ("input", _input_line(text, x)),
        ("rounding", f"{rounding.value}; overflow: {overflow.value}"),
    ]
    if math.isfinite(x):
        scaled = Fraction(x) * (1 << n)
        lines.append(("scaled", f"input x 2^{n} {_eq(scaled)}"))
    status = "fits" if rounded_fits else ("saturated" if overflow is Overflow.SATURATE else "wrapped")
    lines += [
        ("stored integer", f"{code}   ({status}; range [{fmt.min_code}, {fmt.max_code}])"),
        ("bit pattern", f"{_group(format(pattern, f'0{fmt.bits}b'), sizes)} = 0x{pattern:0{hex_digits}X}   ({layout})"),
        ("represented", f"{_dec(rep)} = {code} x 2^{-n}" + (f" = {_binary_forms(rep)}" if rep != 0 else "")),
    ]
    lines += _error_lines(x, rep) if math.isfinite(x) else [("error", "undefined (infinite input)")]
    lines += [
        ("range", f"[{_dec(fmt.exact_min)}, {_dec(fmt.exact_max)}] = [{fmt.min_code}, {fmt.max_code}] x 2^{-n}"),
        ("resolution", f"{_pow2(-n)} (one LSB)"),
    ]
    return lines


# --------------------------------------------------------------------------------------------- output


def _print(lines: list[tuple[str, str]]) -> None:
    console = Console(file=sys.stdout, soft_wrap=True, highlight=False)
    for label, value in lines:
        console.print(Text.assemble((f"{label:<{_LABEL_WIDTH}}", "bold cyan"), value))


__all__ = ["register", "run"]
