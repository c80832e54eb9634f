"""Rule imaging_normalise: resample + normalise one subject into a zarr store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.normalise import normalise_subject  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    normalise_subject(
        snakemake.wildcards.subject,
        snakemake.input.meta,
        snakemake.params.plan,
        snakemake.output.store,
        stats_json=snakemake.input.get("stats") or None,
        max_voxels=snakemake.params.max_voxels,
    )
