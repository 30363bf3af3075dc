"""The committed TFLite test models (tests/data/tflite, made by tools/gen_tflite_models.py) and what each holds.

EXPECTED is written by hand from the generator's model definitions and TFLite's padding rule, not from the
importer: per model, the IR nodes in order as (TFLite op, IR op, attrs that must match).  SAME padding is
worked out in the comments: out = ceil(in / stride), total = (out - 1) * stride + k - in, the odd pixel after.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "tflite"

INF = float("inf")
RELU, RELU6 = (0.0, INF), (0.0, 6.0)

_CONV_RELU6 = [
    # 10x10, k3 s1 SAME: out 10, total 9 + 3 - 10 = 2 -> (1, 1, 1, 1)
    ("CONV_2D", "conv2d", dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1, activation=RELU6,
                               w_shape=(8, 3, 3, 3))),
    # 10x10, k3 s2 VALID: out (10 - 3) // 2 + 1 = 4
    ("CONV_2D", "conv2d", dict(stride=(2, 2), padding=(0, 0, 0, 0), groups=1, activation=None, w_shape=(6, 3, 3, 8))),
]
_DEPTHWISE = [
    # 9x9x12, depth multiplier 2 -> 24 channels, k3 s1 SAME -> (1, 1, 1, 1)
    ("DEPTHWISE_CONV_2D", "conv2d", dict(stride=(1, 1), padding=(1, 1, 1, 1), groups=12, activation=None,
                                         w_shape=(24, 3, 3, 1))),
    ("CONV_2D", "conv2d", dict(stride=(1, 1), padding=(0, 0, 0, 0), groups=1, w_shape=(20, 1, 1, 24))),
    # 9x9x20, k3 s2 SAME: out 5, total 4 * 2 + 3 - 9 = 2 -> (1, 1, 1, 1)
    ("DEPTHWISE_CONV_2D", "conv2d", dict(stride=(2, 2), padding=(1, 1, 1, 1), groups=20, activation=RELU,
                                         w_shape=(20, 3, 3, 1))),
]
_DILATED = [
    # 11x11, k3 dilation 2 (effective 5) s1 SAME: out 11, total 10 + 5 - 11 = 4 -> (2, 2, 2, 2)
    ("CONV_2D", "conv2d", dict(stride=(1, 1), dilation=(2, 2), padding=(2, 2, 2, 2), groups=1, activation=None,
                               w_shape=(6, 3, 3, 4))),
    # 11x11, effective 5, VALID: out 7
    ("DEPTHWISE_CONV_2D", "conv2d", dict(stride=(1, 1), dilation=(2, 2), padding=(0, 0, 0, 0), groups=6,
                                         activation=RELU6, w_shape=(6, 3, 3, 1))),
]
_FC = [("FULLY_CONNECTED", "fully_connected", dict(activation=None, w_shape=(10, 40)))]
_SMALL_CNN = [
    # 12x12, k3 s2 SAME: out 6, total 5 * 2 + 3 - 12 = 1 -> top/left 0, bottom/right 1
    ("CONV_2D", "conv2d", dict(stride=(2, 2), padding=(0, 0, 1, 1), groups=1, activation=RELU, w_shape=(12, 3, 3, 3))),
    ("DEPTHWISE_CONV_2D", "conv2d", dict(stride=(1, 1), padding=(1, 1, 1, 1), groups=12, activation=RELU6,
                                         w_shape=(12, 3, 3, 1))),
    ("ADD", "add", dict(activation=None)),
    ("MEAN", "mean", dict(axes=(1, 2), keepdims=False)),
    ("FULLY_CONNECTED", "fully_connected", dict(activation=None, w_shape=(5, 12))),
    ("SOFTMAX", "softmax", dict(axis=1, beta=1.0)),
]
_POOLS = [
    # 9x9, k3 s2 SAME: out 5, total 4 * 2 + 3 - 9 = 2 -> (1, 1, 1, 1)
    ("AVERAGE_POOL_2D", "avg_pool2d", dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1),
                                           count_include_pad=False, activation=None)),
    ("MAX_POOL_2D", "max_pool2d", dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0), activation=None)),
]
_CONCAT_PAD = [
    ("CONV_2D", "conv2d", dict(padding=(0, 0, 0, 0), activation=None, w_shape=(6, 1, 1, 4))),
    ("CONV_2D", "conv2d", dict(padding=(1, 1, 1, 1), activation=RELU, w_shape=(5, 3, 3, 4))),
    ("CONCATENATION", "concat", dict(axis=3, n_inputs=3)),
    ("PAD", "pad", dict(pads=((0, 0), (1, 2), (2, 1), (0, 0)), constant=0.0)),
]
_ELEMENTWISE = [
    ("MUL", "mul", dict(activation=None)),
    ("SUB", "sub", dict(activation=RELU)),
    ("MUL", "mul", dict(activation=None)),
]
_CONV16X8 = [
    ("CONV_2D", "conv2d", dict(padding=(1, 1, 1, 1), activation=RELU, w_shape=(8, 3, 3, 4))),
    ("MEAN", "mean", dict(axes=(1, 2), keepdims=False)),
    ("FULLY_CONNECTED", "fully_connected", dict(activation=None, w_shape=(4, 8))),
]

# model -> (nodes, inputs [(shape, dtype)], outputs [(shape, dtype)])
EXPECTED = {
    "conv_relu6": (_CONV_RELU6, [((1, 10, 10, 3), "int8")], [((1, 4, 4, 6), "int8")]),
    "depthwise": (_DEPTHWISE, [((1, 9, 9, 12), "int8")], [((1, 5, 5, 20), "int8")]),
    "dilated": (_DILATED, [((1, 11, 11, 4), "int8")], [((1, 7, 7, 6), "int8")]),
    "fc_dynamic_batch": (_FC, [((None, 40), "int8")], [((None, 10), "int8")]),   # shape_signature [-1, ..]
    "fully_connected": (_FC, [((1, 40), "int8")], [((1, 10), "int8")]),
    "small_cnn": (_SMALL_CNN, [((1, 12, 12, 3), "int8")], [((1, 5), "int8")]),
    "pools": (_POOLS, [((1, 9, 9, 5), "int8")], [((1, 5, 5, 5), "int8"), ((1, 4, 4, 5), "int8")]),
    "concat_pad": (_CONCAT_PAD, [((1, 6, 6, 4), "int8")], [((1, 9, 9, 15), "int8")]),
    "activations": ([("LOGISTIC", "logistic", {}), ("TANH", "tanh", {}), ("HARD_SWISH", "hard_swish", {})],
                    [((1, 4, 4, 8), "int8")], [((1, 4, 4, 8), "int8")] * 3),
    "elementwise": (_ELEMENTWISE, [((1, 4, 4, 8), "int8")] * 2, [((1, 4, 4, 8), "int8")] * 3),
    "reshape_fc": ([("RESHAPE", "reshape", dict(shape=(1, 48))),
                    ("FULLY_CONNECTED", "fully_connected", dict(w_shape=(6, 48))),
                    ("RESHAPE", "reshape", dict(shape=(1, 2, 3)))],
                   [((1, 4, 4, 3), "int8")], [((1, 2, 3), "int8")]),
    "fc_rank3": ([("FULLY_CONNECTED", "reshape", dict(shape=(4, 12))),           # TFLite's implicit flatten
                  ("FULLY_CONNECTED", "fully_connected", dict(w_shape=(6, 12))),
                  ("FULLY_CONNECTED", "reshape", dict(shape=(1, 4, 6)))],          # keep_num_dims
                 [((1, 4, 12), "int8")], [((1, 4, 6), "int8")]),
    "float_io": ([("QUANTIZE", "quantize", {}), ("CONV_2D", "conv2d", dict(padding=(1, 1, 1, 1))),
                  ("DEQUANTIZE", "dequantize", {})],
                 [((1, 5, 5, 2), "float32")], [((1, 5, 5, 4), "float32")]),
    "uint8_io": ([("QUANTIZE", "requantize", {}),
                  ("CONV_2D", "conv2d", dict(padding=(0, 0, 0, 0), activation=RELU, w_shape=(4, 1, 1, 3))),
                  ("QUANTIZE", "requantize", {})],
                 [((1, 4, 4, 3), "uint8")], [((1, 4, 4, 4), "uint8")]),
    "conv16x8": (_CONV16X8, [((1, 6, 6, 4), "int16")], [((1, 4), "int16")]),
}
POW2 = ["conv_relu6", "depthwise", "fully_connected", "small_cnn", "pools", "elementwise", "conv16x8"]
for _name in POW2:
    EXPECTED[_name + "_pow2"] = EXPECTED[_name]

MODELS = sorted(EXPECTED)


def model_path(name: str) -> Path:
    return DATA / f"{name}.tflite"


def same_shape(ir_shape, shape) -> bool:
    """``shape`` (concrete) fits the IR shape, where None marks a dynamic dimension."""
    return len(ir_shape) == len(shape) and all(a is None or a == b for a, b in zip(ir_shape, shape))


def litert_interpreter(path, reference: bool = True, preserve: bool = False):
    """A LiteRT interpreter for ``path`` (BUILTIN_REF kernels unless ``reference`` is False)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver,
                              experimental_preserve_all_tensors=preserve)
    interpreter.allocate_tensors()
    return interpreter


def random_inputs(interpreter, seed: int) -> list:
    """Full-range integer inputs (or U(-3, 3) floats), one per model input, in input order."""
    rng = np.random.default_rng(seed)
    values = []
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            values.append(rng.integers(info.min, info.max, detail["shape"], endpoint=True).astype(dtype))
        else:
            values.append(rng.uniform(-3.0, 3.0, detail["shape"]).astype(dtype))
    return values
