"""Rule imaging_cohort: the cohort table and imaging metrics."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.cohort import cohort_table  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    cohort_table(
        snakemake.input.sheet,
        dict(zip(snakemake.params.subjects, snakemake.input.results, strict=True)),
        snakemake.params.labels,
        snakemake.output.table,
        snakemake.output.metrics,
        predictions=snakemake.input.get("predictions"),
        classify_metrics=snakemake.input.get("classify_metrics"),
    )
