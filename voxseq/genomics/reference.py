"""The cohort's reference FASTA: its index (built atomically when missing) and contig table.

pysam handles are not safe to share between processes, so every function here opens its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pysam

from voxseq import VoxseqError
from voxseq.io.atomic import read_tsv, remove_stale_temporaries, write_tsv

log = logging.getLogger(__name__)


def ensure_fai(fasta: str | Path) -> Path:
    """Return ``<fasta>.fai``, building it (and ``.gzi`` for bgzipped FASTA) when missing.

    The index is built beside a temporary link to the FASTA in a temporary folder next to it and
    renamed into place, so a killed or concurrent job never leaves a partial index.

    Raises
    ------
    VoxseqError
        When the FASTA is missing, unreadable or cannot be indexed.
    """
    fasta = Path(fasta)
    fai = Path(f"{fasta}.fai")
    if not fasta.is_file():
        raise VoxseqError(f"reference FASTA {fasta}: file not found")
    if fai.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime:
        return fai
    log.info("building FASTA index %s", fai)
    try:
        remove_stale_temporaries(fasta)  # a killed earlier run's scratch
        tmpdir = Path(tempfile.mkdtemp(prefix=f".tmp-{fasta.name}.", dir=fasta.parent))
    except OSError as exc:
        raise VoxseqError(f"reference FASTA {fasta}: no index ({fai.name}) and its folder is not "
                          f"writable ({exc}); index it with `samtools faidx {fasta}`") from exc
    try:
        link = tmpdir / fasta.name
        link.symlink_to(fasta.resolve())
        try:
            pysam.faidx(str(link))
        except pysam.SamtoolsError as exc:
            raise VoxseqError(f"reference FASTA {fasta}: cannot be indexed ({exc}); is it a "
                              "plain or bgzip-compressed FASTA?") from exc
        gzi = Path(f"{link}.gzi")
        if gzi.is_file():
            os.replace(gzi, f"{fasta}.gzi")
        os.replace(f"{link}.fai", fai)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return fai


def read_contigs(fasta: str | Path) -> dict[str, int]:
    """Contig name -> length, in FASTA order (builds the index when missing)."""
    fai = ensure_fai(fasta)
    contigs: dict[str, int] = {}
    for line in fai.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            raise VoxseqError(f"reference index {fai}: malformed line {line!r}")
        contigs[fields[0]] = int(fields[1])
    if not contigs:
        raise VoxseqError(f"reference FASTA {fasta}: no sequences")
    return contigs


def unknown_fractions(fasta: str | Path, chunk: int = 10_000_000) -> dict[str, float]:
    """Contig -> fraction of bases that are not A, C, G or T (N and other IUPAC codes).

    Reads one ``chunk`` of a contig at a time, so memory stays bounded on large genomes.
    """
    out: dict[str, float] = {}
    with pysam.FastaFile(str(fasta)) as fa:
        for contig, length in zip(fa.references, fa.lengths, strict=True):
            known = 0
            for start in range(0, length, chunk):
                seq = fa.fetch(contig, start, min(start + chunk, length)).upper()
                known += sum(seq.count(b) for b in "ACGT")
            out[contig] = 1.0 - known / length if length else 1.0
    return out


def write_contig_table(fasta: str | Path, out_tsv: str | Path) -> dict[str, int]:
    """Check/index the reference and write its contig table (``contig``, ``length``,
    ``n_fraction``) as TSV.

    A contig made only of N (or other unknown bases) is kept, since every BAM header must list
    the reference's contigs, but it gives no window to train or evaluate on: it is logged as a
    warning naming the contig. A reference with no known base at all is an error.
    """
    contigs = read_contigs(fasta)
    unknown = unknown_fractions(fasta)
    all_n = [c for c in contigs if unknown[c] >= 1.0]
    if len(all_n) == len(contigs):
        raise VoxseqError(f"reference FASTA {fasta}: every contig is all N ({all_n[:10]}); "
                          "nothing to model")
    for contig in all_n:
        log.warning("reference FASTA %s: contig %s (%d bp) is all N: no window comes from it",
                    fasta, contig, contigs[contig])
    write_tsv(out_tsv, [{"contig": c, "length": n, "n_fraction": round(unknown[c], 6)}
                        for c, n in contigs.items()], ["contig", "length", "n_fraction"])
    log.info("reference %s: %d contigs, %d bp", fasta, len(contigs), sum(contigs.values()))
    return contigs


def read_contig_table(path: str | Path) -> dict[str, int]:
    """Read a table written by :func:`write_contig_table`."""
    return {r["contig"]: int(r["length"]) for r in read_tsv(path)}


def fetch(fasta: str | Path, contig: str, start: int = 0, end: int | None = None) -> str:
    """Upper-case sequence of ``contig[start:end]`` (0-based, half open)."""
    with pysam.FastaFile(str(fasta)) as fa:
        if contig not in fa.references:
            raise VoxseqError(f"reference FASTA {fasta}: no contig {contig!r}")
        return fa.fetch(contig, start, end).upper()
