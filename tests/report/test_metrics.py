"""hwsim.report.metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsim.report import metrics as M


def test_sqnr_of_a_known_error():
    # signal 3^2 + 4^2 = 25, noise 0.5^2 = 0.25: 10 log10(100) = 20 dB
    assert M.sqnr_db([3.0, 4.0], [3.0, 4.5]) == pytest.approx(20.0, abs=1e-12)
    # signal 4 * 1 = 4, noise 4 * 0.01 = 0.04: 20 dB again; a tenth of the error is 20 dB more
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    assert M.sqnr_db(ref, ref + 0.1) == pytest.approx(20.0, abs=1e-9)
    assert M.sqnr_db(ref, ref + 0.01) == pytest.approx(40.0, abs=1e-9)


def test_sqnr_degenerate_cases():
    assert M.sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf          # exact
    assert M.sqnr_db([0.0, 0.0], [0.0, 0.0]) == math.inf
    assert M.sqnr_db([0.0, 0.0], [0.0, 0.5]) == -math.inf         # no signal, some noise


@pytest.mark.parametrize("ref, approx, expected", [
    ([1.0, 0.0], [0.0, 1.0], 0.0),
    ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], 1.0),
    ([1.0, 2.0], [-1.0, -2.0], -1.0),
    ([1.0, 0.0], [1.0, 1.0], 1 / math.sqrt(2)),
    ([0.0, 0.0], [0.0, 0.0], 1.0),
    ([0.0, 0.0], [1.0, 0.0], 0.0),
])
def test_cosine(ref, approx, expected):
    assert M.cosine_similarity(ref, approx) == pytest.approx(expected, abs=1e-12)


def test_error_metrics_by_hand():
    # e = approx - ref = [0.25, 0, -0.5, 0]; scale 0.25
    m = M.error_metrics([0.0, 1.0, 2.0, 3.0], [0.25, 1.0, 1.5, 3.0], lsb=0.25)
    assert m.mse == pytest.approx((0.0625 + 0.25) / 4)
    assert m.max_abs_error == 0.5
    assert m.max_error_lsb == 2.0
    assert m.mean_error == pytest.approx(-0.0625)
    assert m.sqnr_db == pytest.approx(10 * math.log10(14 / 0.3125))   # 0 + 1 + 4 + 9 = 14
    assert m.rails_share is None and m.clip_share is None


def test_error_metrics_per_channel_lsb():
    # channel 0 has scale 0.5, channel 1 scale 0.1: errors 0.5 and 0.3 -> 1 and 3 LSB
    m = M.error_metrics([[0.0, 0.0]], [[0.5, 0.3]], lsb=np.array([[0.5, 0.1]]))
    assert m.max_error_lsb == pytest.approx(3.0)


def test_error_metrics_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        M.error_metrics(np.zeros(3), np.zeros(4))


def test_rails_share():
    assert M.rails_share(np.array([-128, 0, 127, 5], np.int8), -128, 127) == 0.5
    assert M.rails_share(np.array([0, 255, 255, 7], np.uint8), 0, 255) == 0.75


def test_clip_share_half_a_step_past_the_rails():
    # int8, scale 0.5, zp 0: codes cover [-64, 63.5]; beyond means < -64.25 or > 63.75
    ref = np.array([-64.25, -64.3, 63.75, 63.8, 0.0])
    assert M.clip_share(ref, 0.5, 0, -128, 127) == pytest.approx(2 / 5)
    # uint8, scale 1, zp 10: codes cover [-10, 245]
    assert M.clip_share(np.array([-10.4, -10.6, 245.6, 3.0]), 1.0, 10, 0, 255) == pytest.approx(2 / 4)


def test_channel_clip_share_is_per_last_axis():
    ref = np.array([[[100.0, 0.0], [100.0, 100.0]]])     # [1, 2, 2]: channel 0 always beyond, channel 1 once
    np.testing.assert_allclose(M.channel_clip_share(ref, 0.5, 0, -128, 127), [1.0, 0.5])


def test_topk_agreement_and_ties():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    got = np.array([[0.2, 0.7, 0.1],   # same top-1
                    [0.4, 0.4, 0.2],   # tie between 0 and 1: the lower index (0) ranks first -> agrees
                    [0.6, 0.3, 0.1]])  # float top-1 (2) is third here
    assert M.topk_agreement(ref, got, 1) == pytest.approx(2 / 3)
    assert M.topk_agreement(ref, got, 2) == pytest.approx(2 / 3)
    assert M.topk_agreement(ref, got, 3) == 1.0


def test_accuracy():
    logits = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 1.0], [0.0, 0.2, 0.1]])
    assert M.accuracy(logits, np.array([1, 2, 1])) == pytest.approx(2 / 3)
    assert M.accuracy(logits, np.array([1, 2, 1]), k=2) == 1.0
    with pytest.raises(ValueError, match="labels"):
        M.accuracy(logits, np.array([1, 2]))


def test_error_histogram_puts_outliers_in_the_end_bins():
    counts = M.error_histogram([-5.0, -0.5, 0.1, 0.2, 0.9, 7.0], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(counts, [2, 4])
