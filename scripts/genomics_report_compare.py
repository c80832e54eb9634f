"""Rule genomics_report_compare: the architectures of genomics.model.compare side by side."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.plots import plot_arch_comparison  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    plot_arch_comparison(json.loads(Path(snakemake.input.compare).read_text()),
                    snakemake.output.figure)
