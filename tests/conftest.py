"""Shared test configuration.

Hypothesis profiles: "ci" (default; derandomized so CI is reproducible) and
"thorough" (HYPOTHESIS_PROFILE=thorough, many more examples, for nightly runs).
"""

from __future__ import annotations

import os
import pathlib

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ../shared (real models, reference docs) exists in CI and on developer machines,
# not in a user's clone; tests that need it skip with this reason.
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED_MISSING = "needs ../shared/models (present in CI and developer checkouts, not in a user's clone)"
