"""What every op module shares: the preparation context, run-time context and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

_F32 = np.float32


class SimulationError(ValueError):
    """A graph, its parameters or its inputs cannot be simulated on the target; the message says why."""


@dataclass
class PrepareContext:
    """Read-only view of the graph and target while a plan is built."""

    graph: Graph
    profile: object                      # hwsim.targets.TargetProfile

    def tensor(self, name: str) -> Tensor:
        return self.graph.tensor(name)

    def fail(self, node: Node, problem: str) -> SimulationError:
        return SimulationError(f"node {node.name!r} ({node.source_op or node.op}): {problem}")


@dataclass
class RunContext:
    """Per-call state: thread count and, with ``trace``, what is recorded."""

    n_threads: int = 1
    trace: bool = False
    accumulators: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)


def per_tensor(qp: QuantParams | None, what: str, node: Node, ctx: PrepareContext) -> tuple[float, int]:
    """(scale as float32, zero point) of a per-tensor quantized tensor."""
    if qp is None:
        raise ctx.fail(node, f"{what} is not quantized; expected per-tensor scale and zero point")
    if qp.scale.size != 1:
        raise ctx.fail(node, f"{what} is quantized per channel ({qp.scale.size} scales); expected per tensor")
    return _F32(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])


def activation_bounds(activation, scale: float, zero_point: int, rounding, dtype) -> tuple[int, int]:
    """The fused real-domain clamp (lo, hi) as quantized bounds, the way engines compute them.

    ``zero_point + round(fl32(bound / scale))`` with the target's quantize
    rounding (TFLite CalculateActivationRangeQuantized: std::round, half away;
    onnxruntime: QuantizeLinear's ties to even), clamped to ``dtype``.  An
    infinite bound leaves that side at the dtype's limit.
    """
    from hwsim.numerics.arith import round_float

    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if activation is None:
        return lo, hi
    out = []
    for bound, default in zip(activation, (lo, hi)):
        if bound is None or not np.isfinite(bound):
            out.append(default)
            continue
        v = float(np.clip(_F32(_F32(bound) / _F32(scale)), -2.0**40, 2.0**40))
        q = int(np.asarray(round_float(np.array([v], dtype=np.float64), rounding)).reshape(-1)[0]) + zero_point
        out.append(min(max(q, lo), hi))
    return out[0], out[1]


def rebias_needed(dtype: np.dtype, fmt) -> bool:
    """True when an 8-bit tensor's signedness differs from the target operand's.

    Engines that only have one signedness re-bias by 128 on entry (onnxruntime
    x86 turns s8 activations into u8 with ``x + 128`` and ``zp + 128``): exact,
    so hwsim does the same.
    """
    dt = np.dtype(dtype)
    return dt.itemsize * 8 == fmt.bits == 8 and (dt.kind == "i") != fmt.signed


def flip8(x: np.ndarray) -> np.ndarray:
    """int8 <-> uint8 with a bias of 128 (x + 128 / x - 128), exact, by flipping the top bit."""
    target = np.uint8 if x.dtype == np.int8 else np.int8
    return (x.view(np.uint8) ^ np.uint8(0x80)).view(target)
