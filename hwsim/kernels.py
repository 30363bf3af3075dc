"""Emulate one quantized layer (GEMM / fully connected, or 2-D convolution)
bit for bit, without a model.

Every integer result comes from the C kernels (``c_kernels/hw_gemm.c``,
``hw_conv2d.c``; fast paths where proven identical).  This module only checks
arguments -- every shape, dtype, contiguity and value range -- and raises
``ValueError`` naming the argument before anything reaches C.

Accumulation (:class:`~hwsim.types.AccumSpec`), for output channel ``c`` and
taps k = 0 .. K-1 in order (GEMM: k is the column of A; conv: ky, then kx,
then input channel, with padding taps holding ``x = x_zero_point``)::

    p_k  = (x_k - zx) * (w_k - zw[c])            input_zero_point = in_mac
         =  x_k       * (w_k - zw[c])            input_zero_point = folded_into_bias
    s_g  = narrow(p_{gG} + ... + p_{gG+G-1}, group_bits, group_overflow)    G = group
    acc  = narrow(acc + s_g, acc_bits, acc_overflow)                        g = 0, 1, ...
    corr = narrow(narrow(-zx * sum_k (w_k - zw[c])) + bias[c])   (folded; in_mac: narrow(bias[c]))
    bias_first: acc starts at corr;  otherwise: acc = narrow(acc + corr) after the last group

Requantisation (:class:`RequantParams`) then maps each final accumulator to
the output format; see ``c_kernels/hw_requantize.h``.  Counters are per
output channel: group / accumulator narrowings that changed a value, outputs
the output stage clamped or wrapped, and the largest ``|acc|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim._native import kernels as _nk
from hwsim._native.primitives import requantize as _requantize_native
from hwsim.layer_specs import SplitRequant
from hwsim.numerics.requant_params import RequantParams
from hwsim.types import AccumSpec

__all__ = ["gemm", "conv2d", "pack_weights", "PackedWeights", "AccumSpec", "RequantParams", "SplitRequant", "KernelResult", "KernelCounters"]

_OPERAND_DTYPES = tuple(_nk.OPERAND_DTYPES)
_OUTPUT_DTYPES = tuple(_nk.OUTPUT_DTYPES)


@dataclass(frozen=True)
class KernelCounters:
    """Per-output-channel statistics of one kernel call (int64 arrays of length N / out_c).

    Attributes
    ----------
    group_events : group-sum narrowings that changed the value (summed over all outputs)
    acc_events : accumulator narrowings that changed the value (incl. the bias / folded
        zero-point correction, counted once per output)
    out_events : outputs the output stage clamped or wrapped (0 without requantisation)
    max_abs_acc : largest ``|final accumulator|`` (``|-2**63|`` reported as ``2**63 - 1``)
    """

    group_events: np.ndarray
    acc_events: np.ndarray
    out_events: np.ndarray
    max_abs_acc: np.ndarray


@dataclass(frozen=True)
class KernelResult:
    """What :func:`gemm` / :func:`conv2d` return when asked for more than the output.

    Attributes
    ----------
    output : the requantised output, or the int64 accumulators when ``requant`` is None
    accumulators : int64 final accumulators (same shape as ``output``), or None if not requested
    counters : :class:`KernelCounters`, or None if not requested
    """

    output: np.ndarray
    accumulators: np.ndarray | None
    counters: KernelCounters | None


# ---------------------------------------------------------------- validation


def _int(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def _operand(arr, name: str, ndim: int, layout: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(arr).__name__}")
    if arr.dtype not in _OPERAND_DTYPES:
        raise ValueError(f"{name}: expected dtype int8, uint8 or int16, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {arr.shape}")
    if any(s < 1 for s in arr.shape):
        raise ValueError(f"{name}: every dimension must be >= 1, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name}: array must be C-contiguous (use np.ascontiguousarray)")
    return arr


_DTYPE_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
                 for t in (np.int8, np.uint8, np.int16, np.int32)}


def _dtype_range(dtype: np.dtype) -> tuple[int, int]:
    # a table: np.iinfo costs microseconds, and every call asks several times
    rng = _DTYPE_RANGES.get(np.dtype(dtype))
    if rng is None:
        info = np.iinfo(dtype)
        rng = (int(info.min), int(info.max))
    return rng


def _weight_range(w: np.ndarray, weight_bits, name: str) -> tuple[int, int]:
    """The declared weight format's range; checks every weight lies in it."""
    lo, hi = _dtype_range(w.dtype)
    if weight_bits is None:
        return lo, hi
    signed = lo < 0
    full = w.dtype.itemsize * 8
    bits = _int(weight_bits, "weight_bits", 2 if signed else 1, full)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    wmin, wmax = int(w.min()), int(w.max())
    if wmin < lo or wmax > hi:
        bad = wmin if wmin < lo else wmax
        raise ValueError(
            f"{name}: weight_bits={bits} needs values in [{lo}, {hi}], found {bad}"
        )
    return lo, hi


def _weight_zero_points(zp, n: int, lo: int, hi: int, name: str) -> np.ndarray:
    arr = np.asarray(zp)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise ValueError(f"{name}: expected an integer or a 1-D integer array, got {zp!r}")
    arr = arr.reshape(-1)
    if arr.shape[0] not in (1, n):
        raise ValueError(f"{name}: expected 1 (per tensor) or {n} (per channel) zero points, got {arr.shape[0]}")
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(f"{name}: zero points must lie in the weight range [{lo}, {hi}], got {arr.tolist()}")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _bias(bias, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    if not isinstance(bias, np.ndarray):
        raise ValueError(f"bias: expected a numpy int32 or int64 array, got {type(bias).__name__}")
    if bias.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"bias: expected dtype int32 or int64, got {bias.dtype}")
    if bias.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},) (one per output channel), got {bias.shape}")
    return np.ascontiguousarray(bias, dtype=np.int64)


def _accum(accum) -> AccumSpec:
    if accum is None:
        return AccumSpec()
    if not isinstance(accum, AccumSpec):
        raise ValueError(f"accum: expected an AccumSpec, got {type(accum).__name__}")
    return accum


def _requant(requant, n: int):
    if requant is None:
        return None
    if isinstance(requant, SplitRequant):
        first = requant.first_tail_channel
        if not 0 <= first < n:
            raise ValueError(f"requant: first_tail_channel {first} is outside [0, {n})")
        if requant.head is not None:
            _requant(requant.head, first)
        elif first != 0:
            raise ValueError("requant: a SplitRequant without head must start its tail at channel 0")
        _requant(requant.tail, n - first)
        return requant
    if not isinstance(requant, RequantParams):
        raise ValueError(f"requant: expected a RequantParams or SplitRequant, got {type(requant).__name__}")
    if requant.n_channels not in (1, n):
        raise ValueError(
            f"requant: {requant.n_channels} channels of parameters, expected 1 (per tensor) or {n} (per channel)"
        )
    return requant


def _out_dtype(out_dtype, requant) -> np.dtype | None:
    if isinstance(requant, SplitRequant):   # head and tail share the output format
        requant = requant.tail
    if requant is None:
        if out_dtype is not None:
            raise ValueError("out_dtype: only meaningful with requant (without it the output is the int64 accumulators)")
        return None
    if out_dtype is None:   # the narrowest dtype that holds [out_min, out_max] (as hwsim.numerics' requantize)
        for dt in _OUTPUT_DTYPES:
            lo, hi = _dtype_range(dt)
            if lo <= requant.out_min and requant.out_max <= hi:
                return dt
    try:
        dt = np.dtype(out_dtype)
    except TypeError:
        raise ValueError(f"out_dtype: expected a numpy integer dtype, got {out_dtype!r}") from None
    if dt not in _OUTPUT_DTYPES:
        raise ValueError(f"out_dtype: expected int8, uint8, int16 or int32, got {dt}")
    lo, hi = _dtype_range(dt)
    if requant.out_min < lo or requant.out_max > hi:
        raise ValueError(
            f"out_dtype: {dt} cannot hold the requantised range [{requant.out_min}, {requant.out_max}]"
        )
    return dt


def _pair(value, name: str, lo: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        v = _int(value, name, lo, 2**31 - 1)
        return v, v
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(_int(v, name, lo, 2**31 - 1) for v in value)  # type: ignore[return-value]
    raise ValueError(f"{name}: expected an integer or a pair (h, w), got {value!r}")


def _padding(value) -> tuple[int, int, int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 4:
        return tuple(_int(v, "padding", 0, 2**31 - 1) for v in value)  # type: ignore[return-value]
    ph, pw = _pair(value, "padding", 0)
    return ph, pw, ph, pw


def _split_requantize(res, split: SplitRequant, out_dtype: np.dtype):
    """Requantise ``res.accumulators`` with ``split.head`` on the first channels
    and ``split.tail`` on the rest (channels = the last axis)."""
    acc = res.accumulators
    n = acc.shape[-1]
    first = split.first_tail_channel
    out = np.empty(acc.shape, dtype=out_dtype)
    events = np.zeros(n, dtype=np.int64)
    stages = ((split.head, 0, first), (split.tail, first, n))
    for params, lo, hi in stages:
        if params is None or lo == hi:
            continue
        part = np.ascontiguousarray(acc[..., lo:hi])
        out[..., lo:hi], ev = _requantize_native(part, params, out_dtype=out_dtype, return_events=True)
        events[lo:hi] = ev if ev.size == hi - lo else ev.sum()
    res.output = out
    if res.out_events is not None:
        res.out_events = events
    return res


def _channel_params(w, n: int, weight_bits, zero_point, zp_name: str, bias, accum, requant, out_dtype, w_name: str):
    """The per-output-channel arguments shared by gemm, conv2d and the prepared
    layers, checked: (weight zero points int32, bias int64 or None, AccumSpec,
    requant, output dtype)."""
    w_lo, w_hi = _weight_range(w, weight_bits, w_name)
    zw = _weight_zero_points(zero_point, n, w_lo, w_hi, zp_name)
    rq = _requant(requant, n)
    return zw, _bias(bias, n), _accum(accum), rq, _out_dtype(out_dtype, rq)


def _run(native, rq, odt, return_accumulators: bool, counters: bool, **kwargs):
    """Call a ``hwsim._native.kernels`` entry point; a SplitRequant is applied
    here, to the accumulators, one channel range at a time."""
    split = rq if isinstance(rq, SplitRequant) else None
    res = native(requant=None if split else rq, out_dtype=None if split else odt,
                 want_acc=return_accumulators or rq is None or split is not None, want_counters=counters, **kwargs)
    if split is not None:
        res = _split_requantize(res, split, odt)
    return _result(res, rq, return_accumulators, counters)


def _result(res, requant, return_accumulators: bool, counters: bool):
    output = res.output if requant is not None else res.accumulators
    if not return_accumulators and not counters:
        return output
    cnt = None
    if counters:
        cnt = KernelCounters(res.group_events, res.acc_events, res.out_events, res.max_abs_acc)
    return KernelResult(output, res.accumulators if return_accumulators else None, cnt)


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """Constant weights packed once for the fast kernels (:func:`pack_weights`).

    Pass it in place of ``b`` (:func:`gemm`) or ``w`` (:func:`conv2d`).  It holds
    a private read-only copy of the weights, so later changes to the caller's
    array cannot make the packed copy and the weights disagree.
    """

    weights: np.ndarray
    _handle: object

    @property
    def shape(self) -> tuple:
        return self.weights.shape


def pack_weights(w: np.ndarray, accum: AccumSpec | None = None, zero_point=0) -> PackedWeights:
    """Pack constant weights once per layer (onnxruntime pre-packs its initializers too).

    Parameters
    ----------
    w : ndarray
        [N, K] GEMM weights or [O, KH, KW, I] convolution weights (int8 / uint8 /
        int16).
    accum : AccumSpec, optional
        The accumulator the layer will run with.  None (the int32 accumulator)
        packs the VPDPBUSD layout only; a narrow saturating spec (acc_bits 8..31,
        saturate, group 1) also packs what the narrow-accumulator path reads:
        its step-kernel panels or, for 17..31 bits, the guarded path's weight
        quads and per-block bound data.
    zero_point : int or sequence of int
        The weight zero point(s) the layer will be called with (1 or N / O
        values).  The narrow part stores w - zero_point; a call with other zero
        points simply prepares its own copy.

    Results never depend on packing: a packed call and an unpacked one give the
    same bits whatever ``accum`` and ``zero_point`` were; packing only saves the
    per-call work when they match the call's.
    """
    ndim = w.ndim if isinstance(w, np.ndarray) else 0
    w = _operand(w, "w", 4 if ndim == 4 else 2, "[O, KH, KW, I]" if ndim == 4 else "[N, K]")
    lo, hi = _dtype_range(w.dtype)
    zw = _weight_zero_points(zero_point, w.shape[0], lo, hi, "zero_point")
    spec = None if accum is None else _accum(accum)
    copy = np.array(w, copy=True)
    copy.setflags(write=False)
    return PackedWeights(copy, _nk.pack_weights(copy, spec, zw))


def _unpack(w, name: str):
    if isinstance(w, PackedWeights):
        return w.weights, w._handle
    return w, _nk.ffi.NULL


# ---------------------------------------------------------------- public API


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_zero_point: int = 0,
    b_zero_point=0,
    bias: np.ndarray | None = None,
    accum: AccumSpec | None = None,
    requant=None,
    out_dtype=None,
    weight_bits: int | None = None,
    return_accumulators: bool = False,
    counters: bool = False,
    n_threads: int = 1,
):
    """Integer GEMM ``out[m, n] = requant(acc(A[m, :], B[n, :]))`` as a target computes it.

    Parameters
    ----------
    a : ndarray [M, K], int8 / uint8 / int16
        Activations (C-contiguous).
    b : ndarray [N, K], int8 / uint8 / int16, or PackedWeights
        Weights, one output channel per row (an ONNX MatMul's B transposed; a
        TFLite FULLY_CONNECTED weight as is).
    a_zero_point : int
        Activation zero point, in a's dtype range.
    b_zero_point : int or sequence of int
        Weight zero point per tensor (1 value) or per output channel (N values).
    bias : ndarray [N] int32 or int64, optional
    accum : AccumSpec, optional
        How products are summed; default: exact products, 32-bit wrapping accumulator.
    requant : RequantParams or SplitRequant, optional
        Accumulator -> output stage; without it the output is the int64 accumulators.
        :func:`hwsim.layer_specs.layer_specs` derives it (and ``accum``) from a
        target profile and the layer's scales.
    out_dtype : numpy dtype, optional
        Output dtype (int8, uint8, int16, int32); default: the first of these that
        holds ``[requant.out_min, requant.out_max]``.
    weight_bits : int, optional
        Declared weight width, e.g. 4 for int4 weights stored in an int8 array
        (values must lie in [-8, 7]); default: the dtype's full width.
    return_accumulators, counters : bool
        Also return the final accumulators / the per-channel counters.
    n_threads : int
        Threads to use; the result never depends on it.

    Returns
    -------
    ndarray [M, N], or a :class:`KernelResult` when ``return_accumulators`` or ``counters``.
    """
    b, packed = _unpack(b, "b")
    a = _operand(a, "a", 2, "[M, K]")
    b = _operand(b, "b", 2, "[N, K]")
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"b: expected shape [N, {a.shape[1]}] (K must match a's), got {b.shape}")
    n = b.shape[0]
    zx = _int(a_zero_point, "a_zero_point", *_dtype_range(a.dtype))
    zw, bias64, spec, rq, odt = _channel_params(b, n, weight_bits, b_zero_point, "b_zero_point", bias, accum, requant,
                                                out_dtype, "b")
    threads = _int(n_threads, "n_threads", 1, 2**31 - 1)
    return _run(_nk.gemm, rq, odt, return_accumulators, counters, a=a, b=b, a_zero_point=zx, b_zero_point=zw,
                bias=bias64, accum=spec, n_threads=threads, packed=packed)


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride=1,
    dilation=1,
    padding=0,
    groups: int = 1,
    x_zero_point: int = 0,
    w_zero_point=0,
    bias: np.ndarray | None = None,
    accum: AccumSpec | None = None,
    requant=None,
    out_dtype=None,
    weight_bits: int | None = None,
    return_accumulators: bool = False,
    counters: bool = False,
    n_threads: int = 1,
):
    """Integer 2-D convolution, NHWC, as a target computes it.

    Parameters
    ----------
    x : ndarray [batch, H, W, C], int8 / uint8 / int16
    w : ndarray [O, KH, KW, C / groups], int8 / uint8 / int16
        Output channel o uses input channels of group o // (O / groups).
        Depthwise: groups == C (depth multiplier O / C).
    stride, dilation : int or (h, w)
    padding : int, (h, w) or (top, left, bottom, right)
        Padding taps hold ``x = x_zero_point`` and keep their place in the
        accumulation order (ky, kx, ci).
    groups : int
        Divides both C and O.
    x_zero_point, w_zero_point, bias, accum, requant, out_dtype, weight_bits,
    return_accumulators, counters, n_threads
        As in :func:`gemm` (per-channel means per output channel O).

    Returns
    -------
    ndarray [batch, OH, OW, O] with OH = (H + top + bottom - dilation_h (KH - 1) - 1) // stride_h + 1
    (likewise OW), or a :class:`KernelResult`.
    """
    w, packed = _unpack(w, "w")
    x = _operand(x, "x", 4, "[batch, H, W, C] (NHWC)")
    w = _operand(w, "w", 4, "[O, KH, KW, C/groups]")
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    pad = _padding(padding)
    _, in_h, in_w, in_c = x.shape
    out_c, kh, kw, cg = w.shape
    g = _int(groups, "groups", 1, 2**31 - 1)
    if in_c % g or out_c % g:
        raise ValueError(f"groups: {g} must divide both input channels ({in_c}) and output channels ({out_c})")
    if cg != in_c // g:
        raise ValueError(f"w: expected shape [O, KH, KW, {in_c // g}] (C / groups), got {w.shape}")
    span_h = in_h + pad[0] + pad[2] - dh * (kh - 1) - 1
    span_w = in_w + pad[1] + pad[3] - dw * (kw - 1) - 1
    if span_h < 0 or span_w < 0:
        raise ValueError(
            f"padding: the dilated kernel ({dh * (kh - 1) + 1} x {dw * (kw - 1) + 1}) does not fit the padded "
            f"input ({in_h + pad[0] + pad[2]} x {in_w + pad[1] + pad[3]}) with padding {pad}"
        )
    out_hw = (span_h // sh + 1, span_w // sw + 1)
    zx = _int(x_zero_point, "x_zero_point", *_dtype_range(x.dtype))
    zw, bias64, spec, rq, odt = _channel_params(w, out_c, weight_bits, w_zero_point, "w_zero_point", bias, accum,
                                                requant, out_dtype, "w")
    threads = _int(n_threads, "n_threads", 1, 2**31 - 1)
    return _run(_nk.conv2d, rq, odt, return_accumulators, counters, x=x, w=w, stride=(sh, sw), dilation=(dh, dw),
                padding=pad, groups=g, out_hw=out_hw, x_zero_point=zx, w_zero_point=zw, bias=bias64, accum=spec,
                n_threads=threads, packed=packed)
