"""Rule imaging_report: Dice box plot and overlay PNGs for the first test subjects."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.cohort import overlay_slices  # noqa: E402
from voxseq.io.atomic import atomic_path, read_tsv  # noqa: E402
from voxseq.report import dice_boxplot, overlay  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    dice_boxplot(snakemake.input.table, snakemake.params.labels, snakemake.output.dice)
    segs = dict(zip(snakemake.params.subjects, snakemake.input.segs, strict=True))
    rows = [r for r in read_tsv(snakemake.input.sheet) if r["subject"] in segs]
    rows.sort(key=lambda r: (r["split"] != "test", r["subject"]))
    with atomic_path(snakemake.output.overlays, is_dir=True) as tmp:
        for r in rows[: snakemake.params.n]:
            img, seg, lab = overlay_slices(r["image"], segs[r["subject"]], r["label"] or None,
                                           r["subject"])
            overlay(img, seg, lab, f"{r['subject']} ({r['split']})", tmp / f"{r['subject']}.png")
