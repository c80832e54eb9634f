"""Rule imaging_qc_train: the imaging QC autoencoder, trained on the training split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.qc import train_imaging_qc  # noqa: E402
from voxseq.imaging.store import content_digest  # noqa: E402
from voxseq.io.digest import object_sha256  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    stores = dict(zip(p.subjects, snakemake.input.stores, strict=True))
    digest = object_sha256(
        {"cfg": p.cfg, "plan": p.plan, "train": p.train, "val": p.val, "seed": p.seed,
         "stores": {s: content_digest(stores[s]) for s in p.subjects}}
    )
    train_imaging_qc(p.train, p.val, stores, p.cfg, p.plan, p.seed, p.workdir,
                     snakemake.output.metrics, str(Path(snakemake.output.bundle[0]).parent),
                     digest, snakemake.output.out_of_fold)
