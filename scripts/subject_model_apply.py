"""Rule subject_model_apply: predict a new cohort with a subject model bundle (no training)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.subject_model.run import (  # noqa: E402
    apply_subject_model,
    imaging_embeddings,
    read_features,
)

with rule_logging(snakemake) as log:
    inp = snakemake.input
    rows = apply_subject_model(
        str(Path(inp.bundle[0]).parent),
        inp.predictions,
        imaging_embeddings(inp, snakemake.params.imaging_subjects),
        read_features(inp.features),
        snakemake.output.predictions,
    )
    log.info("%d subjects predicted", len(rows))
