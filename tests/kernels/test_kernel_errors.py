"""Bad input never reaches C: ValueError naming the argument.  And the C
kernels themselves refuse bad argument structs with HW_ERR_ARG (no crash)."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import kernels
from hwsim._native import ffi, lib
from hwsim.types import AccumSpec

A = np.zeros((2, 4), dtype=np.int8)
B = np.zeros((3, 4), dtype=np.int8)
X = np.zeros((1, 4, 4, 2), dtype=np.uint8)
W = np.zeros((3, 3, 3, 2), dtype=np.int8)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"a": [[1, 2]]}, "a"),
        ({"a": A.astype(np.float32)}, "a"),
        ({"a": A.astype(np.int32)}, "a"),
        ({"a": np.zeros(4, dtype=np.int8)}, "a"),
        ({"a": np.zeros((0, 4), dtype=np.int8)}, "a"),
        ({"a": np.zeros((2, 8), dtype=np.int8)[:, ::2]}, "a"),
        ({"b": np.zeros((3, 5), dtype=np.int8)}, "b"),
        ({"b": B.astype(np.int64)}, "b"),
        ({"b": np.zeros((4, 3), dtype=np.int8).T}, "b"),
        ({"a_zero_point": 128}, "a_zero_point"),
        ({"a_zero_point": 1.5}, "a_zero_point"),
        ({"a": A.astype(np.uint8), "a_zero_point": -1}, "a_zero_point"),
        ({"b_zero_point": [1, 2]}, "b_zero_point"),
        ({"b_zero_point": [0, 0, 200]}, "b_zero_point"),
        ({"b_zero_point": 0.5}, "b_zero_point"),
        ({"bias": np.zeros(2, dtype=np.int32)}, "bias"),
        ({"bias": np.zeros(3, dtype=np.float32)}, "bias"),
        ({"bias": [1, 2, 3]}, "bias"),
        ({"b": np.full((3, 4), 8, dtype=np.int8), "weight_bits": 4}, "b"),
        ({"b": np.full((3, 4), -9, dtype=np.int8), "weight_bits": 4}, "b"),
        ({"b_zero_point": 8, "weight_bits": 4}, "b_zero_point"),
        ({"weight_bits": 9}, "weight_bits"),
        ({"accum": "int32"}, "accum"),
        ({"requant": 1.0}, "requant"),
        ({"out_dtype": np.int8}, "out_dtype"),
        ({"n_threads": 0}, "n_threads"),
    ],
)
def test_gemm_bad_argument_is_named(kwargs, name):
    args = {"a": A, "b": B}
    args.update(kwargs)
    a, b = args.pop("a"), args.pop("b")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        kernels.gemm(a, b, **args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"x": np.zeros((4, 4, 2), dtype=np.uint8)}, "x"),
        ({"x": X.astype(np.float64)}, "x"),
        ({"x": np.zeros((1, 4, 8, 2), dtype=np.uint8)[:, :, ::2, :]}, "x"),
        ({"w": np.zeros((3, 3, 3, 1), dtype=np.int8)}, "w"),
        ({"w": np.zeros((3, 3, 3), dtype=np.int8)}, "w"),
        ({"groups": 2}, "groups"),             # 3 output channels do not split in 2
        ({"groups": 0}, "groups"),
        ({"padding": -1}, "padding"),
        ({"padding": (1, 1, 1)}, "padding"),
        ({"padding": (0, 0, 0, -2)}, "padding"),
        ({"padding": "same"}, "padding"),
        ({"stride": 0}, "stride"),
        ({"stride": (1, 2, 3)}, "stride"),
        ({"dilation": 0}, "dilation"),
        ({"dilation": 3}, "padding"),          # a 7x7 dilated kernel does not fit a 4x4 input
        ({"w": np.zeros((3, 5, 5, 2), dtype=np.int8)}, "padding"),
        ({"x_zero_point": 256}, "x_zero_point"),
        ({"w_zero_point": [0, 0]}, "w_zero_point"),
        ({"w_zero_point": -129}, "w_zero_point"),
        ({"bias": np.zeros(4, dtype=np.int64)}, "bias"),
        ({"w": np.full((3, 3, 3, 2), 7, dtype=np.int8), "weight_bits": 3}, "w"),
    ],
)
def test_conv2d_bad_argument_is_named(kwargs, name):
    args = {"x": X, "w": W}
    args.update(kwargs)
    x, w = args.pop("x"), args.pop("w")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        kernels.conv2d(x, w, **args)


def test_bad_accum_spec_is_named():
    with pytest.raises(ValueError, match="AccumSpec.group"):
        AccumSpec(group=3)
    with pytest.raises(ValueError, match="AccumSpec.acc_bits"):
        AccumSpec(acc_bits=65)


# ---------------------------------------------------------------- the C layer on its own


def _gemm_args(a, b):
    args = ffi.new("hw_gemm_args_t *")
    args.M, args.K = a.shape
    args.N = b.shape[0]
    args.a_dtype = args.b_dtype = lib.HW_DT_S8
    args.a = ffi.cast("const void *", ffi.from_buffer(a))
    args.b = ffi.cast("const void *", ffi.from_buffer(b))
    args.lda = args.ldb = a.shape[1]
    args.n_threads = 1
    return args


def _spec(**kw):
    s = ffi.new("hw_accum_spec_t *")
    s.group, s.group_bits, s.acc_bits = 1, 64, 32
    for k, v in kw.items():
        setattr(s, k, v)
    return s


@pytest.mark.parametrize(
    "field, value",
    [("M", 0), ("K", -1), ("lda", 3), ("a_dtype", lib.HW_DT_S32), ("a_zero_point", 128), ("n_threads", 0),
     ("b_zp_per_channel", 2), ("a", ffi.NULL)],
)
def test_c_gemm_rejects_bad_args(field, value):
    a, b = A.copy(), B.copy()
    args = _gemm_args(a, b)
    setattr(args, field, value)
    acc = np.zeros((2, 3), dtype=np.int64)
    assert lib.hw_gemm(args, _spec(), ffi.NULL, 0, ffi.NULL, ffi.cast("int64_t *", ffi.from_buffer(acc)), ffi.NULL) == lib.HW_ERR_ARG


@pytest.mark.parametrize("field, value", [("group", 3), ("group_bits", 1), ("acc_bits", 7), ("acc_overflow", 2),
                                          ("input_zero_point", 5), ("bias_first", 2)])
def test_c_gemm_rejects_bad_spec(field, value):
    args = _gemm_args(A.copy(), B.copy())
    assert lib.hw_gemm(args, _spec(**{field: value}), ffi.NULL, 0, ffi.NULL, ffi.NULL, ffi.NULL) == lib.HW_ERR_ARG


def test_c_kernels_reject_null_and_out_without_requant():
    assert lib.hw_gemm(ffi.NULL, _spec(), ffi.NULL, 0, ffi.NULL, ffi.NULL, ffi.NULL) == lib.HW_ERR_ARG
    assert lib.hw_conv2d(ffi.NULL, _spec(), ffi.NULL, 0, ffi.NULL, ffi.NULL, ffi.NULL) == lib.HW_ERR_ARG
    out = np.zeros((2, 3), dtype=np.int8)
    args = _gemm_args(A.copy(), B.copy())
    assert lib.hw_gemm(args, _spec(), ffi.NULL, 0, ffi.from_buffer(out), ffi.NULL, ffi.NULL) == lib.HW_ERR_ARG
    b = B.copy()
    zp = np.array([0, 0, 300], dtype=np.int32)
    args = _gemm_args(A.copy(), b)
    args.b_zero_point = ffi.cast("const int32_t *", ffi.from_buffer(zp))
    args.b_zp_per_channel = 1
    assert lib.hw_gemm(args, _spec(), ffi.NULL, 0, ffi.NULL, ffi.NULL, ffi.NULL) == lib.HW_ERR_ARG


@pytest.mark.parametrize(
    "field, value",
    [("out_h", 3), ("out_w", 1), ("pad_top", -1), ("groups", 3), ("stride_h", 0), ("dilation_w", 0),
     ("kernel_h", 9), ("x_zero_point", 256), ("in_c", 0)],
)
def test_c_conv2d_rejects_bad_geometry(field, value):
    x, w = X.copy(), W.copy()
    args = ffi.new("hw_conv2d_args_t *")
    args.batch, args.in_h, args.in_w, args.in_c = X.shape
    args.out_c, args.kernel_h, args.kernel_w = 3, 3, 3
    args.out_h = args.out_w = 4
    args.stride_h = args.stride_w = args.dilation_h = args.dilation_w = 1
    args.pad_top = args.pad_left = args.pad_bottom = args.pad_right = 1
    args.groups = 1
    args.x_dtype, args.w_dtype = lib.HW_DT_U8, lib.HW_DT_S8
    args.x = ffi.cast("const void *", ffi.from_buffer(x))
    args.w = ffi.cast("const void *", ffi.from_buffer(w))
    args.n_threads = 1
    acc = np.zeros((1, 4, 4, 3), dtype=np.int64)
    acc_p = ffi.cast("int64_t *", ffi.from_buffer(acc))
    assert lib.hw_conv2d(args, _spec(), ffi.NULL, 0, ffi.NULL, acc_p, ffi.NULL) == lib.HW_OK   # the valid baseline
    setattr(args, field, value)
    assert lib.hw_conv2d(args, _spec(), ffi.NULL, 0, ffi.NULL, acc_p, ffi.NULL) == lib.HW_ERR_ARG
