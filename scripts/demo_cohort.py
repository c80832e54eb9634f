"""Rule demo_cohort: generate the synthetic demo cohort and its sample sheet."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.demo.cohort import make_demo_cohort  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    d = snakemake.params.demo
    make_demo_cohort(
        Path(snakemake.output.sheet).parent,
        snakemake.params.subjects,
        snakemake.params.seed,
        imaging=d["imaging"],
        genomics=d["genomics"],
        small=d["small"],
        shift=d["shift"],
        label_fraction=d["label_fraction"],
        reference_seed=d["reference_seed"],
        outliers=d["outliers"],
        imaging_channels=d["imaging_channels"],
        missing=snakemake.params.missing,
        lesion_free=snakemake.params.lesion_free,
    )
