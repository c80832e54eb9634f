"""Rule synthesis_dice: the cohort's segmentation Dice per label with the real, synthesised,
zero-filled and copied channel in place, on scored test subjects."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.synthesis.downstream import downstream_dice  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    downstream_dice(
        dict(zip(p.subjects, snakemake.input.stores, strict=True)),
        snakemake.input.volumes,
        str(Path(snakemake.input.bundle[0]).parent),
        p.target,
        p.labels,
        snakemake.output.dice,
        snakemake.output.table,
        device=p.device,
    )
