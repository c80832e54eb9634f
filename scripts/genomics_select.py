"""Rule genomics_select: the best candidate architecture on validation becomes the cohort's
genomics bundle; the comparison table (val and test Pearson per architecture) beside it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.compare import select_architecture  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    archs = snakemake.params.archs
    select_architecture(
        {a: Path(b).parent for a, b in zip(archs, snakemake.input.bundles, strict=True)},
        Path(snakemake.output.bundle[0]).parent,
        snakemake.output.compare,
        snakemake.output.table,
        metrics=dict(zip(archs, snakemake.input.metrics, strict=True)),
        metrics_out=snakemake.output.metrics,
    )
