"""Rule genomics_ingest: check a subject's BAM/CRAM (and VCF) against the reference; count reads."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.ingest import ingest_subject  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    ingest_subject(
        snakemake.wildcards.subject,
        snakemake.input.bam,
        snakemake.input.fasta,
        snakemake.output.report,
        vcf=snakemake.input.get("vcf") or None,
        min_mapq=snakemake.params.min_mapq,
        exclude_flags=snakemake.params.exclude_flags,
        threads=snakemake.threads,
    )
