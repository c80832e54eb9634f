"""Robust QC scores (voxseq.qc.scores)."""

import numpy as np
import pytest

from voxseq import VoxseqError
from voxseq.qc.scores import enough_reference, subject_scores


def test_subject_scores_by_hand():
    e = np.array([1, 2, 3, 4, 5, 100, 10.0])
    # reference rows 0-5: median 3.5, |dev| 2.5 1.5 .5 .5 1.5 96.5 -> MAD 1.5
    got = subject_scores(e, np.arange(6))
    np.testing.assert_allclose(got, (e - 3.5) / (1.4826 * 1.5))
    # MAD 0: median 1, |dev| 0 0 0 0 1 4 -> mean absolute deviation 5 / 6
    e = np.array([1, 1, 1, 1, 2, 5, 3.0])
    np.testing.assert_allclose(subject_scores(e, np.arange(6)), (e - 1) / (1.2533 * 5 / 6))
    # all reference errors equal: 0 at the median, inf above, -inf below
    e = np.array([2, 2, 2, 2, 2, 3, 1.0])
    mask = np.array([True] * 5 + [False] * 2)
    assert subject_scores(e, mask).tolist() == [0, 0, 0, 0, 0, np.inf, -np.inf]


def test_subject_scores_needs_five_references():
    assert not enough_reference(4) and enough_reference(5)
    with pytest.raises(VoxseqError, match="4 reference .* at least 5"):
        subject_scores(np.arange(10.0), np.arange(4))


def test_error_scores_are_robust_z_of_log_errors():
    """A long right tail of clean errors (chi-square-like) is not flagged on the log scale,
    while a subject 20x the median error still is."""
    from voxseq.qc.scores import error_scores

    rng = np.random.default_rng(4)
    clean = rng.chisquare(4, size=40) / 4  # mean squares of 4 standard normals
    e = np.concatenate([clean, [20.0, np.nan]])
    got = error_scores(e, np.arange(40))
    np.testing.assert_allclose(got[:41], subject_scores(np.log(e[:41]), np.arange(40)))
    assert np.isnan(got[41]) and got[40] > 3.5
    raw = subject_scores(clean, np.arange(40))
    assert (raw > 3.5).sum() == 3 and (got[:40] > 3.5).sum() == 0
