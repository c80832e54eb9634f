"""Rule imaging_train: train the segmentation UNet and write its model bundle."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.distributed import launch  # noqa: E402
from voxseq.imaging.train import train_imaging  # noqa: E402
from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.qc.cohort import without_flagged  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    subjects = snakemake.params.subjects
    # qc.exclude_flagged: flagged subjects are not trained on
    stores = without_flagged(
        dict(zip(subjects, snakemake.input.stores, strict=True)), snakemake.input.get("qc")
    )
    tiles = dict(zip(subjects, snakemake.input.tiles, strict=True))
    launch(
        train_imaging,
        snakemake.input.sheet,
        stores,
        {s: tiles[s] for s in stores},
        snakemake.input.stats,
        snakemake.params.cfg,
        snakemake.params.seed,
        str(Path(snakemake.output.bundle[0]).parent),
        snakemake.output.metrics,
        snakemake.params.workdir,
        provenance={
            "cohort": snakemake.params.cohort,
            "config_digest": object_sha256(snakemake.params.cfg),
            "sample_sheet_digest": file_sha256(snakemake.input.samples),
        },
        nproc=snakemake.params.cfg["train"]["gpus"],  # data-parallel processes (gpu=N)
        threads=snakemake.threads,
        log_file=snakemake.log[0],
    )
