"""Generate tiny single-op 16x8 .tflite models (int16 activations, int8 weights) in tests/data/tflite_16x8/.

Run once (TensorFlow is needed here and nowhere else in hwsim)::

    pip install tensorflow-cpu==2.21.0 tflite==2.18.0
    python tools/gen_tflite_16x8_ops.py          # writes tests/data/tflite_16x8/

Each case is one MEAN or FULLY_CONNECTED converted with the converter's 16x8 mode
(``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``, int16 model inputs
and outputs, so the graph holds the one op).  Variants:

* ``*_cal``: the scales the converter chose from a seeded representative data set;
* ``*_pot`` (MEAN): input / output scales overwritten by powers of two: the
  requantisation multiplier is exact, so many results sit on rounding ties;
* ``*_same`` (MEAN): input scale == output scale, the case where LiteRT's
  reference kernel may take a different code path;
* ``*_pow2`` (FULLY_CONNECTED): every scale rounded to the nearest power of two
  and the bias scale set to input * weight scale (``gen_tflite_models.pow2_scales``).

int16 activations are symmetric: every zero point stays 0.  The models run in
tests/sim/test_tflite_models.py on every TFLite-family engine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_tflite_models as base  # noqa: E402  (the seeded generators, pow2_scales, op_names)

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tflite_16x8"


def _convert(tf, name: str, fn, shape) -> bytes:
    """``fn`` on one float input of ``shape`` as a 16x8 model; representative data U(-3, 3) seeded by name."""
    data_rng = base._rng(name + "/calibration")
    concrete = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32, name="input")]).get_concrete_function()

    def representative():
        for _ in range(64):
            yield [data_rng.uniform(-3.0, 3.0, shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    return conv.convert()


def _with_io_scales(flat: bytes, in_scale: float, out_scale: float) -> bytes:
    """The model with its (only) input and output scales overwritten; zero points stay 0."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    sg = model.subgraphs[0]
    for idx, scale in ((sg.inputs[0], in_scale), (sg.outputs[0], out_scale)):
        q = sg.tensors[idx].quantization
        q.scale = [float(np.float32(scale))]
        q.zeroPoint = [0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


#: name -> (input shape, axes, keepdims, power-of-two (input, output) scales, description)
MEANS = {
    "mean16_hw": ([2, 7, 9, 16], [1, 2], False, (2.0**-12, 2.0**-13), "MEAN over H, W (n = 63)"),
    "mean16_hw_keep": ([2, 6, 5, 24], [1, 2], True, (2.0**-12, 2.0**-14), "MEAN over H, W, keepdims (n = 30)"),
    "mean16_c": ([3, 4, 5, 33], [3], False, (2.0**-11, 2.0**-11), "MEAN over C (n = 33)"),
    "mean16_big": ([1, 32, 48, 3], [1, 2], True, (2.0**-10, 2.0**-15), "MEAN over H, W, keepdims (n = 1536)"),
    # 65540 * 32767 > 2**31 - 1: the engines' int32 sum wraps (as hwsim models it)
    "mean16_wrap": ([1, 65540], [1], False, (2.0**-12, 2.0**-12), "MEAN over 65540 values, int32 sum can wrap"),
}


def fc16(tf, rng):
    w, b = base._weights(rng, (40, 10), 40), base._bias(rng, 10)
    return lambda x: tf.matmul(x, w) + b


def main() -> int:
    import tensorflow as tf

    OUT.mkdir(parents=True, exist_ok=True)
    rows = []

    def write(file_name: str, blob: bytes, what: str) -> None:
        (OUT / file_name).write_bytes(blob)
        ops = base.op_names(blob)
        if len(ops) != 1:
            raise SystemExit(f"{file_name}: expected one op, the converter produced {ops}")
        rows.append(f"| {file_name} | {len(blob)} | {ops[0]} | {what} |")
        print(f"{file_name}: {len(blob)} bytes, {ops[0]}")

    for name, (shape, axes, keep, (s_in, s_out), what) in MEANS.items():
        flat = _convert(tf, name, lambda x, axes=axes, keep=keep: tf.reduce_mean(x, axis=axes, keepdims=keep), shape)
        write(f"{name}_cal.tflite", flat, f"{what}, shape {shape}, converter scales")
        write(f"{name}_pot.tflite", _with_io_scales(flat, s_in, s_out), f"{what}, scales in {s_in:g} out {s_out:g}")
        if name == "mean16_hw":
            write(f"{name}_same.tflite", _with_io_scales(flat, s_in, s_in), f"{what}, input scale == output scale")

    for batch in (1, 8):
        name = f"fc16_b{batch}"
        flat = _convert(tf, name, fc16(tf, base._rng(name)), [batch, 40])
        write(f"{name}_cal.tflite", flat, f"FULLY_CONNECTED 40->10 + bias, batch {batch}, converter scales")
        write(f"{name}_pow2.tflite", base.pow2_scales(flat), f"`{name}_cal` with power-of-two scales")

    (OUT / "PROVENANCE.md").write_text("\n".join([
        "# tests/data/tflite_16x8 provenance",
        "",
        f"Generated by `tools/gen_tflite_16x8_ops.py` with TensorFlow {tf.__version__} (TFLite converter,",
        "`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`, int16 model inputs and outputs,",
        f"per-channel int8 weights, int64 bias), numpy {np.__version__}, seed {base.SEED} (the generators of",
        "`tools/gen_tflite_models.py`). Do not edit the files by hand: re-run the script.",
        "",
        "| file | bytes | op | what it is |",
        "| --- | --- | --- | --- |",
        *rows,
    ]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
