"""Rule imaging_report_training: training curves PNG (label names, best epoch marked)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.plots import training_curves  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    training_curves(snakemake.input.metrics, snakemake.params.labels, snakemake.output.curves)
