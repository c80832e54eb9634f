"""The run plan's genomics facts known before any job: contig lengths and splits, the coverage
job's memory, the variant-effect truth."""

from __future__ import annotations

from pathlib import Path

from voxseq.plan.inputs import at_workdir
from voxseq.plan.layout import Layout


def genomics_contig_lengths(config: dict, reference: str, workdir: Path) -> dict[str, int] | None:
    """The reference's contig lengths when known before any job: the demo's from its config (its
    FASTA is written by a rule), another reference's from its ``.fai`` when that is present and
    newer than the FASTA (reading it is O(contigs); no index is built here)."""
    from voxseq.genomics.reference import read_contigs

    fasta = at_workdir(workdir, reference)
    fai = Path(f"{fasta}.fai")
    if fai.is_file() and fasta.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime:
        return read_contigs(fasta)
    if config["demo"]["enabled"]:
        from voxseq.demo.genomics import SMALL, GenomicsDemoConfig

        demo_cfg = SMALL if config["demo"]["small"] else GenomicsDemoConfig()
        return {f"chr{k + 1}": n for k, n in enumerate(demo_cfg.contig_lengths)}
    return None


def coverage_mem_mb(config: dict, lengths: dict | None, reference: str, workdir: Path) -> int:
    """genomics_coverage's memory request (MB, first attempt), from the genome length
    (:func:`voxseq.genomics.coverage.coverage_mem_mb`: ~40 bytes per bin, whatever the depth):
    the contig lengths when known before any job, else the FASTA's size (bases plus newlines, an
    upper bound), else 4000 (a reference written by a rule of another workflow)."""
    from voxseq.genomics.coverage import coverage_mem_mb as bound

    fasta = at_workdir(workdir, reference)
    if lengths is not None:
        genome = sum(lengths.values())
    elif fasta.is_file():
        genome = fasta.stat().st_size
    else:
        return 4000
    return bound(genome, config["genomics"]["bin_size"], threads=2)


def check_genomics_contigs(config: dict, lengths: dict | None, reference: str) -> None:
    """genomics.val_contigs / test_contigs against the reference before any job: unknown
    contigs, or a split left without a window, stop the run here; when the lengths are not
    known yet, the tile rule makes the same check (voxseq.genomics.windows.plan_splits)."""
    if lengths is None:
        return
    from voxseq.genomics.windows import plan_splits

    g = config["genomics"]
    plan_splits(lengths, g["val_contigs"], g["test_contigs"], g["window"], g["stride"], reference)


def genomics_inputs(
    config: dict, layout: Layout, reference: str, workdir: Path
) -> tuple[dict[str, int] | None, int, str | None]:
    """The reference's contig lengths (when known before any job; the val/test contigs checked
    against them), the coverage job's memory, and the variant-effect truth table (the config's,
    else the demo's, else none)."""
    lengths = genomics_contig_lengths(config, reference, workdir)
    check_genomics_contigs(config, lengths, reference)
    truth = None
    if config["genomics"].get("variant_truth"):
        truth = config["genomics"]["variant_truth"]
    elif config["demo"]["enabled"] and config["demo"]["genomics"]:
        truth = layout("demo_variant_truth")
    return lengths, coverage_mem_mb(config, lengths, reference, workdir), truth
