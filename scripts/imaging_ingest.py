"""Rule imaging_ingest: load, check and describe one subject's image and label."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.ingest import ingest_subject  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

p = snakemake.params
with rule_logging(snakemake):
    ingest_subject(
        snakemake.wildcards.subject,
        snakemake.input.image,
        snakemake.input.get("label"),
        n_labels=snakemake.params.n_labels,
        seed=snakemake.params.seed,
        max_voxels=snakemake.params.max_voxels,
        out_json=snakemake.output.meta,
        out_sample=snakemake.output.sample,
        # image first, then the subject's image_<name> columns' files (input.channels, in
        # column order; a missing sequence's column is left out, synthesised later)
        images=[
            ("image", snakemake.input.image),
            *zip(p.present["columns"], snakemake.input.channels, strict=True),
        ],
        channels=p.present["channels"],
        channel_grid=p.channel_grid,
    )
