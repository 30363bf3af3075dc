"""From a target profile and a layer's quantisation parameters to kernel specs.

A quantized layer is described by real scales and zero points (as stored in
an ONNX or TFLite model); a target turns them into integer arithmetic in its
own way: TFLite derives a Q31 multiplier from a double, onnxruntime a float32
scale in a fixed order, a small NPU needs a power-of-two ratio.  This module
is that derivation, once, for every requantisation scheme::

    spec = layer_specs("tflite-reference", "conv2d", input_scale=0.02,
                       weight_scale=w_scales, output_scale=0.05, output_zero_point=-3)
    y = hwsim.kernels.conv2d(x, w, x_zero_point=zx, bias=b, accum=spec.accum, requant=spec.requant)

Scale derivations (SEMANTICS.md sections 1.3, 10.1, 10.2):

* fixed-point schemes: ``d = (double)s_in * (double)s_w[c] / (double)s_out``
  from float32-stored scales, then TFLite's QuantizeMultiplier (capped at
  shift 30 for the single-rounding schemes);
* ``float32``: ``fl32(fl32(s_in * s_w[c]) / s_out)`` (onnxruntime MLAS, XNNPACK);
* ``float64_round``: the double ``d`` itself;
* ``shift_only``: ``s_in * s_w[c] / s_out`` must be an exact power of two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.numerics.multiplier import ort_requant_scale, quantize_multiplier, tflite_real_multiplier
from hwsim.numerics.requant_params import RequantParams
from hwsim.types import AccumSpec, RequantScheme

__all__ = ["LayerSpecs", "SplitRequant", "layer_specs"]

_SINGLE_ROUNDING_CAP = {RequantScheme.SINGLE_ROUNDING, RequantScheme.NEON_SINGLE}


@dataclass(frozen=True)
class SplitRequant:
    """Two requantisation stages over one layer's channels: ``head`` for
    channels ``[0, first_tail_channel)``, ``tail`` for the rest (LiteRT's
    optimised depthwise kernels, SEMANTICS.md 10.2).  Each holds only its own
    channels' parameters."""

    head: RequantParams | None
    tail: RequantParams
    first_tail_channel: int


@dataclass(frozen=True)
class LayerSpecs:
    """What a target computes for one layer: pass ``accum`` and ``requant`` to
    :func:`hwsim.kernels.gemm` / :func:`hwsim.kernels.conv2d`."""

    accum: AccumSpec
    requant: RequantParams | SplitRequant
    semantics: object  # hwsim.targets.OpSemantics


def _scales(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: expected positive finite scale(s), got {value!r}")
    return arr


def _stage(scheme: RequantScheme, rounding, ratio_f64: np.ndarray, xs, ws, ys, common: dict) -> RequantParams:
    if scheme is RequantScheme.FLOAT32:
        return RequantParams(scheme, scale=ort_requant_scale(xs, ws, ys), rounding=rounding, **common)
    if scheme is RequantScheme.FLOAT64_ROUND:
        return RequantParams(scheme, scale=ratio_f64, rounding=rounding, **common)
    if scheme is RequantScheme.SHIFT_ONLY:
        shifts = []
        for c, r in enumerate(ratio_f64):
            mantissa, exponent = math.frexp(float(r))
            if mantissa != 0.5:
                raise ValueError(
                    f"weight_scale: shift_only requantisation needs input_scale * weight_scale / output_scale to be "
                    f"a power of two; channel {c} gives {r!r}"
                )
            shifts.append(exponent - 1)
        return RequantParams(scheme, shift=np.array(shifts), rounding=rounding, **common)
    pairs = [quantize_multiplier(float(d), single_rounding=scheme in _SINGLE_ROUNDING_CAP) for d in ratio_f64]
    return RequantParams(
        scheme, multiplier=np.array([m for m, _ in pairs]), shift=np.array([s for _, s in pairs]),
        rounding=rounding, **common,
    )


def layer_specs(
    target,
    op: str,
    *,
    input_scale: float,
    weight_scale,
    output_scale: float,
    output_zero_point: int = 0,
    output_min: int | None = None,
    output_max: int | None = None,
    activation_bits: int | None = None,
    n_channels: int | None = None,
) -> LayerSpecs:
    """The accumulator and requantisation specs ``target`` uses for one layer.

    Parameters
    ----------
    target : str, path or TargetProfile
        A built-in name, a YAML file, or a loaded profile.
    op : str
        ``conv2d``, ``depthwise_conv2d``, ``fully_connected`` or ``matmul``.
    input_scale, output_scale : float
        Per-tensor scales (stored as float32 in models; rounded to float32 here too).
    weight_scale : float or sequence
        Per tensor, or one per output channel.
    output_zero_point : int
    output_min, output_max : int, optional
        Fused activation clamp in the quantized domain; intersected with the
        target's output format.
    activation_bits : int, optional
        8 (default) or 16 for the 16x8 variant.
    n_channels : int, optional
        Number of output channels; required when the target splits channels
        (a requantisation ``tail``) and the weight scale is per tensor.
    """
    from hwsim.targets import TargetProfile, load_target

    profile = target if isinstance(target, TargetProfile) else load_target(target)
    sem = profile.for_op(op, activation_bits=activation_bits)
    xs = _scales(input_scale, "input_scale")
    ys = _scales(output_scale, "output_scale")
    if xs.size != 1 or ys.size != 1:
        raise ValueError("input_scale / output_scale: expected one scale per tensor")
    ws = _scales(weight_scale, "weight_scale")
    out = sem.output
    lo, hi = out.min, out.max
    if output_min is not None:
        lo = max(lo, int(output_min))
    if output_max is not None:
        hi = min(hi, int(output_max))
    if lo > hi:
        raise ValueError(f"output_min/output_max: [{output_min}, {output_max}] leaves nothing of [{out.min}, {out.max}]")
    if not out.min <= int(output_zero_point) <= out.max:
        raise ValueError(f"output_zero_point: expected a value in [{out.min}, {out.max}], got {output_zero_point}")
    common = dict(
        zero_point=int(output_zero_point), out_bits=out.bits, out_signed=out.signed,
        out_min=lo, out_max=hi, out_overflow=sem.output_overflow,
    )
    ratio = tflite_real_multiplier(xs[0], ws, ys[0])
    head = _stage(sem.requant.scheme, sem.requant.rounding, ratio, xs[0], ws, ys[0], common)
    tail = sem.requant_tail
    if tail is None:
        return LayerSpecs(sem.accum, head, sem)

    channels = n_channels if n_channels is not None else (ws.size if ws.size > 1 else None)
    if channels is None:
        raise ValueError(f"n_channels: {profile.name} splits {op} channels; give n_channels for a per-tensor weight scale")
    if ws.size not in (1, channels):
        raise ValueError(f"weight_scale: {ws.size} scales for {channels} channels")
    ws_full = np.broadcast_to(ws, (channels,)) if ws.size == 1 else ws
    ratio_full = tflite_real_multiplier(xs[0], ws_full, ys[0])
    first = tail.first_channel(channels)
    tail_stage = _stage(tail.requant.scheme, tail.requant.rounding, ratio_full[first:], xs[0], ws_full[first:], ys[0], common) \
        if first < channels else None
    head_stage = _stage(sem.requant.scheme, sem.requant.rounding, ratio_full[:first], xs[0], ws_full[:first], ys[0],
                        common) if first > 0 else None
    if tail_stage is None:
        return LayerSpecs(sem.accum, head_stage, sem)
    return LayerSpecs(sem.accum, SplitRequant(head_stage, tail_stage, first), sem)
