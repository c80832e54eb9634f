"""Rule synthesis_report: the synthesis's figures (test subjects side by side, training
curves)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.synthesis.plots import synthesis_curves, synthesis_grid  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    kept = json.loads(Path(snakemake.input.metrics).read_text())["kept"]
    synthesis_grid(dict(zip(p.subjects, snakemake.input.stores, strict=True)),
                   snakemake.input.volumes, p.target, kept, snakemake.output.grid)
    if snakemake.input.history:  # [the training history] when trained here, else []
        synthesis_curves(snakemake.input.history[0], snakemake.output.curves)
