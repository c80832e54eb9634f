"""Rule imaging_tile: foreground patch centres of one subject."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.tile import tile_subject  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    tile_subject(
        snakemake.wildcards.subject,
        snakemake.input.store,
        snakemake.output.centres,
        snakemake.params.n_labels,
        snakemake.params.per_class,
        snakemake.params.seed,
    )
