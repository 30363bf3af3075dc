"""Reports: per-layer error against the float reference, and the cross-target diff (:mod:`hwsim.report.diff`)."""
