"""Rule genomics_reference: index the cohort FASTA (atomically) and write its contig table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.reference import write_contig_table  # noqa: E402
from voxseq.io.atomic import write_json  # noqa: E402
from voxseq.io.digest import source_record  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    read = source_record(snakemake.input.fasta)  # before reading: a touch reruns nothing
    write_contig_table(snakemake.input.fasta, snakemake.output.contigs)
    write_json(snakemake.output.record, {"sources": {"fasta": read}})
