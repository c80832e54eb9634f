"""Rule genomics_qc_train: the coverage-profile QC autoencoder, trained on the training split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.qc import train_genomics_qc  # noqa: E402
from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    paths = dict(zip(p.subjects, snakemake.input.coverage, strict=True))
    digest = object_sha256(
        {"cfg": p.cfg, "train": p.train, "val": p.val, "seed": p.seed,
         "coverage": {s: file_sha256(paths[s]) for s in p.subjects}}
    )
    train_genomics_qc(paths, p.train, p.val, p.cfg, p.seed, p.workdir, snakemake.output.metrics,
                      str(Path(snakemake.output.bundle[0]).parent), digest,
                      snakemake.output.out_of_fold)
