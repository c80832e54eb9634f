"""Rule genomics_report_training: genomics training curves PNG (best epoch marked)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.plots import training_curves  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    training_curves(snakemake.input.metrics, snakemake.output.curves)
