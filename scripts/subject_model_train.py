"""Rule subject_model_train: cross-validate the four subject models, judge them, bundle."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.io.digest import file_sha256, object_sha256  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402
from voxseq.subject_model.run import (  # noqa: E402
    imaging_embeddings,
    prediction_classes,
    read_features,
    train_subject_model,
)

with rule_logging(snakemake):
    inp, params, out = snakemake.input, snakemake.params, snakemake.output
    train_subject_model(
        inp.sheet,
        prediction_classes(inp.predictions),
        [inp.predictions],
        read_features(inp.features),
        {"predictions": out.predictions, "metrics": out.metrics, "roc": out.roc,
         "bundle": str(Path(out.bundle[0]).parent)},
        imaging_embeddings(inp, params.imaging_subjects, params.input_size, params.crop),
        target=params.target,
        folds=params.folds,
        seed=params.seed,
        cfg=params.fit,
        n_bootstrap=params.bootstrap,
        provenance={"cohort": params.cohort, "device": "cpu",
                    "config_digest": object_sha256({"fit": params.fit, "recipe": params.recipe}),
                    "sample_sheet_digest": file_sha256(inp.sheet)},
        recipe=params.recipe,
    )
