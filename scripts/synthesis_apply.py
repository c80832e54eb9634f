"""Rule synthesis_apply: an incomplete subject's store completed with its synthesised channel,
and the channel as NIfTI on the subject's original grid, marked synthetic."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.synthesis.apply import complete_subject  # noqa: E402

with rule_logging(snakemake):
    complete_subject(
        snakemake.wildcards.subject,
        snakemake.input.store,
        str(Path(snakemake.input.bundle[0]).parent),
        snakemake.output.store,
        snakemake.output.nifti,
        snakemake.output.record,
        device=snakemake.params.device,
    )
