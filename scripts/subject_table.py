"""Rule subject_table: subjects.tsv (one row per subject) and its data dictionary."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genetics.run import run_subject_table  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    run_subject_table(
        snakemake.input.sheet,
        snakemake.output.table,
        snakemake.output.columns,
        p.imaging_subjects,
        p.genomics_subjects,
        p.channels,
        p.channel_columns,
        p.lesion_label,
        {k: v for k, v in snakemake.input.items() if k != "sheet"},
    )
