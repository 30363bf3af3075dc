"""NCHW (ONNX) <-> NHWC (IR) bookkeeping for shapes, axes and constants.

Every rank-4 tensor of an ONNX model is NCHW; inside the IR it is NHWC.  The
same permutation turns a conv weight [O, I, KH, KW] into the IR's
[O, KH, KW, I], so one rule covers activations and weights.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TO_NHWC", "TO_NCHW", "ir_shape", "model_shape", "ir_axis", "ir_array", "order_preserved"]

TO_NHWC = (0, 2, 3, 1)   # IR dim i is model dim TO_NHWC[i]
TO_NCHW = (0, 3, 1, 2)   # model dim i is IR dim TO_NCHW[i]


def ir_shape(shape: tuple) -> tuple:
    """The IR shape of a tensor whose model (ONNX) shape is ``shape``."""
    shape = tuple(shape)
    return tuple(shape[i] for i in TO_NHWC) if len(shape) == 4 else shape


def model_shape(shape: tuple) -> tuple:
    """The model (ONNX) shape of a tensor whose IR shape is ``shape``."""
    shape = tuple(shape)
    return tuple(shape[i] for i in TO_NCHW) if len(shape) == 4 else shape


def ir_axis(axis: int, rank: int) -> int:
    """The IR axis of model axis ``axis`` (negative allowed) of a rank-``rank`` tensor."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    return TO_NHWC.index(axis) if rank == 4 else axis


def ir_array(value: np.ndarray) -> np.ndarray:
    """A constant in IR layout (rank 4 transposed to NHWC / [O, KH, KW, I]), C-contiguous."""
    value = np.asarray(value)
    return np.ascontiguousarray(value.transpose(TO_NHWC)) if value.ndim == 4 else value


def order_preserved(nchw: tuple) -> bool:
    """True when NCHW and NHWC hold the elements of this model shape in the same order.

    That is the case when C == 1 or H * W == 1 (per batch item the transpose
    swaps a C block with an H*W block).  Unknown dimensions count as "not preserved".
    """
    _, c, h, w = nchw
    if c == 1:
        return True
    return h is not None and w is not None and h * w == 1
