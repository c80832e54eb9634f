"""Rule shared_content: refuse identical files under different subjects unless declared."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.io.atomic import write_json  # noqa: E402
from voxseq.io.digest import check_shared_content  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake) as log:
    records = {Path(p).stem: p for p in snakemake.input.records}
    p = snakemake.params
    allowed = check_shared_content(records, p.allow, p.allow_all, p.split)
    write_json(snakemake.output.shared, {"allowed": allowed})
    log.info("%d subjects: %d groups of identical files, all allowed", len(records), len(allowed))
