"""The demo's planted subject outcome: it depends on both modalities, so neither alone predicts it.

A regular subject's ``outcome`` (``yes`` / ``no``, its own sheet column) is

    yes  if  OUTCOME_CLASS_EFFECT * c + log(w) / sigma > OUTCOME_THRESHOLD

with ``c`` = +1 for a ``high_burden`` subject and -1 for a ``low_burden`` one (the imaging class,
from the measured lesion burden), ``w`` the subject's weight of the motif ``OUTCOME_MOTIF``
(``ap1_like``: the per-subject motif weight the genomics generator already draws,
log-normal(0, sigma), which scales the coverage at every site of that motif) and ``sigma`` the
generator's ``motif_weight_sigma``. Both signals enter with equal weight, so a heavy lesion burden
with a low motif weight, or a light burden with a high one, lands near the threshold: the imaging
class alone or the coverage alone ranks the outcome only partly, both together nearly separate
it. The outcome uses no draw of its own, so every other file and number of the demo is the same
with or without it; it is written only with both modalities, the QC outliers get none. The truth
(``OUTCOME_TRUTH_COLUMNS``) goes to ``outcome_truth.tsv``.
"""

from __future__ import annotations

import math
from pathlib import Path

from voxseq.io.atomic import write_tsv

OUTCOME_COLUMN = "outcome"
OUTCOME_MOTIF = "ap1_like"
OUTCOME_CLASS_EFFECT = 1.0
OUTCOME_THRESHOLD = 0.5
OUTCOME_TRUTH_COLUMNS = ("subject", "class", "motif", "motif_weight", "score", "outcome")


def outcome_score(klass: str, motif_weight: float, sigma: float) -> float:
    """``OUTCOME_CLASS_EFFECT * c + log(motif_weight) / sigma`` (module docstring)."""
    c = 1.0 if klass == "high_burden" else -1.0
    return OUTCOME_CLASS_EFFECT * c + math.log(motif_weight) / sigma


def plant_outcomes(classes: dict[str, str], motif_weights: dict[str, float], sigma: float
                   ) -> list[dict]:
    """One truth row per subject with both a class and a motif weight (``outcome`` yes/no)."""
    rows = []
    for s, klass in classes.items():
        if s not in motif_weights or not klass:
            continue
        score = outcome_score(klass, motif_weights[s], sigma)
        rows.append({"subject": s, "class": klass, "motif": OUTCOME_MOTIF,
                     "motif_weight": round(motif_weights[s], 6), "score": round(score, 6),
                     "outcome": "yes" if score > OUTCOME_THRESHOLD else "no"})
    return rows


def write_outcome_truth(path: str | Path, rows: list[dict]) -> None:
    write_tsv(path, rows, OUTCOME_TRUTH_COLUMNS)
