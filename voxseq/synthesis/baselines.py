"""Honest baselines for a missing channel, scored beside the GAN on the same subjects.

* zero-fill: the missing channel is all zeros (what a model that ignores the gap sees);
* copy: the available channel most correlated with the missing one on the training subjects
  (mean Pearson R inside the body), histogram-matched to the training subjects' mean quantile
  function of the missing channel;
* L1 only: the same generator trained without the adversarial term (``gan.adv_weight: 0``,
  trained by :func:`voxseq.synthesis.train.train_synthesis`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxseq.metrics import pearson
from voxseq.synthesis.metrics import body_mask

QUANTILES = np.linspace(0.0, 1.0, 257)


def zero_fill(inputs: np.ndarray) -> np.ndarray:
    """(C_in, X, Y, Z) -> an (X, Y, Z) float32 volume of zeros."""
    return np.zeros(np.shape(inputs)[1:], np.float32)


def most_correlated(volumes: Sequence[np.ndarray], inputs: Sequence[int], target: int) -> int:
    """The input channel (an element of ``inputs``) whose mean Pearson R with ``target`` inside
    the body (of the first input channel) over ``volumes`` is highest; ties go to the first.

    Parameters
    ----------
    volumes
        Training subjects' (C, X, Y, Z) volumes, every channel present.
    """
    scores = []
    for c in inputs:
        rs = []
        for vol in volumes:
            body = body_mask(vol[inputs[0]])
            rs.append(pearson(vol[c][body], vol[target][body]))
        scores.append(float(np.nanmean(rs)) if rs else float("nan"))
    return int(inputs[int(np.nanargmax(scores))]) if np.isfinite(scores).any() else int(inputs[0])


def target_quantiles(volumes: Sequence[np.ndarray], target: int) -> np.ndarray:
    """Mean quantile function (at :data:`QUANTILES`) of channel ``target`` over ``volumes``,
    whole volumes; (257,) float64."""
    return np.mean([np.quantile(v[target], QUANTILES) for v in volumes], axis=0)


def match_histogram(source: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map ``source`` (X, Y, Z) through its own quantile function onto ``quantiles`` (monotone,
    piecewise linear): the result has (about) the reference's histogram."""
    own = np.quantile(source, QUANTILES)
    # equal quantiles (flat histogram parts) would make np.interp ambiguous: keep them increasing
    own = own + np.arange(len(own)) * 1e-9 * max(float(np.ptp(own)), 1.0)
    return np.interp(source, own, quantiles).astype(np.float32)


def copy_channel(inputs: np.ndarray, channel: int, quantiles: np.ndarray) -> np.ndarray:
    """The copy baseline: input channel ``channel`` (its position in ``inputs``, (C_in, X, Y,
    Z)) histogram-matched to ``quantiles`` (:func:`target_quantiles`)."""
    return match_histogram(np.asarray(inputs[channel], np.float32), quantiles)
