"""Rule imaging_qc: score every imaging subject with the QC bundle; error maps, table, figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.qc import score_imaging_qc  # noqa: E402
from voxseq.io.atomic import read_tsv  # noqa: E402
from voxseq.qc.cohort import read_truth, write_cohort_qc  # noqa: E402
from voxseq.qc.plots import reconstruction_grid  # noqa: E402
from voxseq.scripting import optional_input, rule_logging  # noqa: E402

with rule_logging(snakemake):
    p, out = snakemake.params, snakemake.output
    # the training subjects' out-of-fold reconstructions, when the QC model was trained here
    out_of_fold = optional_input(snakemake, "out_of_fold")
    stores = dict(zip(p.subjects, snakemake.input.stores, strict=True))
    rows, codes, arrays = score_imaging_qc(
        p.subjects, stores, str(Path(snakemake.input.bundle[0]).parent), p.threshold,
        Path(out.errors[0]).parent, out_of_fold)
    write_cohort_qc("imaging", rows, codes, read_tsv(snakemake.input.sheet), p.threshold,
                    p.colour_by, {"table": out.table, "latent": out.latent, "json": out.json,
                                  "latent_png": out.latent_png, "scores_png": out.scores_png},
                    read_truth(p.truth, "imaging"))
    shown = [i for i, r in enumerate(rows) if r["flagged"]]
    reconstruction_grid(
        [{"subject": rows[i]["subject"], "score": rows[i]["score"],
          **{k: arrays[k][i] for k in ("input", "reconstruction", "error")}} for i in shown],
        out.grid_png, "imaging QC: flagged subjects, input / reconstruction / scaled error")
