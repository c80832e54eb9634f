"""Rule genomics_infer: predicted tracks, test Pearson R, variant scores, cohort JSON, plots."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.infer import infer_genomics  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p, out = snakemake.params, snakemake.output
    infer_genomics(
        Path(snakemake.input.bundle[0]).parent,
        snakemake.input.fasta,
        snakemake.input.windows,
        dict(zip(p.vcf_subjects, snakemake.input.vcfs, strict=True)),
        bigwig_dir=out.bigwig,
        pearson_tsv=out.pearson,
        variants_tsv=out.variants,
        cohort_json=out.cohort,
        track_png=out.track_plot,
        pearson_png=out.pearson_plot,
        genome_wide=p.genome_wide,
        variant_bins=p.variant_bins,
        truth=snakemake.input.get("truth") or None,
        batch_size=p.batch_size,
        device=p.device,
        subjects=p.subjects,
    )
