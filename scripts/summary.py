"""Rule summary: results/<cohort>/summary.json from the cohort metrics and benchmarks."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.summary import write_summary  # noqa: E402

with rule_logging(snakemake):
    write_summary(snakemake.output.summary, snakemake.params.cohort, dict(snakemake.input.items()),
                  snakemake.params.benchmarks)
