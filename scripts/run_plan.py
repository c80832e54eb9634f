"""Rule run_plan: write the run plan (what this run will do) as JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.io.atomic import write_json  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake) as log:
    write_json(snakemake.output.plan, snakemake.params.plan)
    log.info("run plan: %s", ", ".join(
        f"{name} {task['action']}" for name, task in snakemake.params.plan["tasks"].items()))
