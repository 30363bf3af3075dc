"""Reports: per-layer and per-output error against the float model, overflow and headroom, rendered as
rich tables, JSON (schema ``hwsim.report/1``) and a self-contained HTML page."""

from hwsim.report.compare import compare
from hwsim.report.result import Report

__all__ = ["compare", "Report"]
