"""`hwsim format`: the issue's 7.625 example, fixed-point output, and bad input -> exit 2."""

from __future__ import annotations

import pytest

from hwsim.cli import main


def run(capsys, *argv):
    status = main(["format", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def field(out: str, label: str) -> str:
    """The text after a label in the CLI's 'label   value' lines (first match)."""
    for line in out.splitlines():
        if line.startswith(label + " "):
            return line[len(label):].strip()
    raise AssertionError(f"no line {label!r} in:\n{out}")


def test_issue_example_7_625_fp32(capsys):
    status, out, err = run(capsys, "7.625", "--as", "fp32")
    assert status == 0 and err == ""
    assert "111.101 (binary)" in field(out, "input")
    assert "1.11101 x 2^2" in field(out, "input")
    assert field(out, "exponent") == "2 + 127 = 129 = 10000001"
    assert field(out, "mantissa").startswith("11101000000000000000000 (23 bits")
    assert field(out, "bit pattern") == "0 10000001 11101000000000000000000 = 0x40F40000"
    assert field(out, "sign") == "0 (+)"
    assert field(out, "represented").startswith("7.625 = 111.101 (binary)")
    assert field(out, "error") == "0 (exact)"
    assert "32 bits, bias 127" in field(out, "format")


def test_7_625_in_e5m2_rounds_up_to_8(capsys):
    # 1.11|101b x 2^2: the dropped bits 101 are more than half an LSB -> 1.00b x 2^3 = 8, exponent 3 + 15 = 18.
    status, out, _ = run(capsys, "7.625", "--as", "e5m2")
    assert status == 0
    assert field(out, "exponent") == "3 + 15 = 18 = 10010"
    assert field(out, "bit pattern") == "0 10010 00 = 0x48"
    assert field(out, "represented").startswith("8 = 1000 (binary)")
    assert field(out, "error").startswith("0.375 ")


def test_q4_4_shows_pattern_value_error_range_resolution(capsys):
    # q4.4: 1 sign + 4 integer + 4 fraction bits = 9 bits.  7.625 * 16 = 122 = 0 0111 1010.
    status, out, _ = run(capsys, "7.625", "--as", "q4.4")
    assert status == 0
    assert "9 bits total" in field(out, "format")
    assert field(out, "stored integer").startswith("122 ")
    assert field(out, "bit pattern").startswith("0 0111 1010 = 0x07A")
    assert field(out, "represented").startswith("7.625 = 122 x 2^-4")
    assert field(out, "error") == "0 (exact)"
    assert field(out, "range") == "[-16, 15.9375] = [-256, 255] x 2^-4"
    assert field(out, "resolution").startswith("2^-4 = 0.0625")


def test_inexact_fixed_value_shows_the_error(capsys):
    # q4.2 (7 bits): 1.3125 * 4 = 5.25 -> 5 (half_even) -> 1.25 = 0 0001 01; error 1.25 - 1.3125 = -0.0625.
    status, out, _ = run(capsys, "1.3125", "--as", "q4.2")
    assert status == 0
    assert field(out, "bit pattern").startswith("0 0001 01 = 0x05")
    assert field(out, "represented").startswith("1.25 = 5 x 2^-2")
    assert field(out, "error").startswith("-0.0625 ")
    assert field(out, "resolution").startswith("2^-2 = 0.25")


@pytest.mark.parametrize(
    "argv, stored, represented",
    [
        (["100", "--as", "q3.4"], "127   (saturated", "7.9375"),              # saturates to 127 / 16
        (["19", "--as", "q3.0", "--overflow", "wrap"], "3   (wrapped", "3"),  # ap_fixed<4,4> AP_WRAP
        (["-1.25", "--as", "q1.1", "--rounding", "half_down"], "-3   (fits", "-1.5"),  # -2.5 -> -3
        (["-1.25", "--as", "q1.1", "--rounding", "half_zero"], "-2   (fits", "-1"),    # -2.5 -> -2
        (["-19", "--as", "uq4.0", "--overflow", "wrap"], "13   (wrapped", "13"),      # ap_ufixed<4,4> AP_WRAP
    ],
)
def test_fixed_rounding_and_overflow_options(capsys, argv, stored, represented):
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert field(out, "stored integer").startswith(stored)
    assert field(out, "represented").startswith(represented + " ")


def test_unsigned_format_has_no_sign_bit(capsys):
    status, out, _ = run(capsys, "7.625", "--as", "uq4.4")
    assert status == 0
    assert "8 bits total" in field(out, "format")
    assert field(out, "bit pattern").startswith("0111 1010 = 0x7A")


def test_subnormal_and_overflow_in_float_formats(capsys):
    status, out, _ = run(capsys, "0x1p-24", "--as", "fp16")
    assert status == 0
    assert field(out, "class") == "subnormal"
    assert field(out, "bit pattern") == "0 00000 0000000001 = 0x0001"
    assert "0.0000000001 x 2^-14" in field(out, "represented")
    status, out, _ = run(capsys, "465", "--as", "e4m3")
    assert status == 0 and field(out, "class") == "nan" and field(out, "represented") == "NaN"
    status, out, _ = run(capsys, "465", "--as", "e4m3", "--overflow", "saturate")
    assert status == 0 and field(out, "represented").startswith("448 ")
    status, out, _ = run(capsys, "1e6", "--as", "fp16")
    assert status == 0 and field(out, "represented") == "inf" and field(out, "error") == "infinite (overflow to inf)"
    status, out, _ = run(capsys, "inf", "--as", "q3.4")
    assert status == 0 and field(out, "stored integer").startswith("127   (saturated")


def test_input_that_float64_cannot_hold_is_flagged(capsys):
    status, out, _ = run(capsys, "0.1", "--as", "bf16")
    assert status == 0
    assert "read as the nearest float64, 0.1000000000000000055511151231257827021181583404541015625" in out
    assert field(out, "represented").startswith("0.10009765625 ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["abc", "--as", "fp32"], "VALUE: 'abc' is not a number"),
        (["1", "--as", "fp64"], "unknown format 'fp64'"),
        (["1", "--as", "q0.0"], "q0.0"),
        (["1", "--as", "uq0.0"], "uq0.0"),
        (["1", "--as", "q3.4x"], "qM.N"),
        (["1", "--as", "q100.100"], "201 bits exceeds the supported 64 bits"),
        (["1", "--as", "q3.4", "--rounding", "nearest"], "--rounding: expected one of floor"),
        (["1", "--as", "q3.4", "--overflow", "clip"], "--overflow: expected one of wrap, saturate"),
        (["nan", "--as", "q3.4"], "NaN has no fixed-point encoding"),
        (["inf", "--as", "q3.4", "--overflow", "wrap"], "infinity cannot be wrapped"),
        (["1", "--as", "fp32", "--rounding", "floor"], "fixed-point formats only"),
        (["1", "--as", "fp16", "--overflow", "wrap"], "cannot wrap"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("hwsim: error: ") and message in err, err
