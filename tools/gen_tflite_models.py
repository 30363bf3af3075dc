"""Generate the small int8 / 16x8 TFLite test models in tests/data/tflite/ (run once; the files are committed).

This is the only place in hwsim that uses TensorFlow; it is not a dependency of the package.  Set-up::

    pip install tensorflow-cpu==2.21.0 tflite==2.18.0
    python tools/gen_tflite_models.py            # writes tests/data/tflite/*.tflite and PROVENANCE.md

Every model is a ``tf.function`` over constant weights drawn from one seeded numpy generator, converted with
full-integer post-training quantisation (``inference_input_type`` / ``inference_output_type`` int8, or int16
for the 16x8 model) on a seeded representative dataset.  ``*_pow2`` variants are the same converted model
with every scale in the flatbuffer then rounded to the nearest power of two (bias scales set to
input scale * weight scale, the integer data untouched): requantisation multipliers become exact powers of
two, so rounding ties are frequent.  See ``pow2_scales``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import struct
from pathlib import Path

import numpy as np

SEED = 20261127
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "tflite"


def _rng(name: str) -> np.random.Generator:
    """One generator per model, so adding a model does not change the others."""
    digest = hashlib.sha256(name.encode()).digest()
    return np.random.default_rng([SEED, int.from_bytes(digest[:4], "little")])


def _weights(rng, shape, fan_in):
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)


def _bias(rng, n):
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


# --- model definitions: name -> (input shapes, builder(tf, rng) -> function of the inputs, description) ---

def conv_relu6(tf, rng):
    w1, b1 = _weights(rng, (3, 3, 3, 8), 27), _bias(rng, 8)
    w2, b2 = _weights(rng, (3, 3, 8, 6), 72), _bias(rng, 6)

    def f(x):
        y = tf.nn.relu6(tf.nn.conv2d(x, w1, strides=1, padding="SAME") + b1)
        return tf.nn.conv2d(y, w2, strides=2, padding="VALID") + b2
    return f


def depthwise(tf, rng):
    # 12 channels, depth multiplier 2 (-> 24, not a multiple of 16); then 24 -> 20 (1x1) and a 20-channel
    # stride-2 SAME depthwise with dilation-free 3x3 and RELU.
    dw1, db1 = _weights(rng, (3, 3, 12, 2), 9), _bias(rng, 24)
    pw, pb = _weights(rng, (1, 1, 24, 20), 24), _bias(rng, 20)
    dw2, db2 = _weights(rng, (3, 3, 20, 1), 9), _bias(rng, 20)

    def f(x):
        y = tf.nn.depthwise_conv2d(x, dw1, strides=[1, 1, 1, 1], padding="SAME") + db1
        y = tf.nn.conv2d(y, pw, strides=1, padding="VALID") + pb
        return tf.nn.relu(tf.nn.depthwise_conv2d(y, dw2, strides=[1, 2, 2, 1], padding="SAME") + db2)
    return f


def dilated(tf, rng):
    w, b = _weights(rng, (3, 3, 4, 6), 36), _bias(rng, 6)
    dw, db = _weights(rng, (3, 3, 6, 1), 9), _bias(rng, 6)

    def f(x):
        y = tf.nn.conv2d(x, w, strides=1, padding="SAME", dilations=2) + b
        return tf.nn.relu6(tf.nn.depthwise_conv2d(y, dw, strides=[1, 1, 1, 1], padding="VALID",
                                                  dilations=[2, 2]) + db)
    return f


def fully_connected(tf, rng):
    w, b = _weights(rng, (40, 10), 40), _bias(rng, 10)

    def f(x):
        return tf.matmul(x, w) + b
    return f


def small_cnn(tf, rng):
    w1, b1 = _weights(rng, (3, 3, 3, 12), 27), _bias(rng, 12)
    dw, db = _weights(rng, (3, 3, 12, 1), 9), _bias(rng, 12)
    fc, fb = _weights(rng, (12, 5), 12), _bias(rng, 5)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, strides=2, padding="SAME") + b1)
        z = tf.nn.relu6(tf.nn.depthwise_conv2d(y, dw, strides=[1, 1, 1, 1], padding="SAME") + db)
        y = y + z                                           # ADD (residual)
        y = tf.reduce_mean(y, axis=[1, 2])                  # MEAN
        return tf.nn.softmax(tf.matmul(y, fc) + fb)         # FULLY_CONNECTED, SOFTMAX
    return f


def pools(tf, rng):
    def f(x):
        a = tf.nn.avg_pool2d(x, ksize=3, strides=2, padding="SAME")
        m = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
        return a, m
    return f


def concat_pad(tf, rng):
    w1, b1 = _weights(rng, (1, 1, 4, 6), 4), _bias(rng, 6)
    w2, b2 = _weights(rng, (3, 3, 4, 5), 36), _bias(rng, 5)

    def f(x):
        a = tf.nn.conv2d(x, w1, strides=1, padding="SAME") + b1
        b = tf.nn.relu(tf.nn.conv2d(x, w2, strides=1, padding="SAME") + b2)
        y = tf.concat([a, b, x], axis=3)                     # CONCATENATION
        return tf.pad(y, [[0, 0], [1, 2], [2, 1], [0, 0]])   # PAD
    return f


def activations(tf, rng):
    def f(x):
        s = tf.sigmoid(x)
        t = tf.tanh(x)
        h = x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)          # fused to HARD_SWISH by the converter
        return s, t, h
    return f


def elementwise(tf, rng):
    c = (0.5 * rng.standard_normal((1, 1, 1, 8))).astype(np.float32)

    def f(a, b):
        m = a * b                                           # MUL (two run-time inputs)
        d = tf.nn.relu(a - b)                               # SUB with fused RELU
        e = a * c                                           # MUL by a broadcast constant
        return m, d, e
    return f


def reshape_fc(tf, rng):
    w, b = _weights(rng, (48, 6), 48), _bias(rng, 6)

    def f(x):
        y = tf.reshape(x, [1, 48])                          # RESHAPE [1,4,4,3] -> [1,48]
        y = tf.matmul(y, w) + b
        return tf.reshape(y, [1, 2, 3])                     # RESHAPE to rank 3
    return f


def fc_rank3(tf, rng):
    w, b = _weights(rng, (12, 6), 12), _bias(rng, 6)

    def f(x):
        return tf.matmul(x, w) + b          # rank-3 input: FULLY_CONNECTED with keep_num_dims
    return f


def hybrid_fc(tf, rng):
    w = _weights(rng, (64, 32), 64)     # >= 1024 weights, or the converter leaves them float

    def f(x):
        return tf.matmul(x, w)
    return f


def float_io(tf, rng):
    w, b = _weights(rng, (3, 3, 2, 4), 18), _bias(rng, 4)

    def f(x):
        return tf.nn.conv2d(x, w, strides=1, padding="SAME") + b
    return f


def uint8_io(tf, rng):
    w, b = _weights(rng, (1, 1, 3, 4), 3), _bias(rng, 4)

    def f(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, strides=1, padding="VALID") + b)
    return f


def conv16x8(tf, rng):
    w, b = _weights(rng, (3, 3, 4, 8), 36), _bias(rng, 8)
    fw, fb = _weights(rng, (8, 4), 8), _bias(rng, 4)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w, strides=1, padding="SAME") + b)
        return tf.matmul(tf.reduce_mean(y, axis=[1, 2]), fw) + fb
    return f


def unsupported_resize(tf, rng):
    def f(x):
        return tf.image.resize(x, [6, 6], method="bilinear")     # RESIZE_BILINEAR: not imported by hwsim
    return f


# name: (builder, input shapes, io dtype, activation bits, pow2 variant, description)
MODELS = {
    "conv_relu6": (conv_relu6, [(1, 10, 10, 3)], "int8", 8, True,
                   "CONV_2D 3x3 SAME + fused RELU6 (3->8), then CONV_2D 3x3 stride 2 VALID (8->6)"),
    "depthwise": (depthwise, [(1, 9, 9, 12)], "int8", 8, True,
                  "DEPTHWISE_CONV_2D depth multiplier 2 (12->24), CONV_2D 1x1 (24->20), "
                  "DEPTHWISE_CONV_2D 3x3 stride 2 SAME on 20 channels + fused RELU"),
    "dilated": (dilated, [(1, 11, 11, 4)], "int8", 8, False,
                "CONV_2D 3x3 dilation 2 SAME (4->6), DEPTHWISE_CONV_2D 3x3 dilation 2 VALID + fused RELU6"),
    "fully_connected": (fully_connected, [(1, 40)], "int8", 8, True, "FULLY_CONNECTED 40->10 with bias"),
    "fc_dynamic_batch": (fully_connected, [(None, 40)], "int8", 8, False,
                         "FULLY_CONNECTED 40->10 with a dynamic batch (shape_signature [-1, 40])"),
    "small_cnn": (small_cnn, [(1, 12, 12, 3)], "int8", 8, True,
                  "CONV_2D+RELU, DEPTHWISE_CONV_2D+RELU6, residual ADD, MEAN over H,W, FULLY_CONNECTED, SOFTMAX"),
    "pools": (pools, [(1, 9, 9, 5)], "int8", 8, True,
              "AVERAGE_POOL_2D 3x3 stride 2 SAME and MAX_POOL_2D 2x2 stride 2 VALID (two outputs)"),
    "concat_pad": (concat_pad, [(1, 6, 6, 4)], "int8", 8, False,
                   "two CONV_2D branches and the input CONCATENATEd on channels, then PAD"),
    "activations": (activations, [(1, 4, 4, 8)], "int8", 8, False, "LOGISTIC, TANH, HARD_SWISH (three outputs)"),
    "elementwise": (elementwise, [(1, 4, 4, 8), (1, 4, 4, 8)], "int8", 8, True,
                    "MUL, SUB + fused RELU, MUL by a broadcast constant (two inputs, three outputs)"),
    "reshape_fc": (reshape_fc, [(1, 4, 4, 3)], "int8", 8, False, "RESHAPE, FULLY_CONNECTED, RESHAPE to rank 3"),
    "fc_rank3": (fc_rank3, [(1, 4, 12)], "int8", 8, False,
                 "FULLY_CONNECTED on a rank-3 input [1, 4, 12] -> [1, 4, 6] (keep_num_dims)"),
    "float_io": (float_io, [(1, 5, 5, 2)], "float32", 8, False,
                 "float32 input/output: QUANTIZE, CONV_2D, DEQUANTIZE"),
    "uint8_io": (uint8_io, [(1, 4, 4, 3)], "uint8", 8, False,
                 "uint8 input/output around an int8 model: QUANTIZE (uint8 -> int8), CONV_2D 1x1 + RELU, "
                 "QUANTIZE (int8 -> uint8)"),
    "conv16x8": (conv16x8, [(1, 6, 6, 4)], "int16", 16, True,
                 "16x8: int16 activations, int8 weights, int64 bias: CONV_2D+RELU, MEAN, FULLY_CONNECTED"),
    "unsupported_hybrid": (hybrid_fc, [(1, 64)], "hybrid", 8, False,
                           "dynamic-range (hybrid) FULLY_CONNECTED: float input, int8 weights (tests the error path)"),
    "unsupported_resize": (unsupported_resize, [(1, 3, 3, 2)], "int8", 8, False,
                           "RESIZE_BILINEAR, an op hwsim does not import (tests the error path)"),
}


def convert(tf, name: str) -> bytes:
    builder, shapes, io_dtype, act_bits, _, _ = MODELS[name]
    rng = _rng(name)
    fn = builder(tf, rng)
    sig = [tf.TensorSpec(s, tf.float32, name=f"input_{i}" if len(shapes) > 1 else "input")
           for i, s in enumerate(shapes)]
    concrete = tf.function(fn, input_signature=sig).get_concrete_function()
    data_rng = _rng(name + "/calibration")

    def representative():
        for _ in range(64):
            yield [data_rng.uniform(-3.0, 3.0, [1 if d is None else d for d in s]).astype(np.float32)
                   for s in shapes]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if io_dtype == "hybrid":          # dynamic-range quantisation: int8 weights, float activations
        return conv.convert()
    conv.representative_dataset = representative
    if act_bits == 16:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io_dtype]
    conv.inference_input_type = io
    conv.inference_output_type = io
    return conv.convert()


# --- power-of-two scales, edited in place in the flatbuffer ---

def _scale_vector_pos(quant):
    """Byte position of the first element of a QuantizationParameters.scale vector (flatbuffers layout)."""
    o = quant._tab.Offset(8)   # field 2 (scale): vtable slot 4 + 2 * 2
    if o == 0:
        return None, 0
    return quant._tab.Vector(o), quant._tab.VectorLen(o)


def pow2_scales(model_bytes: bytes) -> bytes:
    """Round every quantisation scale to the nearest power of two (log domain); bias scale = in * weight."""
    import tflite

    buf = bytearray(model_bytes)
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)

    def write(tensor_index, values):
        quant = graph.Tensors(tensor_index).Quantization()
        pos, n = _scale_vector_pos(quant)
        assert n == len(values)
        for j, v in enumerate(values):
            struct.pack_into("<f", buf, pos + 4 * j, float(v))

    def read(tensor_index):
        quant = graph.Tensors(tensor_index).Quantization()
        if quant is None or quant.ScaleLength() == 0:
            return None
        return [quant.Scale(j) for j in range(quant.ScaleLength())]

    biases = set()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        opcode = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if opcode in (3, 4, 9) and op.InputsLength() > 2 and op.Inputs(2) >= 0:   # CONV_2D, DEPTHWISE, FC
            biases.add((op.Inputs(0), op.Inputs(1), op.Inputs(2)))
    bias_ids = {b for _, _, b in biases}
    for t in range(graph.TensorsLength()):
        scales = read(t)
        if scales is not None and t not in bias_ids:
            write(t, [2.0 ** round(math.log2(s)) for s in scales])
    for x, w, b in biases:
        xs, ws = read(x), read(w)
        write(b, [xs[0] * s for s in ws])
    return bytes(buf)


def provenance(tf, entries) -> str:
    lines = [
        "# TFLite test models: provenance",
        "",
        "Generated by `tools/gen_tflite_models.py` (never hand-edited). Re-running the script with the same",
        "TensorFlow version rewrites byte-identical files (checked with TF 2.21.0 on x86-64 Linux).",
        "",
        f"- TensorFlow {tf.__version__} (`tensorflow-cpu`), converter `TFLiteConverter.from_concrete_functions`,",
        "  full-integer post-training quantisation (`Optimize.DEFAULT`, `TFLITE_BUILTINS_INT8`, or",
        "  `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8` for 16x8), per-channel weights.",
        f"- Seed {SEED}: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01), one numpy generator per model",
        "  (seeded with SEED and a hash of the model name); representative dataset: 64 samples U(-3, 3).",
        "- `*_pow2.tflite`: the model above it with every scale in the flatbuffer rounded to the nearest power of",
        "  two (nearest in log2) and each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED bias scale rewritten to",
        "  input scale * weight scale; zero points and all integer data unchanged. Requantisation multipliers",
        "  are then exact powers of two, so results sit on rounding ties often.",
        "",
        "| file | bytes | I/O dtype | ops | what it is |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {e[0]} | {e[1]} | {e[2]} | {e[3]} | {e[4]} |" for e in entries]
    return "\n".join(lines) + "\n"


def op_names(model_bytes: bytes) -> list[str]:
    import tflite

    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    names = []
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        names.append(tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())))
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (_, _, io_dtype, _, pow2, desc) in MODELS.items():
        data = convert(tf, name)
        variants = [(name, data, desc)]
        if pow2:
            variants.append((name + "_pow2", pow2_scales(data), f"`{name}` with power-of-two scales"))
        for file_name, blob, what in variants:
            (args.out / f"{file_name}.tflite").write_bytes(blob)
            entries.append((f"{file_name}.tflite", len(blob), io_dtype, ", ".join(op_names(blob)), what))
            print(f"{file_name}.tflite: {len(blob)} bytes, ops {op_names(blob)}")
    (args.out / "PROVENANCE.md").write_text(provenance(tf, entries))


if __name__ == "__main__":
    main()
