"""Genome windows: one-hot sequence plus per-bin targets of every track, in one HDF5 file.

Windows of ``window`` bp start every ``stride`` bp along each contig (the last partial one is
dropped); windows with more than ``max_n_fraction`` N are skipped. The split is by contig:
``val_contigs`` -> val, ``test_contigs`` -> test, every other contig -> train.

HDF5 layout (chunked one window per chunk, for random window reads)::

    sequence  (N, window, 4)              uint8 one-hot, A C G T
    targets   (N, window / bin_size, T)   float32, normalised coverage, soft-clipped
    contig    (N,) int32 index into attrs["contigs"]; start (N,) int64; split (N,) uint8
    attrs     window, stride, bin_size, soft_clip, tracks, contigs (JSON), normalisation,
              library_sizes (JSON), splits (JSON names of the split codes)

The window table (``contig``, ``start``, ``end``, ``split``, ``n_fraction``) goes beside it as TSV.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pysam

from voxseq import VoxseqError
from voxseq.genomics.sequence import as_bytes, one_hot
from voxseq.io.atomic import atomic_path, write_tsv

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
WINDOW_COLUMNS = ("index", "contig", "start", "end", "split", "n_fraction")


def soft_clip(x: np.ndarray, clip: float | None) -> np.ndarray:
    """Basenji's soft clip: values above ``clip`` become ``clip + sqrt(x - clip)``."""
    if clip is None:
        return x
    x = np.asarray(x, dtype=np.float32)
    return np.where(x > clip, clip + np.sqrt(np.maximum(x - clip, 0.0)), x).astype(np.float32)


def unclip(y: np.ndarray, clip: float | None) -> np.ndarray:
    """Inverse of :func:`soft_clip` (back to normalised coverage)."""
    if clip is None:
        return y
    y = np.asarray(y, dtype=np.float32)
    return np.where(y > clip, clip + (y - clip) ** 2, y).astype(np.float32)


def check_geometry(window: int, stride: int, bin_size: int) -> None:
    """Window and stride must be positive multiples of the bin size."""
    for name, v in (("window", window), ("stride", stride)):
        if v < bin_size or v % bin_size:
            raise VoxseqError(f"genomics.{name} = {v} must be a positive multiple of "
                              f"genomics.bin_size = {bin_size}")


def assign_split(contigs: Sequence[str], val_contigs: Sequence[str],
                 test_contigs: Sequence[str]) -> dict[str, str]:
    """Contig -> split; unknown or doubly assigned contigs raise with the offending names."""
    both = sorted(set(val_contigs) & set(test_contigs))
    if both:
        raise VoxseqError(f"genomics: contig(s) {both} are in both val_contigs and test_contigs")
    unknown = sorted((set(val_contigs) | set(test_contigs)) - set(contigs))
    if unknown:
        raise VoxseqError(f"genomics: val/test contig(s) {unknown} are not in the reference "
                          f"(contigs: {list(contigs)[:20]})")
    out = {c: "val" if c in val_contigs else "test" if c in test_contigs else "train"
           for c in contigs}
    if "train" not in out.values():
        raise VoxseqError("genomics: every contig is a val or test contig; none left to train on")
    return out


def window_table(contigs: dict[str, str], lengths: dict[str, int], sequences: dict[str, bytes],
                 window: int, stride: int, max_n_fraction: float) -> list[dict]:
    """Windows over every contig as dict rows (see ``WINDOW_COLUMNS``), N-heavy ones skipped.

    Parameters
    ----------
    contigs
        contig -> split.
    sequences
        contig -> sequence (bytes) used to count N.
    """
    rows = []
    for contig, split in contigs.items():
        length = lengths[contig]
        is_n = ~one_hot(sequences[contig]).any(axis=-1)
        csum = np.concatenate([[0], np.cumsum(is_n)])
        for start in range(0, length - window + 1, stride):
            frac = float(csum[start + window] - csum[start]) / window
            if frac > max_n_fraction:
                continue
            rows.append({"index": len(rows), "contig": contig, "start": start,
                         "end": start + window, "split": split, "n_fraction": round(frac, 4)})
    return rows


def tile_genome(reference: str | Path, coverage: dict[str, str | Path], out_h5: str | Path,
                out_tsv: str | Path, window: int, stride: int, max_n_fraction: float,
                val_contigs: Sequence[str], test_contigs: Sequence[str],
                soft_clip_at: float | None) -> dict:
    """Write the windows HDF5 and TSV from the reference and each track's coverage store.

    Parameters
    ----------
    reference
        The cohort FASTA.
    coverage
        Track name (subject) -> coverage store from :func:`voxseq.genomics.coverage.
        compute_coverage`; all must share the bin size and the reference's contigs.
    out_h5, out_tsv
        Outputs, written atomically.
    window, stride, max_n_fraction, val_contigs, test_contigs
        See the module docstring.
    soft_clip_at
        Soft-clip threshold for targets (normalised units); ``None`` disables it.

    Returns
    -------
    dict
        Window counts per split.
    """
    from voxseq.genomics.coverage import read_coverage
    from voxseq.genomics.reference import read_contigs

    lengths = read_contigs(reference)
    tracks = sorted(coverage)
    if not tracks:
        raise VoxseqError("genomics tile: no coverage tracks given")
    attrs = [read_coverage(coverage[t])[0] for t in tracks]
    bin_size = int(attrs[0]["bin_size"])
    for t, a in zip(tracks, attrs, strict=True):
        if int(a["bin_size"]) != bin_size or a["normalisation"] != attrs[0]["normalisation"]:
            raise VoxseqError(f"subject {t}: coverage store {coverage[t]} has bin size "
                              f"{a['bin_size']} / {a['normalisation']}, others {bin_size} / "
                              f"{attrs[0]['normalisation']}")
        if a["contigs"] != lengths:
            raise VoxseqError(f"subject {t}: coverage store {coverage[t]} was made on other "
                              f"contigs than reference {reference}")
    check_geometry(window, stride, bin_size)
    split_of = assign_split(list(lengths), val_contigs, test_contigs)
    rows: list[dict] = []
    with pysam.FastaFile(str(reference)) as fa:  # one contig in memory at a time
        for contig in lengths:
            seq = {contig: fa.fetch(contig).upper().encode("ascii")}
            rows += window_table({contig: split_of[contig]}, lengths, seq, window, stride,
                                 max_n_fraction)
    for i, row in enumerate(rows):
        row["index"] = i
    if not rows:
        raise VoxseqError(f"genomics tile: no window of {window} bp fits the reference "
                          f"{reference} (or all have > {max_n_fraction:.0%} N)")
    n, nb, nt = len(rows), window // bin_size, len(tracks)
    contig_index = {c: i for i, c in enumerate(lengths)}
    fa = pysam.FastaFile(str(reference))
    with fa, atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        seq_ds = h5.create_dataset("sequence", (n, window, 4), dtype="uint8",
                                   chunks=(1, window, 4), compression="gzip", compression_opts=1)
        tgt_ds = h5.create_dataset("targets", (n, nb, nt), dtype="float32",
                                   chunks=(1, nb, nt), compression="gzip", compression_opts=1)
        h5["contig"] = np.array([contig_index[r["contig"]] for r in rows], dtype=np.int32)
        h5["start"] = np.array([r["start"] for r in rows], dtype=np.int64)
        h5["split"] = np.array([SPLITS.index(r["split"]) for r in rows], dtype=np.uint8)
        for contig in lengths:
            idx = np.array([r["index"] for r in rows if r["contig"] == contig])
            if not len(idx):
                continue
            cov = np.stack([read_coverage(coverage[t], contig)[1][contig] for t in tracks], -1)
            cov = soft_clip(cov, soft_clip_at)
            seq = as_bytes(fa.fetch(contig).upper().encode("ascii"))
            for part in np.array_split(idx, -(-len(idx) // 256)):
                starts = np.array([rows[i]["start"] for i in part])
                offsets = starts[:, None] + np.arange(window)[None, :]
                seq_ds[part[0]:part[-1] + 1] = one_hot(seq[offsets])
                bins = starts[:, None] // bin_size + np.arange(nb)[None, :]
                tgt_ds[part[0]:part[-1] + 1] = cov[bins]
        meta = {"window": window, "stride": stride, "bin_size": bin_size,
                "soft_clip": -1.0 if soft_clip_at is None else float(soft_clip_at),
                "max_n_fraction": max_n_fraction, "tracks": json.dumps(tracks),
                "contigs": json.dumps(lengths), "splits": json.dumps(SPLITS),
                "normalisation": attrs[0]["normalisation"], "reference": str(reference),
                "min_mapq": attrs[0]["min_mapq"], "exclude_flags": attrs[0]["exclude_flags"],
                "count_deletions": attrs[0]["count_deletions"],
                "library_sizes": json.dumps({t: a["library_size"]
                                             for t, a in zip(tracks, attrs, strict=True)})}
        for k, v in meta.items():
            h5.attrs[k] = v
    write_tsv(out_tsv, rows, WINDOW_COLUMNS)
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    log.info("tiled %d windows of %d bp (stride %d) for %d tracks: %s", n, window, stride, nt,
             counts)
    return counts


def read_meta(path: str | Path) -> dict:
    """Attributes of a windows HDF5 file, JSON fields decoded, ``soft_clip`` None when off."""
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"windows file {path}: not found")
    with h5py.File(path, "r") as h5:
        meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
    for k in ("tracks", "contigs", "splits", "library_sizes"):
        meta[k] = json.loads(meta[k])
    meta["soft_clip"] = None if meta["soft_clip"] < 0 else meta["soft_clip"]
    return meta


def split_indices(path: str | Path, split: str) -> np.ndarray:
    """Sorted window indices of one split."""
    with h5py.File(path, "r") as h5:
        return np.flatnonzero(h5["split"][()] == SPLITS.index(split))


def read_windows(h5: h5py.File, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-hot ``(n, window, 4)`` uint8 and targets ``(n, bins, T)`` float32 of some windows.

    ``indices`` may be in any order and repeat; the reads are done in sorted order.
    """
    indices = np.asarray(indices)
    uniq, inverse = np.unique(indices, return_inverse=True)
    seq = h5["sequence"][uniq]
    tgt = h5["targets"][uniq]
    return seq[inverse], tgt[inverse]
