"""Properties every observer keeps on arbitrary finite data (hypothesis, a modest number of examples)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hwsim.quant.observers import OBSERVERS, make_observer
from hwsim.quant.params import QuantFormat

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
batches = st.lists(arrays(np.float32, st.integers(1, 200), elements=finite), min_size=1, max_size=3)
formats = st.sampled_from([QuantFormat(8, True, True), QuantFormat(8, False, False), QuantFormat(4, True, False),
                           QuantFormat(8, True, True, narrow=True)])
# these pick a threshold inside the values seen; aciq may extend past one end (its window is 2 alpha wide),
# and histogram / moving_average may stop short of or beyond it by their own rules
INSIDE = ("minmax", "percentile", "entropy", "entropy_mxnet", "mse")


@settings(max_examples=40)
@given(batches=batches, fmt=formats, method=st.sampled_from(sorted(OBSERVERS)))
def test_ranges_are_ordered_finite_and_valid(batches, fmt, method):
    obs = make_observer(method, fmt)
    for x in batches:
        obs.observe(x)
    lo, hi = obs.range()
    assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
    seen_lo = min(float(x.min()) for x in batches)
    seen_hi = max(float(x.max()) for x in batches)
    if method in INSIDE:
        assert seen_lo <= lo and hi <= seen_hi
    p = obs.qparams()
    assert p.scale > 0 and fmt.qmin <= p.zero_point <= fmt.qmax


@settings(max_examples=30)
@given(batches=batches)
def test_minmax_is_split_invariant(batches):
    whole = make_observer("minmax", QuantFormat(8))
    whole.observe(np.concatenate(batches))
    split = make_observer("minmax", QuantFormat(8))
    for x in batches:
        split.observe(x)
    assert whole.range() == split.range()
    assert whole.qparams().scale == split.qparams().scale
