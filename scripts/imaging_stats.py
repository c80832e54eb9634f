"""Rule imaging_stats: intensity statistics of the training split (or the bundle's)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.normalise import intensity_statistics  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    intensity_statistics(
        dict(zip(snakemake.params.subjects, snakemake.input.samples, strict=True)),
        snakemake.params.scheme,
        snakemake.output.stats,
    )
