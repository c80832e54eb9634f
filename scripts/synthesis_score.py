"""Rule synthesis_score: an applied synthesis bundle scored on the subjects that have its
channel (hidden from it), beside the copy and zero-fill baselines."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.synthesis.train import score_bundle  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    score_bundle(
        dict(zip(p.scored, snakemake.input.stores, strict=True)),
        str(Path(snakemake.input.bundle[0]).parent),
        p.cfg,
        snakemake.output.metrics,
        snakemake.output.table,
        snakemake.output.volumes,
    )
