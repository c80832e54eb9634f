"""Rule report_results: the results page (summary numbers, cohort tables, figures, captions)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.report import write_results_page  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    inp = snakemake.input
    write_results_page(
        inp.summary,
        snakemake.output.landing,
        snakemake.output.page,
        figures=snakemake.params.figures,
        imaging_table=inp.get("imaging_table"),
        imaging_metrics=inp.get("imaging_metrics"),
        genomics_table=inp.get("genomics_table"),
        genomics_metrics=inp.get("genomics_metrics"),
        landing_rows=snakemake.params.landing_rows,
    )
