"""Rule subject_model_features: every genomics subject's raw feature vector (one TSV)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.subject_model.run import recipe_features, write_features  # noqa: E402

with rule_logging(snakemake) as log:
    inp = snakemake.input
    qc = inp.get("qc_bundle")
    table = recipe_features(
        dict(zip(snakemake.params.subjects, inp.stores, strict=True)),
        snakemake.params.recipe,
        qc_bundle=str(Path(qc[0]).parent) if qc else None,
        reference=inp.get("reference"),
        bed=inp.get("regions"),
        demo_small=snakemake.params.demo_small,
    )
    write_features(snakemake.output.table, table)
    log.info("%d subjects x %d genomics features", len(table.subjects), len(table.names))
