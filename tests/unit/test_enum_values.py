"""The C enums (hw_types.h, read through cffi) equal hwsim.types: one source of truth."""

from __future__ import annotations

import pytest

from hwsim._native import lib
from hwsim._native.primitives import OUT_DTYPES
from hwsim.types import Overflow, RequantScheme, Rounding, ZeroPointPlacement

import numpy as np


@pytest.mark.parametrize("mode", list(Rounding))
def test_rounding_values(mode):
    assert getattr(lib, f"HW_ROUND_{mode.name}") == mode.c_value


def test_rounding_is_complete():
    c_names = {n for n in dir(lib) if n.startswith("HW_ROUND_")}
    assert c_names == {f"HW_ROUND_{m.name}" for m in Rounding}


@pytest.mark.parametrize("ovf", list(Overflow))
def test_overflow_values(ovf):
    assert getattr(lib, f"HW_OVERFLOW_{ovf.name}") == ovf.c_value


@pytest.mark.parametrize("scheme", list(RequantScheme))
def test_requant_scheme_values(scheme):
    assert getattr(lib, f"HW_REQ_{scheme.name}") == scheme.c_value


def test_requant_scheme_is_complete():
    c_names = {n for n in dir(lib) if n.startswith("HW_REQ_")}
    assert c_names == {f"HW_REQ_{s.name}" for s in RequantScheme}


def test_zero_point_placement_values():
    assert lib.HW_ZP_IN_MAC == ZeroPointPlacement.IN_MAC.c_value
    assert lib.HW_ZP_FOLDED == ZeroPointPlacement.FOLDED_INTO_BIAS.c_value


def test_output_dtypes():
    assert OUT_DTYPES == {
        np.dtype(np.int8): lib.HW_DT_S8,
        np.dtype(np.uint8): lib.HW_DT_U8,
        np.dtype(np.int16): lib.HW_DT_S16,
        np.dtype(np.int32): lib.HW_DT_S32,
    }
