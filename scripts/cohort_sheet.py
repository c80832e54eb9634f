"""Rule cohort_sheet: validate the sample sheet, resolve paths, assign empty splits."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.io.atomic import write_json  # noqa: E402
from voxseq.io.digest import source_record  # noqa: E402
from voxseq.io.sheet import assign_splits, read_sheet, write_sheet  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake) as log:
    read = source_record(snakemake.input.sheet)  # before reading: a touch reruns nothing
    rows = read_sheet(snakemake.input.sheet)
    for row in rows:  # DICOM series folders: the NIfTI they are converted to (rule imaging_dicom)
        row.update(snakemake.params.converted.get(row["subject"], {}))
    rows = assign_splits(rows, snakemake.params.seed, snakemake.params.fractions)
    write_sheet(snakemake.output.sheet, rows)
    write_json(snakemake.output.record, {"sources": {"sheet": read}})
    for split in ("train", "val", "test"):
        log.info("%s: %d subjects", split, sum(r["split"] == split for r in rows))
