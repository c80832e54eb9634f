"""PLINK 1 binary genotype files (.bed/.bim/.fam), which plink2 reads with ``--bfile``.

The .bed is variant-major (magic ``6c 1b 01``), four samples a byte, low bits first, with the
2-bit codes 00 = A1/A1, 01 = missing, 10 = heterozygous, 11 = A2/A2. voxseq writes A1 = ALT and
A2 = REF in the .bim, so plink2 (which takes A2 as the provisional REF) tests ALT with
``--glm omit-ref``. The .bed holds hard calls: a dosage is rounded to the nearest integer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.genetics.genotypes import Genotypes
from voxseq.io.atomic import atomic_path, write_text

MAGIC = bytes([0x6C, 0x1B, 0x01])
# ALT count 0, 1, 2 -> code; missing -> 0b01
_CODE = np.array([0b11, 0b10, 0b00], dtype=np.uint8)
# code -> ALT count (NaN for missing)
_COUNT = np.array([2.0, np.nan, 1.0, 0.0], dtype=np.float32)


def encode_bed(dosage: np.ndarray) -> np.ndarray:
    """Packed .bed bytes (M, ceil(N / 4)) uint8 of a (M, N) dosage (NaN missing)."""
    m, n = dosage.shape
    h = np.rint(np.nan_to_num(dosage, nan=-1.0)).astype(np.int8)
    codes = np.where(h < 0, 0b01, _CODE[np.clip(h, 0, 2)]).astype(np.uint8)
    pad = (-n) % 4
    if pad:
        codes = np.concatenate([codes, np.zeros((m, pad), np.uint8)], axis=1)
    c = codes.reshape(m, -1, 4)
    return c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)


def decode_bed(packed: np.ndarray, n: int) -> np.ndarray:
    """(M, n) float32 ALT counts (NaN missing) from packed .bed rows (M, ceil(n / 4))."""
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    codes = (packed[..., None] >> shifts) & 0b11
    return _COUNT[codes.reshape(packed.shape[0], 4 * packed.shape[1])[:, :n]]


def write_bed(prefix: str | Path, geno: Genotypes, chunk: int = 65536) -> None:
    """Write ``<prefix>.bed/.bim/.fam`` (FID = IID = subject; sex, parents, phenotype unknown)."""
    prefix = str(prefix)
    with atomic_path(prefix + ".bed") as tmp, open(tmp, "wb") as fh:
        fh.write(MAGIC)
        for i in range(0, len(geno.pos), chunk):
            fh.write(encode_bed(geno.dosage[i:i + chunk]).tobytes())
    bim = [f"{c}\t{v}\t0\t{p}\t{a}\t{r}" for c, v, p, a, r in
           zip(geno.chrom, geno.ids, geno.pos, geno.alt, geno.ref, strict=True)]
    write_text(prefix + ".bim", "".join(line + "\n" for line in bim))
    write_text(prefix + ".fam", "".join(f"{s}\t{s}\t0\t0\t0\t-9\n" for s in geno.samples))


def read_bed(prefix: str | Path, start: int = 0, stop: int | None = None) -> Genotypes:
    """Read ``<prefix>.bed/.bim/.fam`` (variant-major; A1 taken as ALT, A2 as REF).

    ``start``/``stop`` read only that range of variants (the .bed is memory-mapped: a cohort
    larger than memory is read block by block).
    """
    prefix = str(prefix)
    fam = [line.split() for line in Path(prefix + ".fam").read_text().splitlines() if line]
    bim = [line.split() for line in Path(prefix + ".bim").read_text().splitlines() if line]
    n, m = len(fam), len(bim)
    stop = m if stop is None else min(stop, m)
    dosage = read_bed_dosage(prefix, n, m, slice(start, stop))
    col = list(zip(*bim[start:stop], strict=True)) if stop > start else [()] * 6
    return Genotypes([f[1] for f in fam], np.array(col[0], dtype=object),
                     np.array(col[3], dtype=np.int64), np.array(col[5], dtype=object),
                     np.array(col[4], dtype=object), dosage, np.array(col[1], dtype=object))


def read_bed_dosage(prefix: str | Path, n: int, m: int, rows: slice | np.ndarray) -> np.ndarray:
    """ALT counts (len(rows), n) float32 (NaN missing) of the variants ``rows`` (a slice or
    indices) of a .bed holding ``m`` variants x ``n`` samples; only those rows are read."""
    path = f"{prefix}.bed"
    width = (n + 3) // 4
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw[:3].tobytes() != MAGIC or raw.size != 3 + m * width:
        raise VoxseqError(f"PLINK file {path}: not a variant-major .bed for {m} variants "
                          f"x {n} samples ({raw.size} bytes)")
    block = np.asarray(raw[3:].reshape(m, width)[rows])
    return decode_bed(block.reshape(-1, width), n)
