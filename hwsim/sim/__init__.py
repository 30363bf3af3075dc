"""Graph execution: :func:`simulate` (bit-exact integer execution on a target) and
:func:`float_reference` (float32 execution of the float or dequantised graph).  The engines'
special (non-GEMM) arithmetic lives in one module per engine family (``arith_ort``, ``arith_tflite``)."""

from hwsim.sim.executor import SimResult, SimulationError, clear_cache, simulate
from hwsim.sim.float_ref import float_reference

__all__ = ["simulate", "SimResult", "SimulationError", "clear_cache", "float_reference"]
