"""Uniform affine quantizers: codes from reals, reals from codes, and weight scales per granularity.

Convention
----------
One convention in the whole package (:mod:`hwsim.quant.params`), the one ONNX and
TFLite store::

    q  = clamp(round(r / scale) + zero_point, qmin, qmax)
    r~ = scale * (q - zero_point)

The survey (Gholami et al., section III) writes Q(r) = Int(r/S) - Z and
r~ = S(Q(r) + Z).  That is the same mapping with **Z = -zero_point**: its
Int(r/S) - Z is our round(r/S) + zero_point, and its S(Q + Z) is our
scale * (q - zero_point).  Nothing in hwsim stores Z.

Rounding is round half to even (``numpy.rint``), the rounding of ONNX
QuantizeLinear; ``r / scale`` is computed in float32 (the scale is float32,
and a float32 ``r`` is divided in float32, as the engines do).  Ties are real:
2.5 -> 2, 3.5 -> 4, -2.5 -> -2.

Granularity (``granularity`` of :func:`weight_params`, the target profile's spelling)
------------------------------------------------------------------------------------
``per-tensor``
    one scale for the whole tensor.
``per-channel``
    one scale per output channel (``axis``, 0 for hwsim's weights: conv2d
    [O, KH, KW, I], fully_connected [O, K]).
``per-group:N``
    one scale per group of N consecutive elements along the **reduction axis**
    of each output channel.  The reduction axis of a conv weight [O, KH, KW, I]
    is the flattened (KH, KW, I) in that order (I fastest), of a fully_connected
    weight [O, K] it is K.  With K reduction elements there are
    G = ceil(K / N) groups; when N does not divide K the **last group is short**
    (K - (G-1)N elements) unless ``allow_short_group=False``.  Scales have shape
    [O, G], ``axis`` 0 and ``group_size`` N (block quantization as in
    onnxruntime's MatMulNBits / llama.cpp's Q4 blocks).
``per-channel-group:N``
    the survey's sub-channel granularity: N consecutive **output** channels
    share one scale (a last short group of channels is allowed).  The result is
    stored per channel (scale [O], repeated within each group), so any target
    that runs per-channel weights runs it.

Weight methods: ``minmax`` (the group's [min, max], widened to contain 0) and
``mse`` (for each scale group, the clip ratio r of [r*min, r*max] minimising
||w - fake_quantize(w)||^2 over the fixed grid of 100 ratios 1.0, ..., 0.5
(``numpy.linspace(1, 0.5, 100)``); a tie keeps the larger ratio).

Bits 2..16, signed or not, symmetric or not, full or restricted range come
from :class:`~hwsim.quant.params.QuantFormat`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from hwsim.graph.ir import QuantParams, WeightLookup
from hwsim.quant.params import AffineParams, QuantFormat, params_from_range

__all__ = [
    "quantize_tensor",
    "dequantize_tensor",
    "fake_quantize",
    "weight_params",
    "parse_granularity",
    "to_ir_weights",
    "to_ir_bias",
    "WEIGHT_METHODS",
    "MSE_RATIOS",
]

WEIGHT_METHODS = ("minmax", "mse")
#: The clip ratios the ``mse`` weight method tries, largest first (a tie keeps the larger one).
MSE_RATIOS = np.linspace(1.0, 0.5, 100)

_GROUP_RE = re.compile(r"^(per-group|per-channel-group):([0-9]+)$")


def parse_granularity(granularity: str) -> tuple[str, int | None]:
    """``"per-group:32"`` -> ``("per-group", 32)``; ``"per-channel"`` -> ``("per-channel", None)``.

    Raises
    ------
    ValueError
        Anything but per-tensor, per-channel, per-group:N or per-channel-group:N (N >= 1).
    """
    if granularity in ("per-tensor", "per-channel"):
        return granularity, None
    m = _GROUP_RE.match(granularity) if isinstance(granularity, str) else None
    if m is None or int(m.group(2)) < 1:
        raise ValueError(f"granularity: expected per-tensor, per-channel, per-group:N or per-channel-group:N "
                         f"with N a positive integer, got {granularity!r}")
    return m.group(1), int(m.group(2))


# --------------------------------------------------------------------------------------------------
# Broadcasting scales over a tensor
# --------------------------------------------------------------------------------------------------


def _grouped_view(x: np.ndarray, axis: int, group_size: int) -> tuple[np.ndarray, tuple]:
    """x with ``axis`` first and the rest flattened, padded with zeros to [O, G, N]; and how to undo it."""
    moved = np.moveaxis(x, axis, 0)
    o = moved.shape[0]
    flat = moved.reshape(o, -1)
    k = flat.shape[1]
    g = -(-k // group_size)
    padded = np.zeros((o, g * group_size), dtype=flat.dtype)
    padded[:, :k] = flat
    return padded.reshape(o, g, group_size), (moved.shape, k)


def _ungroup(y: np.ndarray, undo: tuple, axis: int) -> np.ndarray:
    moved_shape, k = undo
    flat = y.reshape(y.shape[0], -1)[:, :k]
    return np.moveaxis(flat.reshape(moved_shape), 0, axis)


def _check_params_fit(shape: tuple, params: AffineParams, what: str) -> None:
    s = params.scale
    if s.ndim == 0:
        return
    if params.axis is None:
        raise ValueError(f"{what}: params have {s.size} scales but no axis")
    if not -len(shape) <= params.axis < len(shape):
        raise ValueError(f"{what}: axis {params.axis} is out of range for a tensor of shape {shape}")
    n = shape[params.axis]
    if params.group_size is None:
        if s.shape != (n,):
            raise ValueError(f"{what}: {s.size} per-channel scales for {n} channels along axis {params.axis} "
                             f"of shape {shape}; expected scale shape ({n},)")
        return
    k = int(np.prod(shape)) // n if n else 0
    g = -(-k // params.group_size)
    if s.shape != (n, g):
        raise ValueError(f"{what}: per-group scales of shape {s.shape} for shape {shape} with group_size "
                         f"{params.group_size}; expected ({n}, {g})")


def _apply(x: np.ndarray, params: AffineParams, fn) -> np.ndarray:
    """fn(x_block, scale_block, zero_point_block) with scales broadcast to x's layout."""
    s, z = params.scale, params.zero_point
    if s.ndim == 0:
        return fn(x, s, z)
    axis = params.axis % x.ndim
    if params.group_size is None:
        shape = [1] * x.ndim
        shape[axis] = -1
        return fn(x, s.reshape(shape), z.reshape(shape))
    view, undo = _grouped_view(x, axis, params.group_size)
    return _ungroup(fn(view, s[:, :, None], z[:, :, None]), undo, axis)


# --------------------------------------------------------------------------------------------------
# Quantize / dequantize
# --------------------------------------------------------------------------------------------------


def _as_float(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32) if arr.dtype != np.float64 else arr
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
        raise ValueError(f"{what}: holds NaN or Inf (first at index {bad}); expected finite values")
    return arr


def quantize_tensor(x, params: AffineParams) -> np.ndarray:
    """Integer codes of ``x``: ``clamp(rint(x / scale) + zero_point, qmin, qmax)`` in ``params.fmt.dtype``.

    Parameters
    ----------
    x : array_like
        Real values (float32 or float64; float64 is divided in float64).
    params : AffineParams
        Per tensor, per channel (scale [C] along ``axis``) or per group
        (scale [O, G] along ``axis`` with ``group_size``; see the module docstring).

    Returns
    -------
    ndarray of ``params.fmt.dtype`` (int8 / uint8 / int16 / uint16), shape of ``x``.

    Examples
    --------
    >>> p = AffineParams(np.float32(0.5), 0, QuantFormat(8))
    >>> quantize_tensor(np.array([1.25, 0.75, 100.0], np.float32), p).tolist()   # 2.5 -> 2, 1.5 -> 2
    [2, 2, 127]
    """
    arr = _as_float(x, "quantize_tensor: x")
    _check_params_fit(arr.shape, params, "quantize_tensor")
    fmt = params.fmt

    def q(block, s, z):
        return np.clip(np.rint(block / s.astype(block.dtype)) + z, fmt.qmin, fmt.qmax)

    return _apply(arr, params, q).astype(fmt.dtype)


def dequantize_tensor(q, params: AffineParams) -> np.ndarray:
    """Reals of codes ``q``: ``float32(scale * (q - zero_point))``.

    The difference ``q - zero_point`` is exact (int64), then multiplied by the
    float32 scale in float32 (one rounding, as ONNX DequantizeLinear).
    """
    codes = np.asarray(q)
    if codes.dtype.kind not in "iu":
        raise ValueError(f"dequantize_tensor: q must hold integer codes, got dtype {codes.dtype}")
    _check_params_fit(codes.shape, params, "dequantize_tensor")

    def dq(block, s, z):
        return (block.astype(np.int64) - z).astype(np.float32) * s.astype(np.float32)

    return _apply(codes, params, dq).astype(np.float32)


def fake_quantize(x, params: AffineParams) -> np.ndarray:
    """``dequantize_tensor(quantize_tensor(x, params), params)``: x on the quantization grid, float32."""
    return dequantize_tensor(quantize_tensor(x, params), params)


# --------------------------------------------------------------------------------------------------
# Weight scales
# --------------------------------------------------------------------------------------------------


def _group_ranges(w: np.ndarray, kind: str, n: int | None, axis: int, allow_short_group: bool):
    """(lo, hi, params axis, group_size, expand) for each scale group of ``w``.

    ``expand`` maps per-group values back to the AffineParams' scale shape.
    """
    if kind == "per-tensor":
        return np.array(w.min()), np.array(w.max()), None, None
    moved = np.moveaxis(w, axis, 0)
    o = moved.shape[0]
    flat = moved.reshape(o, -1)
    if kind == "per-channel":
        return flat.min(axis=1), flat.max(axis=1), axis, None
    if kind == "per-channel-group":
        g = -(-o // n)
        lo = np.array([flat[i * n:(i + 1) * n].min() for i in range(g)])
        hi = np.array([flat[i * n:(i + 1) * n].max() for i in range(g)])
        return np.repeat(lo, n)[:o], np.repeat(hi, n)[:o], axis, None
    k = flat.shape[1]
    if k % n and not allow_short_group:
        raise ValueError(f"granularity per-group:{n}: the reduction axis has {k} elements, which {n} does not "
                         f"divide (a short last group is not allowed here)")
    view, _ = _grouped_view(w, axis, n)
    # the zero padding of a short last group must not widen its range: mask it out
    valid = np.zeros(view.shape[1:], dtype=bool).reshape(-1)
    valid[:k] = True
    valid = valid.reshape(view.shape[1:])
    lo = np.where(valid, view, np.inf).min(axis=2)
    hi = np.where(valid, view, -np.inf).max(axis=2)
    return lo, hi, axis, n


def weight_params(w, fmt: QuantFormat, granularity: str, axis: int = 0, method: str = "minmax", *,
                  allow_short_group: bool = True, name: str = "w") -> AffineParams:
    """Scales and zero points for weight tensor ``w`` at ``granularity``.

    Parameters
    ----------
    w : array_like
        Float weights; hwsim's layouts are conv2d [O, KH, KW, I] and fully_connected [O, K].
    fmt : QuantFormat
        The code format (bits 2..16, signed, symmetric, narrow = restricted range).
    granularity : str
        ``per-tensor``, ``per-channel``, ``per-group:N`` or ``per-channel-group:N``
        (see the module docstring).
    axis : int
        The output-channel axis (0 in hwsim's weight layouts).
    method : str
        ``minmax`` or ``mse`` (clip-ratio search per scale group, module docstring).
    allow_short_group : bool
        Whether per-group:N may leave a last group shorter than N.
    name : str
        The tensor's name, for error messages.

    Returns
    -------
    AffineParams
        scale [] (per tensor), [O] (per channel, per-channel-group) or [O, G] (per group).

    Raises
    ------
    ValueError
        NaN / Inf weights, an unknown granularity or method, an axis out of range,
        or a group size that does not divide the reduction axis when short groups are not allowed.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"method: expected one of {', '.join(WEIGHT_METHODS)}, got {method!r}")
    if not isinstance(fmt, QuantFormat):
        raise ValueError(f"fmt: expected a QuantFormat, got {type(fmt).__name__}")
    kind, n = parse_granularity(granularity)
    arr = _as_float(w, f"weights {name!r}")
    if arr.size == 0:
        raise ValueError(f"weights {name!r}: empty tensor (shape {arr.shape})")
    if kind != "per-tensor":
        if arr.ndim < 1 or not -arr.ndim <= axis < arr.ndim:
            raise ValueError(f"axis: {axis} is out of range for weights {name!r} of shape {arr.shape}")
        axis = axis % arr.ndim
    try:
        lo, hi, p_axis, group = _group_ranges(arr, kind, n, axis, allow_short_group)
    except ValueError as exc:
        raise ValueError(f"weights {name!r}: {exc}") from None
    if method == "minmax":
        return params_from_range(lo, hi, fmt, p_axis, group)
    return _mse_params(arr, lo, hi, fmt, p_axis, group, kind, n)


def _group_errors(arr, params: AffineParams, kind: str, n: int | None) -> np.ndarray:
    """Sum of squared fake-quantization errors per scale group (the shape of the group ranges)."""
    err = (arr.astype(np.float64) - fake_quantize(arr, params).astype(np.float64)) ** 2
    if kind == "per-tensor":
        return np.array(err.sum())
    moved = np.moveaxis(err, params.axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    if kind == "per-channel":
        return flat.sum(axis=1)
    if kind == "per-channel-group":
        rows = flat.sum(axis=1)
        o = rows.shape[0]
        sums = np.add.reduceat(rows, np.arange(0, o, n))
        return np.repeat(sums, n)[:o]
    view, _ = _grouped_view(err, params.axis, n)      # padding contributes 0 error
    return view.sum(axis=2)


def _mse_params(arr, lo, hi, fmt, p_axis, group, kind, n) -> AffineParams:
    best = params_from_range(lo, hi, fmt, p_axis, group)
    best_err = _group_errors(arr, best, kind, n)
    scale, zp = best.scale.copy(), best.zero_point.copy()
    for ratio in MSE_RATIOS[1:]:
        cand = params_from_range(lo * ratio, hi * ratio, fmt, p_axis, group)
        err = _group_errors(arr, cand, kind, n)
        better = err < best_err
        scale = np.where(better, cand.scale, scale)
        zp = np.where(better, cand.zero_point, zp)
        best_err = np.where(better, err, best_err)
    return AffineParams(scale, zp, fmt, p_axis, group)


# --------------------------------------------------------------------------------------------------
# Into the IR
# --------------------------------------------------------------------------------------------------


def to_ir_weights(w, quantization, fmt: QuantFormat | None = None, *, name: str = "w"):
    """Weights as the IR stores them: ``(codes, QuantParams, extra)``.

    Parameters
    ----------
    w : array_like
        Float weights (conv2d [O, KH, KW, I], fully_connected [O, K]).
    quantization : AffineParams or Codebook
        Uniform parameters (from :func:`weight_params`), or a non-uniform
        :class:`~hwsim.quant.nonuniform.Codebook` of ``w``.
    fmt : QuantFormat, optional
        For a codebook only: the integer format the target's lookup stage produces
        (its ``operands.weights``; symmetric).  The float levels are mapped onto it
        with one scale per tensor / per channel (the codebook's), ``scale = max|level| / qmax``.
    name : str
        The tensor's name, for error messages.

    Returns
    -------
    codes : ndarray
        The executed integer weights (``fmt.dtype``); for a codebook ``table[indices]``.
    quant : QuantParams
        ``scale``/``zero_point`` [] , [O] (``axis``) or [O, G] (``axis`` 0, ``group_size``).
    extra : WeightLookup or None
        For a codebook: the int levels table and the indices (goes to ``Tensor.lookup``);
        None for uniform weights.
    """
    from hwsim.quant.nonuniform import Codebook

    if isinstance(quantization, AffineParams):
        codes = quantize_tensor(_as_float(w, f"weights {name!r}"), quantization)
        qp = QuantParams(quantization.scale, quantization.zero_point, quantization.axis,
                         group_size=quantization.group_size)
        return codes, qp, None
    if isinstance(quantization, Codebook):
        if fmt is None:
            raise ValueError(f"weights {name!r}: a codebook needs fmt, the integer format of the lookup stage")
        return _codebook_to_ir(np.shape(w), quantization, fmt, name)
    raise ValueError(f"quantization: expected AffineParams or a Codebook, got {type(quantization).__name__}")


def _codebook_to_ir(shape, book, fmt: QuantFormat, name: str):
    if tuple(book.indices.shape) != tuple(shape):
        raise ValueError(f"weights {name!r}: codebook indices have shape {book.indices.shape}, weights {shape}")
    levels = np.asarray(book.levels, dtype=np.float64)
    qmax = min(fmt.qmax, -fmt.qmin) if fmt.signed else fmt.qmax
    if not fmt.signed:
        raise ValueError(f"weights {name!r}: a codebook needs a signed lookup format, got unsigned")
    peak = np.abs(levels).max(axis=-1)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    table = np.clip(np.rint(levels / scale.astype(np.float64)[..., None] if levels.ndim == 2
                            else levels / float(scale)), fmt.qmin, fmt.qmax).astype(fmt.dtype)
    idx = book.indices
    if levels.ndim == 1:
        codes = table[idx]
        qp = QuantParams(scale.reshape(()), np.zeros((), np.int64))
    else:
        axis = book.axis % len(shape)
        moved = np.moveaxis(idx, axis, 0)
        codes = np.moveaxis(np.take_along_axis(table, moved.reshape(moved.shape[0], -1), axis=1)
                            .reshape(moved.shape), 0, axis)
        qp = QuantParams(scale, np.zeros(scale.shape, np.int64), axis)
    index_bits = max(1, math.ceil(math.log2(levels.shape[-1])))
    return (np.ascontiguousarray(codes, dtype=fmt.dtype), qp,
            WeightLookup(table=table, indices=np.ascontiguousarray(idx), index_bits=index_bits,
                         axis=None if levels.ndim == 1 else book.axis % len(shape)))


def to_ir_bias(b, input_scale, weight_quant: QuantParams, *, bits: int = 32, name: str = "b"):
    """A layer's float bias as the IR stores it: ``(data, QuantParams or None)``.

    Per-tensor or per-channel weights: ``int32(sat_bits(rne(b / (s_x * s_w[c]))))`` with scale
    ``s_x * s_w`` (computed in float64, stored float32), zero point 0 -- as the engines store it.
    Per-group weights (``weight_quant.group_size``): there is no single integer bias scale; the bias
    stays float32 (data float32, quant None) and is added in the float32 group combine
    (:mod:`hwsim.sim.ops.grouped`).

    Parameters
    ----------
    b : array_like [O]
    input_scale : float
        The layer input's (per-tensor) scale.
    weight_quant : QuantParams
        The weights' IR quantisation (from :func:`to_ir_weights`).
    bits : int
        The target's bias width (``operands.bias.bits``, 8..32 here); values saturate to it.
    """
    arr = _as_float(b, f"bias {name!r}").astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"bias {name!r}: expected a 1-D array [O], got shape {arr.shape}")
    if weight_quant.group_size is not None:
        if weight_quant.scale.shape[0] != arr.shape[0]:
            raise ValueError(f"bias {name!r}: {arr.shape[0]} values for {weight_quant.scale.shape[0]} output channels")
        return arr.astype(np.float32), None
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 8 <= bits <= 32:
        raise ValueError(f"bits: expected an integer in 8..32, got {bits!r}")
    sw = np.asarray(weight_quant.scale, np.float64).reshape(-1)
    if sw.size not in (1, arr.shape[0]):
        raise ValueError(f"bias {name!r}: {arr.shape[0]} values for {sw.size} weight scales")
    scale = np.float64(np.float32(input_scale)) * sw
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    data = np.clip(np.rint(arr / np.broadcast_to(scale, arr.shape)), lo, hi).astype(np.int32)
    stored = scale.astype(np.float32)
    return data, QuantParams(stored, np.zeros(stored.shape, np.int64), 0 if stored.size > 1 else None)
