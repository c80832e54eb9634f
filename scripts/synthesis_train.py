"""Rule synthesis_train: the missing channel's generators (GAN and L1 only) on the complete
subjects, the kept one as the synthesis bundle, every method scored on the test subjects."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.distributed import launch  # noqa: E402
from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.synthesis.train import train_synthesis  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    subjects = [*p.fit_subjects, *p.scored]
    stores = dict(zip(subjects, snakemake.input.stores, strict=True))
    launch(
        train_synthesis,
        stores,
        dict(p.split),
        p.target,
        p.cfg,
        p.seed,
        str(Path(snakemake.output.bundle[0]).parent),
        snakemake.output.history,
        snakemake.output.metrics,
        snakemake.output.table,
        p.workdir,
        {
            "cohort": p.cohort,
            "config_digest": object_sha256(p.cfg),
            "sample_sheet_digest": file_sha256(snakemake.input.samples),
        },
        tiles=dict(zip(p.fit_subjects, snakemake.input.tiles, strict=True)),
        volumes_dir=snakemake.output.volumes,
        nproc=p.cfg["train"]["gpus"],
        threads=snakemake.threads,
        log_file=snakemake.log[0],
    )
