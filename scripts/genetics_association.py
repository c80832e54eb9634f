"""Rule genetics_association: every phenotype against every variant (plink2 --glm's OLS),
with a Manhattan and a QQ plot per phenotype."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genetics.cohort import association_cohort  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    association_cohort(
        snakemake.input.bed.removesuffix(".bed"),
        snakemake.input.table,
        p.phenotypes,
        p.covariates,
        str(Path(snakemake.output.summary).parent),
        n_pcs=p.n_pcs,
        pcs_min_samples=p.pcs_min_samples,
        pcs_min_variants=p.pcs_min_variants,
        seed=p.seed,
    )
