"""Small layers run on fewer threads (speed only): the bits are those of 1 and 2 threads alike."""

from __future__ import annotations

import numpy as np

from hwsim.kernels import AccumSpec, RequantParams, conv2d
from hwsim.sim import packed
from hwsim.sim.packed import PreparedConv2d


def test_thread_count_follows_the_work_size():
    assert packed._threads_for(10, 2) == 1
    assert packed._threads_for(packed.MIN_MACS_PER_THREAD, 2) == 2
    assert packed._threads_for(50 * packed.MIN_MACS_PER_THREAD, 2) == 2
    assert packed._threads_for(0, 4) == 1


def test_small_and_large_layers_give_the_same_bits_for_any_thread_count():
    rng = np.random.default_rng(7)
    accum = AccumSpec(group=4, input_zero_point="folded_into_bias")
    for hw, c in ((5, 8), (40, 96)):       # far below and above the threshold
        x = rng.integers(0, 256, size=(1, hw, hw, c), dtype=np.uint8)
        w = rng.integers(-127, 128, size=(c, 3, 3, c), dtype=np.int8)
        rq = RequantParams("float32", scale=np.full(c, 0.002), zero_point=9, out_signed=False)
        layer = PreparedConv2d(w, in_c=c, x_dtype=np.uint8, padding=1, x_zero_point=11, accum=accum, requant=rq)
        expected = conv2d(x, w, padding=1, x_zero_point=11, accum=accum, requant=rq)
        for threads in (1, 2, 3):
            np.testing.assert_array_equal(layer(x, threads), expected)
