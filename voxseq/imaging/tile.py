"""Imaging tile stage: per-subject foreground patch centres (patches are read from the zarr
store while training, never copied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxseq.imaging.patches import foreground_centres, write_centres
from voxseq.imaging.store import open_store


def tile_subject(
    subject: str, store: str | Path, out_tsv: str | Path, n_labels: int, per_class: int, seed: int
) -> int:
    """Write the subject's foreground patch centres (empty table for unlabelled subjects)."""
    st = open_store(store)
    if st.label is None:
        centres = np.zeros((0, 4), np.int64)
    else:
        centres = foreground_centres(np.asarray(st.label[...]), n_labels, per_class, seed)
    write_centres(out_tsv, subject, centres)
    return len(centres)
