"""A slow pure-Python oracle of per-group weight execution (hwsim/sim/ops/grouped.py's docstring).

Written from the stated semantics, independently of the executor: taps are enumerated with Python
loops (no im2col), each group's dot product is accumulated by ``hwsim.oracle.kernels.accumulate_output``
(pure Python ints, never imports the C extension), the float32 combine uses numpy float32 *scalars* one
operation at a time, and the output rounding uses exact rationals (``hwsim.oracle.primitives.round_rational``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from hwsim.oracle.kernels import accumulate_output
from hwsim.oracle.primitives import round_rational

F32 = np.float32


def _taps_conv(x, n, oy, ox, kh, kw, c_in, stride, dilation, padding, zx):
    """x values of output (n, oy, ox) in tap order (ky, kx, ci); padding taps hold zx."""
    top, left = padding[0], padding[1]
    h, w = x.shape[1], x.shape[2]
    vals = []
    for ky in range(kh):
        for kx in range(kw):
            iy = oy * stride[0] + ky * dilation[0] - top
            ix = ox * stride[1] + kx * dilation[1] - left
            for ci in range(c_in):
                vals.append(int(x[n, iy, ix, ci]) if 0 <= iy < h and 0 <= ix < w else zx)
    return vals


def _quantize(y: F32, sy: F32, zy: int, rounding, lo: int, hi: int) -> int:
    v = F32(y) / F32(sy)                                    # float32 division of two float32 scalars
    q = round_rational(Fraction(float(v)), rounding) + zy
    return min(max(q, lo), hi)


def _bound(real, sy, zy, rounding, lo, hi):
    return _quantize(F32(real), sy, zy, rounding, lo, hi)


def grouped_layer(x, w, *, zx, sx, sw, zw, group_size, bias, sy, zy, accum, rounding, out_dtype,
                  geometry=None, activation=None):
    """Output of one per-group conv2d (geometry given; NHWC x, w [O, KH, KW, I]) or fully_connected (x [N, K])."""
    info = np.iinfo(out_dtype)
    lo, hi = int(info.min), int(info.max)
    if activation is not None:
        a_lo, a_hi = activation
        lo = lo if not np.isfinite(a_lo) else _bound(a_lo, sy, zy, rounding, lo, hi)
        hi = hi if not np.isfinite(a_hi) else _bound(a_hi, sy, zy, rounding, lo, hi)
    o = w.shape[0]
    w_rows = [[int(v) for v in w[c].reshape(-1)] for c in range(o)]
    k = len(w_rows[0])
    starts = list(range(0, k, group_size))
    if geometry is None:
        positions = [(i,) for i in range(x.shape[0])]
        patch = {p: [int(v) for v in x[p[0]].reshape(-1)] for p in positions}
        out_shape = (x.shape[0], o)
    else:
        kh, kw = w.shape[1], w.shape[2]
        s, d, pad = geometry["stride"], geometry["dilation"], geometry["padding"]
        oh = (x.shape[1] + pad[0] + pad[2] - d[0] * (kh - 1) - 1) // s[0] + 1
        ow = (x.shape[2] + pad[1] + pad[3] - d[1] * (kw - 1) - 1) // s[1] + 1
        positions = [(n, i, j) for n in range(x.shape[0]) for i in range(oh) for j in range(ow)]
        patch = {p: _taps_conv(x, *p, kh, kw, x.shape[3], s, d, pad, zx) for p in positions}
        out_shape = (x.shape[0], oh, ow, o)
    out = np.zeros(out_shape, dtype=out_dtype)
    for p in positions:
        xs = patch[p]
        for c in range(o):
            y = F32(0.0)
            for g, start in enumerate(starts):
                stop = min(start + group_size, k)
                acc = accumulate_output(zip(xs[start:stop], w_rows[c][start:stop]), zx, int(zw[c][g]), 0,
                                        accum).acc
                m = F32(F32(sx) * F32(sw[c][g]))
                y = F32(y + F32(F32(acc) * m))
            if bias is not None:
                y = F32(y + F32(bias[c]))
            out[p + (c,)] = _quantize(y, sy, zy, rounding, lo, hi)
    return out
