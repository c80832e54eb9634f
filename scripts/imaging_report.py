"""Rule imaging_report: Dice box plot and overlay PNGs for the first test subjects."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.plots import dice_boxplot, write_overlays  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake) as log:
    p = snakemake.params
    dice_boxplot(snakemake.input.table, p.labels, snakemake.output.dice)
    segs = dict(zip(p.subjects, snakemake.input.segs, strict=True))
    drawn = write_overlays(snakemake.input.sheet, snakemake.input.table, segs, p.labels, p.n,
                           snakemake.output.overlays)
    log.info("overlays: %s", ", ".join(drawn))
