"""Rule imaging_classify_bundle: the folds' classifiers as one ensemble bundle."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.classify import write_ensemble_bundle  # noqa: E402
from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    plan = dict(snakemake.params.plan)
    if snakemake.input.stats:  # the training split's statistics (ct), as the UNet's bundle
        plan["statistics"] = json.loads(Path(snakemake.input.stats).read_text()).get("statistics")
    write_ensemble_bundle(
        [str(Path(p).parent) for p in snakemake.input.folds],
        snakemake.params.cfg,
        plan,
        str(Path(snakemake.output.bundle[0]).parent),
        provenance={
            "cohort": snakemake.params.cohort,
            "seed": snakemake.params.seed,
            "config_digest": object_sha256(snakemake.params.cfg),
            "sample_sheet_digest": file_sha256(snakemake.input.samples),
        },
    )
