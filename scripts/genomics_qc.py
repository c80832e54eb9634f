"""Rule genomics_qc: score every genomics subject with the QC bundle; regions, table, figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.qc import score_genomics_qc  # noqa: E402
from voxseq.io.atomic import read_tsv, write_tsv  # noqa: E402
from voxseq.qc.cohort import duplication_recovery, read_truth, write_cohort_qc  # noqa: E402
from voxseq.qc.plots import profile_grid  # noqa: E402
from voxseq.scripting import optional_input, rule_logging  # noqa: E402

REGION_COLUMNS = ["subject", "contig", "start", "end", "n_bins", "mean_z"]

with rule_logging(snakemake):
    p, out = snakemake.params, snakemake.output
    # the training subjects' out-of-fold reconstructions, when the QC model was trained here
    out_of_fold = optional_input(snakemake, "out_of_fold")
    paths = dict(zip(p.subjects, snakemake.input.coverage, strict=True))
    rows, regions, codes, arrays = score_genomics_qc(
        paths, str(Path(snakemake.input.bundle[0]).parent), p.threshold, p.z_threshold,
        p.min_bins, out_of_fold)
    write_tsv(out.regions, [{**r, "mean_z": round(r["mean_z"], 3)} for r in regions],
              REGION_COLUMNS)
    truth = read_truth(p.truth, "genomics")
    extra = {"qc_n_regions": len(regions), **duplication_recovery(regions, truth)}
    write_cohort_qc("genomics", rows, codes, read_tsv(snakemake.input.sheet), p.threshold,
                    p.colour_by, {"table": out.table, "latent": out.latent, "json": out.json,
                                  "latent_png": out.latent_png, "scores_png": out.scores_png},
                    truth, extra)
    prof = arrays["profiles"]
    pos, bounds = prof.positions(), prof.boundaries()
    offset = {c: b for b, c in bounds}
    shown = [i for i, r in enumerate(rows) if r["flagged"]]
    profile_grid(
        [{"subject": rows[i]["subject"], "score": rows[i]["score"], "positions": pos,
          "input": arrays["input"][i], "reconstruction": arrays["reconstruction"][i],
          "z": arrays["z"][i], "boundaries": bounds,
          "regions": [(offset[r["contig"]] + r["start"], offset[r["contig"]] + r["end"])
                      for r in regions if r["subject"] == rows[i]["subject"]]}
         for i in shown],
        out.grid_png, "genomics QC: flagged subjects, standardised log coverage and residual z")
