"""The demo cohort: images, labels, BAMs, VCFs and an ordinary sample sheet pointing at them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from voxseq.demo.imaging import ImagingDemoConfig, generate_imaging
from voxseq.io.atomic import write_tsv
from voxseq.io.sheet import COLUMNS

log = logging.getLogger(__name__)


def labelled_indices(seed: int, n: int, label_fraction: float) -> set[int]:
    """Indices of the demo subjects that get a label (deterministic from the seed)."""
    rng = np.random.default_rng([seed, 3])
    return set(rng.permutation(n)[: int(round(label_fraction * n))].tolist())


def make_demo_cohort(
    outdir: str | Path,
    subjects: list[str],
    seed: int,
    imaging: bool = True,
    genomics: bool = True,
    small: bool = False,
    shift: float = 0.0,
    label_fraction: float = 1.0,
    reference_seed: int | None = None,
) -> Path:
    """Generate the demo cohort in ``outdir`` and write ``outdir/samples.tsv``.

    Parameters
    ----------
    subjects
        Subject ids, in order (subject ``i`` is drawn from ``(seed, i)``).
    small
        Tiny volumes and genome, for tests.
    shift
        Move the scanner (and coverage) distribution, to mimic a new cohort.
    label_fraction
        Share of subjects whose label file is listed in the sheet (the others are unlabelled).
    reference_seed
        Seed of the demo genome (default ``seed``); see :func:`generate_genomics`.

    Returns
    -------
    Path of the sample sheet. Its paths are relative to ``outdir``, like a user's sheet.
    """
    outdir = Path(outdir)
    rows = {s: {"subject": s} for s in subjects}
    if imaging:
        cfg = ImagingDemoConfig.small() if small else ImagingDemoConfig()
        made = generate_imaging(outdir, subjects, seed, cfg.shifted(shift))
        labelled = labelled_indices(seed, len(subjects), label_fraction)
        n_lab = len(labelled)
        for i, s in enumerate(subjects):
            rows[s]["image"] = made[s]["image"]
            rows[s]["label"] = made[s]["label"] if i in labelled else ""
            rows[s]["class"] = made[s]["class"]
        log.info("imaging: %d subjects, %d labelled", len(subjects), n_lab)
    if genomics:
        from voxseq.demo.genomics import generate_genomics

        made = generate_genomics(
            outdir, subjects, seed, small=small, shift=shift, reference_seed=reference_seed
        )
        for s in subjects:
            rows[s].update(made[s])
        log.info("genomics: %d subjects", len(subjects))
    sheet = outdir / "samples.tsv"
    write_tsv(sheet, list(rows.values()), [c for c in COLUMNS if c != "split"])
    return sheet
