"""Rule imaging_classify_train: train one cross-validation fold of the subject classifier."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.distributed import launch  # noqa: E402
from voxseq.imaging.classify import train_fold  # noqa: E402
from voxseq.qc.cohort import without_flagged  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    subjects = snakemake.params.subjects
    cfg = snakemake.params.cfg
    seg_probs = snakemake.input.get("seg_probs")
    launch(
        train_fold,
        int(snakemake.wildcards.fold),
        snakemake.input.sheet,
        # qc.exclude_flagged: flagged subjects are not trained on (the ensemble predicts them)
        without_flagged(dict(zip(subjects, snakemake.input.stores, strict=True)),
                        snakemake.input.get("qc")),
        dict(zip(subjects, seg_probs, strict=True)) if seg_probs else None,
        cfg,
        snakemake.params.labels,
        snakemake.params.seed,
        str(Path(snakemake.output.weights).parent),
        nproc=cfg["train"]["gpus"],  # data-parallel processes (gpu=N)
        threads=snakemake.threads,
        log_file=snakemake.log[0],
    )
