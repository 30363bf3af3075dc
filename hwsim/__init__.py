"""hwsim: what a quantized neural network computes on a given chip, bit for bit.

Public API (see README.md):

* :func:`list_targets`, :func:`load_target` -- target profiles (YAML).
* :func:`load_model` -- an ONNX (float / QDQ / QOperator) or TFLite file as a graph IR
  (:mod:`hwsim.graph.ir`); bad files raise :class:`ModelError`.
* :func:`save_model` -- a quantized graph as a QDQ ONNX model that onnxruntime runs.
* :func:`simulate` -- run a quantized graph bit for bit as a target computes it;
  :func:`float_reference` -- the same graph in float32.
* :func:`quantize` -- post-training quantization of a float graph for a target.
* :func:`compare` -- per-layer and per-output error, overflow and headroom against the float
  model, for one or several targets (rich tables, JSON, HTML).
* :mod:`hwsim.kernels` -- :func:`~hwsim.kernels.gemm` and :func:`~hwsim.kernels.conv2d`:
  emulate one quantized layer from integer arrays; :func:`layer_specs` derives their
  accumulator and requantisation specs from a target and the layer's scales.
* :mod:`hwsim.types` -- the vocabulary: :class:`Rounding`, :class:`Overflow`,
  :class:`RequantScheme`, :class:`AccumSpec`, :class:`IntFormat`.
* :mod:`hwsim.fixtures` -- golden vectors per layer for RTL / firmware test benches
  (:func:`~hwsim.fixtures.record`, :func:`~hwsim.fixtures.check`, :func:`~hwsim.fixtures.export`).
"""

from __future__ import annotations

from hwsim.graph.errors import ModelError
from hwsim.graph.load import load_model
from hwsim.graph.onnx_export import save_model
from hwsim.layer_specs import LayerSpecs, SplitRequant, layer_specs
from hwsim.numerics.requant_params import RequantParams
from hwsim.report import compare
from hwsim.quant.quantize import quantize
from hwsim.targets import TargetError, TargetProfile, list_targets, load_target
from hwsim.sim import SimResult, SimulationError, float_reference, simulate
from hwsim.types import AccumSpec, IntFormat, Overflow, RequantScheme, Rounding, ZeroPointPlacement
from hwsim import fixtures  # noqa: E402  (golden vectors: hwsim.fixtures.record / check / export)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "list_targets",
    "load_target",
    "load_model",
    "save_model",
    "ModelError",
    "simulate",
    "SimResult",
    "SimulationError",
    "float_reference",
    "compare",
    "quantize",
    "TargetProfile",
    "TargetError",
    "layer_specs",
    "LayerSpecs",
    "SplitRequant",
    "RequantParams",
    "AccumSpec",
    "IntFormat",
    "Overflow",
    "RequantScheme",
    "Rounding",
    "ZeroPointPlacement",
    "fixtures",
]
