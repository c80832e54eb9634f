"""Rule genomics_coverage: filtered, binned, library-size normalised coverage of one subject."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.coverage import compute_coverage  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p = snakemake.params
    compute_coverage(
        snakemake.wildcards.subject,
        snakemake.input.bam,
        snakemake.input.fasta,
        snakemake.output.coverage,
        bin_size=p.bin_size,
        min_mapq=p.min_mapq,
        exclude_flags=p.exclude_flags,
        normalisation=p.normalisation,
        blacklist=snakemake.input.get("blacklist") or None,
        count_deletions=p.count_deletions,
        threads=snakemake.threads,
    )
