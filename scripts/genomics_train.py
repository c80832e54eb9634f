"""Rule genomics_train: train the sequence-to-coverage model and write its bundle."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.distributed import launch  # noqa: E402
from voxseq.genomics.train import train_genomics  # noqa: E402
from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.qc.cohort import flagged_subjects  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    launch(
        train_genomics,
        snakemake.input.windows,
        Path(snakemake.output.bundle[0]).parent,
        snakemake.output.metrics,
        p.workdir,
        model_args=p.model,
        train=p.train,
        seed=p.seed,
        max_shift=p.augment_shift,
        # qc.exclude_flagged: flagged subjects' tracks do not train the model
        exclude_tracks=flagged_subjects(snakemake.input.get("qc")),
        arch=p.arch,  # genomics.model.arch, or this job's entry of genomics.model.compare
        provenance={
            "cohort": p.cohort,
            "config_digest": object_sha256(p.cfg),
            "sample_sheet_digest": file_sha256(snakemake.input.sheet),
        },
        nproc=p.train["gpus"],  # data-parallel processes (gpu=N)
        threads=snakemake.threads,
        log_file=snakemake.log[0],
    )
