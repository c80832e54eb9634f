"""Rule genomics_tile: genome windows (one-hot + per-bin targets of every track) in HDF5."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.windows import tile_genome  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    tile_genome(
        snakemake.input.fasta,
        dict(zip(p.subjects, snakemake.input.coverage, strict=True)),
        snakemake.output.windows,
        snakemake.output.table,
        window=p.window,
        stride=p.stride,
        max_n_fraction=p.max_n_fraction,
        val_contigs=p.val_contigs,
        test_contigs=p.test_contigs,
        soft_clip_at=p.soft_clip,
    )
