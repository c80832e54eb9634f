"""Rule imaging_classify: every subject's class probabilities, the metrics and figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.classify import classify_cohort  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    subjects = snakemake.params.subjects
    seg_probs = snakemake.input.get("seg_probs")
    classify_cohort(
        snakemake.input.sheet,
        dict(zip(subjects, snakemake.input.stores, strict=True)),
        dict(zip(subjects, seg_probs, strict=True)) if seg_probs else None,
        str(Path(snakemake.input.bundle[0]).parent),
        list(snakemake.input.oof),
        {k: snakemake.output[k] for k in ("predictions", "metrics", "roc", "confusion", "grid")},
        n_bootstrap=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        report_subjects=snakemake.params.report_subjects,
        device=snakemake.params.device,
    )
