"""Rule genetics_genotypes: the cohort's genotypes after variant and sample QC (PLINK 1 files)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genetics.run import run_genotypes  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    run_genotypes(
        snakemake.output.bed.removesuffix(".bed"),
        snakemake.output.qc,
        snakemake.output.summary,
        None if p.cohort_vcf else dict(zip(p.subjects, snakemake.input.vcfs, strict=True)),
        p.cohort_vcf,
        p.samples,
        p.absent_as_ref,
        p.qc,
    )
