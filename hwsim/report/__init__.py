"""Reports: per-layer and per-output error against the float model, overflow and headroom, rendered as
rich tables, JSON (schema ``hwsim.report/1``) and a self-contained HTML page; the cross-target diff lives in
:mod:`hwsim.report.diff`."""

from hwsim.report.compare import compare
from hwsim.report.result import Report

__all__ = ["compare", "Report"]
