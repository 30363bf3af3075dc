"""AdaRound (Nagel et al., ICML 2020, arXiv:2004.10568; SEMANTICS.md section 5), in numpy, layer by layer.

Nearest rounding of each weight is not what minimises a layer's output error.
AdaRound learns, per weight, whether to round down or up: with w_floor =
floor(w / s) and a continuous variable V,

    W~(V) = s * (clip(w_floor + h(V) + zp, qmin, qmax) - zp),
    h(V)  = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1),   zeta = 1.1, gamma = -0.1,

and minimises, over a sample of the layer's calibration inputs,

    mean (f(W x + b) - f(W~ x~ + b~))^2  +  lambda * mean(1 - |2 h(V) - 1|^beta)   (lambda: :data:`LAMBDA`)

(f the layer's fused activation, x its float input, x~ its input as the target
computes it, so earlier layers' errors are compensated: "asymmetric"
reconstruction).  The regulariser pushes h to 0 or 1; beta anneals from 20 to 2
(cosine) after a warm start of 20 % of the iterations without it.  Adam on V,
``iters`` steps (bounded; default :data:`ITERS`), V initialised so that
h(V) = w / s - w_floor (the soft rounding starts at the exact value).  The
final codes are w_floor + 1[h(V) >= 0.5] (= 1[V >= 0]).

The codes are kept only if their reconstruction error (the first term, hard
rounding) is not larger than nearest rounding's on the same sample, so AdaRound
never makes a layer's objective worse.  Per-group weights take their group's
scale per element.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Node

__all__ = ["adaround_graph", "adaround_layer", "AdaRoundResult", "ITERS", "ZETA", "GAMMA"]

ZETA, GAMMA = 1.1, -0.1
ITERS = 200
#: weight of the rounding regulariser.  Here the reconstruction term is a mean per output element and the
#: regulariser a mean per weight; on those scales the paper's lambda = 0.01 (a sum over weights against a
#: per-sample sum over outputs) is far too weak to make h binary before the end, and the hard rounding then
#: loses to nearest rounding.  1.0 was chosen on small correlated layers (tests/quant/test_adaround.py):
#: learned rounding reaches 0.25-0.4 of nearest rounding's error there, with 0.01 it mostly changes nothing.
LAMBDA = 1.0
WARM_START = 0.2
BETA = (20.0, 2.0)
LR = 0.05
#: patch rows sampled per layer (seeded): bounds AdaRound's cost on large feature maps
SAMPLE_ROWS = 1024


class AdaRoundResult:
    """One layer's outcome: the codes and the reconstruction errors of nearest and learned rounding."""

    def __init__(self, codes, loss_nearest: float, loss_adaround: float, kept: bool) -> None:
        self.codes, self.loss_nearest, self.loss_adaround, self.kept = codes, loss_nearest, loss_adaround, kept


def _h(v: np.ndarray) -> np.ndarray:
    return np.clip(1.0 / (1.0 + np.exp(-v)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _activation(act, y):
    if act is None:
        return y, np.ones_like(y, dtype=bool)
    lo, hi = act
    return np.clip(y, lo, hi), (y > lo) & (y < hi)


def adaround_layer(w: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int,
                   x: np.ndarray, x_q: np.ndarray, bias: np.ndarray, bias_q: np.ndarray, activation=None, *,
                   iters: int = ITERS) -> AdaRoundResult:
    """AdaRound of one linear map y = f(x @ w.T + b).

    Parameters
    ----------
    w : [O, K] float weights; scale, zero_point : [O], scalars, or [O, K] (one per weight: per-group
        quantization) of the weight quantization.
    qmin, qmax : the weight code range.
    x, x_q : [M, K] the float and the target's inputs (rows of the same positions).
    bias, bias_q : [O] float bias and the quantized layer's real bias.
    activation : None or (lo, hi), the fused activation f.

    Returns
    -------
    AdaRoundResult
        ``codes`` [O, K] int64, within floor/ceil of w / s (plus the zero point, clipped to the code range).
    """
    w = np.asarray(w, np.float64)
    o = w.shape[0]
    s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1, 1) if np.ndim(scale) < 2 else scale, w.shape)
    z = np.broadcast_to(np.asarray(zero_point, np.float64).reshape(-1, 1) if np.ndim(zero_point) < 2 else zero_point,
                        w.shape)
    r = _adaround_groups(w[None], s[None], z[None], qmin, qmax,
                         np.asarray(x, np.float64)[None], np.asarray(x_q, np.float64)[None],
                         np.asarray(bias, np.float64)[None], np.asarray(bias_q, np.float64)[None], activation, iters)
    return AdaRoundResult(r.codes[0], r.loss_nearest, r.loss_adaround, r.kept)


def _adaround_groups(w, scale, zero_point, qmin, qmax, x, x_q, bias, bias_q, activation, iters) -> AdaRoundResult:
    """AdaRound of G independent groups at once (a grouped / depthwise convolution): w, scale and
    zero_point [G, O, K] (one per weight), bias / bias_q [G, O], x / x_q [G, M, K]; losses summed over
    the groups, and the learned codes kept (or not) group by group."""
    s, zp = scale, zero_point
    target, _ = _activation(activation, x @ w.transpose(0, 2, 1) + bias[:, None, :])
    # the optimisation's matrix products in float32 (half the time of float64; the loss is a mean of
    # squares, far from float32's resolution); rounding decisions and reported losses stay float64
    x_q32, target32, bias_q32 = x_q.astype(np.float32), target.astype(np.float32), bias_q.astype(np.float32)
    w_floor = np.floor(w / s)
    rest = w / s - w_floor

    def codes_of(h):
        return np.clip(w_floor + h + zp, qmin, qmax)

    def recon(h):
        y, _ = _activation(activation, x_q @ (s * (codes_of(h) - zp)).transpose(0, 2, 1) + bias_q[:, None, :])
        return np.mean((y - target) ** 2, axis=(1, 2))

    nearest = np.rint(w / s)           # numpy rint: half to even, as the quantizers round
    loss_near = recon(nearest - w_floor)
    p = np.clip((rest - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6)
    v = np.log(p / (1 - p))
    m, u = np.zeros_like(v), np.zeros_like(v)
    b1, b2, eps = 0.9, 0.999, 1e-8
    n_out = target[0].size
    warm = int(WARM_START * iters)
    for it in range(iters):
        sig = 1.0 / (1.0 + np.exp(-v))
        soft = sig * (ZETA - GAMMA) + GAMMA
        h = np.clip(soft, 0.0, 1.0)
        raw = w_floor + h + zp
        inside_codes = (raw >= qmin) & (raw <= qmax)
        wq = s * (np.clip(raw, qmin, qmax) - zp)
        y, active = _activation(activation, x_q @ wq.transpose(0, 2, 1) + bias_q[:, None, :])
        dy = 2.0 * (y - target) * active / n_out
        dh = dy.transpose(0, 2, 1) @ x_q * s * inside_codes
        if it >= warm:
            frac = (it - warm) / max(1, iters - warm)
            beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + np.cos(np.pi * frac))
            d = 2 * h - 1
            dh = dh + LAMBDA / h[0].size * (-beta * np.abs(d) ** (beta - 1) * np.sign(d) * 2)
        dv = dh * sig * (1 - sig) * (ZETA - GAMMA) * ((soft > 0) & (soft < 1))
        m = b1 * m + (1 - b1) * dv
        u = b2 * u + (1 - b2) * dv * dv
        v = v - LR * (m / (1 - b1 ** (it + 1))) / (np.sqrt(u / (1 - b2 ** (it + 1))) + eps)
    hard = (v >= 0).astype(np.float64)
    loss_ada = recon(hard)
    kept = loss_ada <= loss_near
    codes = np.where(kept[:, None, None], codes_of(hard), np.clip(nearest + zp, qmin, qmax))
    best = np.where(kept, loss_ada, loss_near)
    return AdaRoundResult(codes.astype(np.int64), float(loss_near.sum()), float(best.sum()), bool(kept.all()))


def _rows(node: Node, x: np.ndarray, q: Graph):
    """The layer's input as rows: fully_connected [N, K]; conv2d patches [rows, KH*KW*Cg] per group."""
    from hwsim.sim.float_ref import im2col

    if node.op == "fully_connected":
        return x.reshape(x.shape[0], -1)
    a = node.attrs
    w_shape = q.tensors[node.inputs[1]].shape
    cols = im2col(np.asarray(x, np.float32), (w_shape[1], w_shape[2]), tuple(a.get("stride", (1, 1))),
                  tuple(a.get("dilation", (1, 1))), tuple(a.get("padding", (0, 0, 0, 0))))
    return cols.reshape(-1, w_shape[1], w_shape[2], cols.shape[-1])


def adaround_graph(q: Graph, profile, calib, *, iters: int = ITERS, seed: int = 0, progress: bool = False) -> dict:
    """AdaRound every integer conv2d / fully_connected layer of ``q`` in place (graph order).

    Returns
    -------
    dict
        node name -> :class:`AdaRoundResult`.
    """
    from hwsim.quant.layer_data import dequantized_bias, float_name, layer_inputs, weighted_layers
    from hwsim.quant.quantize import _Progress
    from hwsim.sim.executor import clear_cache

    f = q.float_source
    layers = weighted_layers(q)
    results = {}
    rng = np.random.default_rng(seed)
    with _Progress(progress, "adaround", total=len(layers)) as bar:
        for node in layers:
            fnode = next(n for n in f.nodes if n.outputs[0] == float_name(node.outputs[0]))
            w_t = q.tensors[node.inputs[1]]
            w = f.tensors[fnode.inputs[1]].data.astype(np.float64)
            b = (f.tensors[fnode.inputs[2]].data.astype(np.float64) if len(fnode.inputs) > 2 and fnode.inputs[2]
                 else np.zeros(w.shape[0]))
            b_q = dequantized_bias(q, node, w.shape[0])
            xs, xqs = [], []
            for x_f, x_q in layer_inputs(q, node, calib, profile):
                xs.append(_rows(node, x_f, q))
                xqs.append(_rows(node, x_q, q))
            rows, rows_q = np.concatenate(xs), np.concatenate(xqs)
            pick = rng.choice(rows.shape[0], size=min(SAMPLE_ROWS, rows.shape[0]), replace=False)
            pick.sort()
            rows, rows_q = rows[pick], rows_q[pick]
            qp = w_t.quant
            if qp.group_size is not None:          # per group: the scale of element k is column k // N
                cols = np.arange(w[0].size) // qp.group_size
                scale = qp.scale.astype(np.float64)[:, cols].reshape(w.shape)
                zp = qp.zero_point.astype(np.float64)[:, cols].reshape(w.shape)
            else:
                shape = (-1,) + (1,) * (w.ndim - 1)
                scale = np.broadcast_to(qp.scale.astype(np.float64).reshape(shape), w.shape)
                zp = np.broadcast_to(qp.zero_point.astype(np.float64).reshape(shape), w.shape)
            qmin, qmax = _code_range(profile, q, node)
            groups = int(node.attrs.get("groups", 1)) if node.op == "conv2d" else 1
            act = node.attrs.get("activation")
            og = w.shape[0] // groups
            if node.op == "conv2d":
                cg = w.shape[3]
                xs_g = np.stack([rows[..., g * cg:(g + 1) * cg].reshape(rows.shape[0], -1) for g in range(groups)])
                xq_g = np.stack([rows_q[..., g * cg:(g + 1) * cg].reshape(rows.shape[0], -1) for g in range(groups)])
            else:
                xs_g, xq_g = rows[None].astype(np.float64), rows_q[None].astype(np.float64)
            r = _adaround_groups(w.reshape(groups, og, -1), scale.reshape(groups, og, -1),
                                 zp.reshape(groups, og, -1), qmin, qmax, xs_g.astype(np.float64),
                                 xq_g.astype(np.float64), b.reshape(groups, og), b_q.reshape(groups, og), act, iters)
            codes = r.codes.reshape(w.shape)
            w_t.data = codes.astype(w_t.data.dtype)
            clear_cache(q)
            results[node.name] = r
            bar.advance()
    return results


def _code_range(profile, q: Graph, node: Node) -> tuple:
    """The weight code range the layer was quantized to (restricted int8: [-127, 127])."""
    from hwsim.quant.quantize import quant_format
    from hwsim.quant.rewrite import weight_op_key

    x_t = q.tensors[node.inputs[0]]
    fmt = quant_format(profile.for_op(weight_op_key(q, node), 16 if np.dtype(x_t.dtype).itemsize == 2 else None)
                       .weights)
    return fmt.qmin, fmt.qmax
