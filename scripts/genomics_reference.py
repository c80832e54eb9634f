"""Rule genomics_reference: index the cohort FASTA (atomically) and write its contig table."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the voxseq package

from voxseq.genomics.reference import write_contig_table  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    write_contig_table(snakemake.input.fasta, snakemake.output.contigs)
