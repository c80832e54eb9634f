"""Rule genomics_report_variants: variant-effect figure (ROC, scores by class, predicted vs true
effect with its Spearman)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.variant_figure import plot_variant_effects  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    plot_variant_effects(snakemake.input.variants, snakemake.input.get("truth") or None,
                         snakemake.output.effects)
