"""Rule imaging_infer: segment one subject back on its original grid."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.infer import segment_subject  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    segment_subject(
        snakemake.wildcards.subject,
        snakemake.input.store,
        str(Path(snakemake.input.bundle[0]).parent),
        snakemake.output.seg,
        snakemake.output.result,
        device=snakemake.params.device,
        label_path=snakemake.input.get("label"),
        out_probabilities=snakemake.output.get("probabilities"),
    )
