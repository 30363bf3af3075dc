"""Generate tiny single-op int8 .tflite models for hwsim's TFLite arithmetic tests.

Run once (TensorFlow is needed here and nowhere else in hwsim)::

    pip install tensorflow-cpu==2.21.0
    python tools/gen_tflite_single_ops.py            # writes tests/data/tflite_ops/

Each case is a TensorFlow function converted by the TFLite converter with full
int8 quantisation (int8 model inputs and outputs, so the graph holds the one
op and nothing else).  Two families per op:

* ``*_cal``: the scales and zero points the converter chose from a random
  representative data set;
* ``*_pot``: the same graph with its activation quantisation overwritten by
  power-of-two scales (and chosen zero points), which puts many results
  exactly on rounding ties: the cases where engines' rounding rules differ.

``cases.json`` records, per file, the op, the attributes the tests need and the
quantisation written; ``PROVENANCE.md`` records the generator and versions.
"""

from __future__ import annotations

import json
import os
import zlib
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tflite_ops"
SEED = 20261127

# Quantisation at which two engines' rules give different bits on some int8 input (found by evaluating
# the candidate rules over random scales): these cases show that each rule matches its own engine only.
SPLIT = {
    # a float32-quotient SUB (as TFLM's sub_common.cc source reads) would differ from double here; the
    # measured TFLM wheel does not, so this case now pins SUB's double quotients for all three engines
    "sub": {"in0": (0.020449303090572357, 3), "in1": (0.03561986982822418, -5), "out": (0.09276874363422394, 1)},
    "mul": {"in0": (0.05428821220993996, 3), "in1": (0.11315056681632996, -5), "out": (0.2435457855463028, 1)},
    "logistic": {"in0": (2.0122766494750977, 34), "out": (2.0**-8, -128)},
    "tanh": {"in0": (0.0035276995040476322, 32), "out": (2.0**-7, 0)},
    "softmax": {"in0": (0.02445666864514351, 0), "out": (2.0**-8, -128)},
}


def _convert(fn, input_specs, ranges, name: str, io_type=tf.int8):
    """Convert ``fn`` to a fully int8 .tflite (bytes); representative data uniform in ``ranges``.

    The data come from a generator seeded by (SEED, case name), so adding a case leaves the others unchanged.
    """
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    concrete = fn.get_concrete_function(*input_specs)

    def representative():
        for _ in range(64):
            yield [rng.uniform(lo, hi, size=spec.shape).astype(np.float32)
                   for spec, (lo, hi) in zip(input_specs, ranges)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = io_type
    conv.inference_output_type = io_type
    return conv.convert()


def _op_names(model) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as schema
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators]


def _set_quant(model, tensor_index: int, scale: float, zero_point: int) -> None:
    t = model.subgraphs[0].tensors[tensor_index]
    t.quantization.scale = [float(np.float32(scale))]
    t.quantization.zeroPoint = [int(zero_point)]


def _quant_of(model, tensor_index: int) -> dict:
    q = model.subgraphs[0].tensors[tensor_index].quantization
    if q is None or q.scale is None:
        return {"scale": [], "zero_point": []}          # a float tensor
    return {"scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zeroPoint]}


def _write(name: str, flat: bytes, op: str, attrs: dict, pot: dict | None, manifest: dict,
           split: dict | None = None, n_ops: int = 1) -> None:
    """Write ``name``_cal (as converted) and, with ``pot`` / ``split``, copies with that quantisation."""
    variants = [("cal", None)] + ([("pot", pot)] if pot else []) + ([("split", split)] if split else [])
    for suffix, override in variants:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
        ops = _op_names(model)
        if len(ops) != n_ops:
            raise SystemExit(f"{name}: expected {n_ops} op(s), converter produced {ops}")
        sg = model.subgraphs[0]
        if override:
            roles = {f"in{i}": idx for i, idx in enumerate(sg.inputs)} | {"out": sg.outputs[0]}
            for role, (scale, zp) in override.items():
                _set_quant(model, roles[role], scale, zp)
        data = flatbuffer_utils.convert_object_to_bytearray(model)
        fname = f"{name}_{suffix}.tflite"
        (OUT / fname).write_bytes(bytes(data))
        manifest[fname] = {
            "op": op, "tflite_op": ops[0] if n_ops == 1 else ops, "attrs": attrs,
            "inputs": [{"shape": [int(d) for d in sg.tensors[i].shape], **_quant_of(model, i)} for i in sg.inputs],
            "output": {"shape": [int(d) for d in sg.tensors[sg.outputs[0]].shape], **_quant_of(model, sg.outputs[0])},
            "op_outputs": [_quant_of(model, op.outputs[0]) for op in sg.operators],
        }
        print(f"  {fname}: {' -> '.join(ops)} {len(data)} bytes")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict = {}
    spec = tf.TensorSpec

    # ---- binary elementwise: every (a, b) int8 pair, as two [1, 65536] inputs -----------------
    pair = [spec([1, 65536], tf.float32)] * 2
    binary = {
        "add": (lambda a, b: a + b, {"in0": (2.0**-4, 3), "in1": (2.0**-3, -5), "out": (2.0**-3, 1)}),
        "sub": (lambda a, b: a - b, {"in0": (2.0**-4, 3), "in1": (2.0**-3, -5), "out": (2.0**-3, 1)}),
        "mul": (lambda a, b: a * b, {"in0": (2.0**-3, 3), "in1": (2.0**-2, -5), "out": (2.0**-1, 1)}),
    }
    for name, (f, pot) in binary.items():
        fn = tf.function(lambda a, b, f=f: f(a, b))
        flat = _convert(fn, pair, [(-3.0, 5.0), (-2.0, 1.5)], name)
        _write(name, flat, name, {"activation": None}, pot, manifest, SPLIT.get(name))
    # same-scale inputs and a fused ReLU6; a broadcast case
    fn = tf.function(lambda a, b: tf.nn.relu6(a + b))
    flat = _convert(fn, pair, [(-4.0, 4.0), (-4.0, 4.0)], "add_relu6")
    _write("add_relu6", flat, "add", {"activation": [0.0, 6.0]},
           {"in0": (2.0**-5, 0), "in1": (2.0**-5, 0), "out": (2.0**-5, -128)}, manifest)
    bshape = [spec([2, 5, 7, 8], tf.float32), spec([1, 1, 7, 1], tf.float32)]
    # the broadcast operand first: XNNPACK then runs its "constant b" kernel with the operands swapped
    fn = tf.function(lambda a, b: a + b)
    flat = _convert(fn, bshape[::-1], [(-1.0, 1.0), (-2.0, 3.0)], "add_bcast_first")
    _write("add_bcast_first", flat, "add", {"activation": None},
           {"in0": (2.0**-6, 9), "in1": (2.0**-5, -7), "out": (2.0**-5, 2)}, manifest)
    for name, f in {"add_bcast": tf.add, "mul_bcast": tf.multiply, "sub_bcast": tf.subtract}.items():
        fn = tf.function(lambda a, b, f=f: f(a, b))
        flat = _convert(fn, bshape, [(-2.0, 3.0), (-1.0, 1.0)], name)
        _write(name, flat, name.split("_")[0], {"activation": None},
               {"in0": (2.0**-5, -7), "in1": (2.0**-6, 9), "out": (2.0**-5, 2)}, manifest)

    # ---- unary LUT / fixed-point activations: all 256 int8 values ------------------------------
    one = [spec([1, 256], tf.float32)]
    unary = {
        "logistic": (tf.sigmoid, (-8.0, 8.0), {"in0": (2.0**-4, 0), "out": (2.0**-8, -128)}),
        "tanh": (tf.tanh, (-4.0, 4.0), {"in0": (2.0**-5, 0), "out": (2.0**-7, 0)}),
        "hard_swish": (lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0), (-5.0, 5.0),
                       {"in0": (2.0**-4, 0), "out": (2.0**-4, -64)}),
    }
    for name, (f, rg, pot) in unary.items():
        fn = tf.function(lambda x, f=f: f(x))
        flat = _convert(fn, one, [rg], name)
        _write(name, flat, name, {}, pot, manifest, SPLIT.get(name))
    # wide-range inputs: saturating parts of the curves and large hard-swish multipliers
    for name, f, rg in [("logistic_wide", tf.sigmoid, (-30.0, 20.0)), ("tanh_wide", tf.tanh, (-12.0, 9.0)),
                        ("hard_swish_wide", lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0), (-40.0, 90.0)),
                        # small input scale: the relu-ish multiplier shifts right (exponent < 0)
                        ("hard_swish_narrow", lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0), (-1.0, 1.2))]:
        fn = tf.function(lambda x, f=f: f(x))
        flat = _convert(fn, one, [rg], name)
        _write(name, flat, name.rsplit("_", 1)[0], {}, None, manifest)

    # ---- float model boundary: QUANTIZE -> TANH -> DEQUANTIZE ---------------------------------------
    # (quantisation of the int8 tensors is read by the test from the model; "in0"/"out" are the float ends)
    fn = tf.function(lambda x: tf.tanh(x))
    flat = _convert(fn, [spec([1, 4093], tf.float32)], [(-3.0, 3.0)], "quantize_tanh_dequantize", tf.float32)
    _write("quantize_tanh_dequantize", flat, "quantize_tanh_dequantize", {}, None, manifest, n_ops=3)

    # ---- softmax ---------------------------------------------------------------------------------
    for depth, rg in [(10, (-6.0, 6.0)), (37, (-20.0, 12.0)), (256, (-3.0, 3.0))]:
        fn = tf.function(lambda x: tf.nn.softmax(x, axis=-1))
        flat = _convert(fn, [spec([64, depth], tf.float32)], [rg], f"softmax_d{depth}")
        _write(f"softmax_d{depth}", flat, "softmax", {"beta": 1.0, "axis": -1},
               {"in0": (2.0**-3, 5), "out": (2.0**-8, -128)}, manifest)
    # beta != 1: the converter writes beta = 1, so the option is overwritten in the flatbuffer
    fn = tf.function(lambda x: tf.nn.softmax(x, axis=-1))
    flat = _convert(fn, [spec([64, 19], tf.float32)], [(-6.0, 6.0)], "softmax_beta")
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    model.subgraphs[0].operators[0].builtinOptions.beta = 0.37
    flat = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    _write("softmax_beta", flat, "softmax", {"beta": float(np.float32(0.37)), "axis": -1},
           {"in0": (2.0**-3, 5), "out": (2.0**-8, -128)}, manifest)
    fn = tf.function(lambda x: tf.nn.softmax(x, axis=-1))
    flat = _convert(fn, [spec([512, 40], tf.float32)], [(-6.0, 6.0)], "softmax_d40")
    _write("softmax_d40", flat, "softmax", {"beta": 1.0, "axis": -1}, None, manifest, SPLIT["softmax"])

    # ---- mean ------------------------------------------------------------------------------------
    for name, shape, axes, keep in [("mean_hw", [2, 7, 9, 16], [1, 2], False),
                                    ("mean_hw_keep", [2, 6, 5, 24], [1, 2], True),
                                    ("mean_c", [3, 4, 5, 33], [3], False)]:
        fn = tf.function(lambda x, axes=axes, keep=keep: tf.reduce_mean(x, axis=axes, keepdims=keep))
        flat = _convert(fn, [spec(shape, tf.float32)], [(-3.0, 5.0)], name)
        _write(name, flat, "mean", {"axes": axes, "keepdims": keep},
               {"in0": (2.0**-4, -3), "out": (2.0**-5, 7)}, manifest)

    # ---- average pool ------------------------------------------------------------------------------
    for name, shape, k, s, pad in [("avg_pool_3x3s2_same", [1, 9, 10, 12], 3, 2, "SAME"),
                                   ("avg_pool_2x2_valid", [2, 8, 6, 5], 2, 2, "VALID"),
                                   ("avg_pool_4x4s1_same", [1, 7, 7, 3], 4, 1, "SAME")]:
        fn = tf.function(lambda x, k=k, s=s, pad=pad: tf.nn.avg_pool2d(x, k, s, pad))
        flat = _convert(fn, [spec(shape, tf.float32)], [(-2.0, 6.0)], name)
        _write(name, flat, "avg_pool2d", {"kernel": [k, k], "stride": [s, s], "padding": pad}, None, manifest)

    # a fused ReLU6 on the pool (the converter folds it into AVERAGE_POOL_2D)
    fn = tf.function(lambda x: tf.nn.relu6(tf.nn.avg_pool2d(x, 3, 1, "SAME")))
    flat = _convert(fn, [spec([1, 6, 6, 4], tf.float32)], [(-2.0, 8.0)], "avg_pool_relu6")
    _write("avg_pool_relu6", flat, "avg_pool2d", {"kernel": [3, 3], "stride": [1, 1], "padding": "SAME",
                                                  "activation": [0.0, 6.0]}, None, manifest)

    (OUT / "cases.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (OUT / "PROVENANCE.md").write_text(
        "# tests/data/tflite_ops provenance\n\n"
        f"Generated by `tools/gen_tflite_single_ops.py` (seed {SEED}) with TensorFlow {tf.__version__} "
        f"(TFLite converter, full int8 post-training quantisation, int8 model inputs and outputs), "
        f"numpy {np.__version__}, Python {sys.version.split()[0]}.\n\n"
        "`*_cal.tflite`: quantisation as chosen by the converter from random representative data.\n"
        "`*_split.tflite`: quantisation at which engines' rules disagree on some input (see SPLIT in the script).\n"
        "`*_pot.tflite`: the same graph with activation scales / zero points overwritten (via "
        "`tensorflow.lite.tools.flatbuffer_utils`) by the power-of-two values listed in `cases.json`, "
        "so that many results sit exactly on rounding ties.\n\n"
        "`cases.json` lists each file's op, attributes and quantisation. Do not edit the files by hand: "
        "re-run the script.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
