"""Simulation of whole ops: engines' special (non-GEMM) arithmetic, one module per engine family."""
