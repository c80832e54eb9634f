"""Genome windows: one-hot sequence plus per-bin targets of every track, in one HDF5 file.

Windows of ``window`` bp start every ``stride`` bp along each contig (the last partial one is
dropped); windows with more than ``max_n_fraction`` N are skipped. The split is by contig:
``val_contigs`` -> val, ``test_contigs`` -> test, every other contig -> train. Left out (None),
they are chosen from the reference's contig lengths by :func:`choose_contigs`: the largest
contig always trains; the next largest go to val until val holds ``AUTO_HELD_OUT`` (10 %) of
the genome's windows, the ones after them to test until test does. :func:`plan_splits` checks the
split against the reference's contig table (unknown contigs, a split left without a window) and
runs both at DAG-building time (workflow/rules/common.smk) and in the tile rule.

Writing is bounded in memory: a contig is read ``BLOCK_BP`` of sequence (and the matching
coverage bins of each track) at a time and its windows are appended to the datasets, so memory
does not grow with the genome (only the per-window index arrays do: 13 bytes a window).

HDF5 layout (chunked one window per chunk, for random window reads)::

    sequence  (N, window, 4)              uint8 one-hot, A C G T
    targets   (N, window / bin_size, T)   float32, normalised coverage, soft-clipped
    contig    (N,) int32 index into attrs["contigs"]; start (N,) int64; split (N,) uint8
    attrs     window, stride, bin_size, soft_clip, tracks, contigs (JSON), normalisation,
              library_sizes (JSON), splits (JSON names of the split codes), val_contigs,
              test_contigs (JSON, as used), warnings (JSON list of messages, see
              :func:`tile_warnings`)

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
from voxseq.genomics.sequence import as_bytes, known, one_hot
from voxseq.io.atomic import atomic_path

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
WINDOW_COLUMNS = ("index", "contig", "start", "end", "split", "n_fraction")
AUTO_HELD_OUT = 0.1  # share of the genome's windows each of test and val get when chosen
MIN_EVAL_WINDOWS = 20  # a val / test split under this many windows gets a warning
MIN_LIBRARY_READS = 1000  # a subject with fewer passing reads gets a warning
BLOCK_BP = 1 << 22  # sequence (bp) tiled at a time: 4 Mb, fewer with many tracks (below)
WRITE_BATCH = 256  # windows one-hot encoded and written at a time, fewer with many tracks
BLOCK_VALUES = 1 << 25  # coverage values (bins x tracks) of a block, and targets of a batch


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


def n_windows(length: int, window: int, stride: int) -> int:
    """Number of window starts on a contig of ``length`` bp (before any N skipping)."""
    return max(0, (length - window) // stride + 1)


def choose_contigs(lengths: dict[str, int], window: int, stride: int,
                   splits: Sequence[str] = ("val", "test"), share: float | None = None
                   ) -> dict[str, list[str]]:
    """Held-out contigs chosen from contig lengths alone (the reference's ``.fai``).

    Contigs with at least one window, largest first (FASTA order among equal lengths); the
    first always trains; the next go to the first of ``splits`` until it holds ``share``
    (``AUTO_HELD_OUT``) of all windows, the ones after to the next split until it does. So a
    human reference gives val chr2 + chr3 and test chr4 + chr5 (about 14 % and 12 % of the
    windows); with two contigs, the second validates and none is left for test.

    Returns
    -------
    dict
        Split -> contigs, in FASTA order.

    Raises
    ------
    VoxseqError
        When val is to be chosen and fewer than two contigs hold a window.
    """
    share = AUTO_HELD_OUT if share is None else share
    counts = {c: n_windows(n, window, stride) for c, n in lengths.items()}
    ranked = sorted((c for c in counts if counts[c]), key=lambda c: -counts[c])
    if "val" in splits and len(ranked) < 2:
        raise VoxseqError(f"genomics: cannot choose val_contigs: {len(ranked)} contig(s) hold a "
                          f"window of {window} bp, one of which must train; name them in the "
                          "config or use a smaller genomics.window")
    total, held = sum(counts.values()), {s: [] for s in splits}
    rest = iter(ranked[1:])
    for split in splits:
        for c in rest:
            held[split].append(c)
            if sum(counts[x] for x in held[split]) >= share * total:
                break
    order = list(lengths)
    return {s: sorted(cs, key=order.index) for s, cs in held.items()}


def assign_split(contigs: Sequence[str], val_contigs: Sequence[str],
                 test_contigs: Sequence[str], reference: str | Path | None = None
                 ) -> dict[str, str]:
    """Contig -> split; unknown or doubly assigned contigs raise with the offending names."""
    both = sorted(set(val_contigs) & set(test_contigs))
    if both:
        raise VoxseqError(f"genomics: contig(s) {both} are in both val_contigs and test_contigs")
    ref = f" {reference}" if reference else ""
    shown = ", ".join(list(contigs)[:20]) + (", ..." if len(contigs) > 20 else "")
    for key, names in (("val_contigs", val_contigs), ("test_contigs", test_contigs)):
        unknown = [c for c in names if c not in set(contigs)]
        if unknown:
            raise VoxseqError(f"genomics.{key}: contig(s) {unknown} are not in the "
                              f"reference{ref} (its contigs: {shown})")
    out = {c: "val" if c in val_contigs else "test" if c in test_contigs else "train"
           for c in contigs}
    if "train" not in out.values():
        raise VoxseqError("genomics: every contig is a val or test contig; none left to train on")
    return out


def plan_splits(lengths: dict[str, int], val_contigs: Sequence[str] | None,
                test_contigs: Sequence[str] | None, window: int, stride: int,
                reference: str | Path | None = None) -> dict[str, str]:
    """Contig -> split, checked against the reference's contig lengths.

    ``None`` contigs are chosen by :func:`choose_contigs`. Raises when a contig is unknown or
    when train, val or a named test split gets no window (counted from lengths, so before N
    skipping: the tile rule checks again with the real counts).
    """
    auto = [s for s, cs in (("val", val_contigs), ("test", test_contigs)) if cs is None]
    if auto:
        named = set(val_contigs or []) | set(test_contigs or [])
        chosen = choose_contigs({c: n for c, n in lengths.items() if c not in named}, window,
                                stride, auto)
        val_contigs = chosen.get("val", val_contigs)
        test_contigs = chosen.get("test", test_contigs)
        log.info("genomics: contigs chosen from the reference%s: %s",
                 f" {reference}" if reference else "", chosen)
    split_of = assign_split(list(lengths), val_contigs, test_contigs, reference)
    counts = dict.fromkeys(SPLITS, 0)
    for c, split in split_of.items():
        counts[split] += n_windows(lengths[c], window, stride)
    check_counts(counts, split_of, lengths, window, reference)
    return split_of


def check_counts(counts: dict[str, int], split_of: dict[str, str], lengths: dict[str, int],
                 window: int, reference: str | Path | None = None,
                 after_n: str = "") -> None:
    """Raise when train, val or a split named by contigs has no window."""
    for split in SPLITS:
        named = [c for c, s in split_of.items() if s == split]
        if counts[split] or not named:
            continue
        key = "val_contigs / test_contigs" if split == "train" else f"{split}_contigs"
        sizes = ", ".join(f"{c} {lengths[c]:,} bp" for c in named[:10])
        raise VoxseqError(f"genomics.{key}: the {split} split gets no window of {window} bp "
                          f"from the reference{f' {reference}' if reference else ''} ({sizes})"
                          f"{after_n}; choose larger contigs or a smaller genomics.window")
    if not counts["val"]:
        raise VoxseqError("genomics.val_contigs: empty; training needs a validation split")


def tile_warnings(counts: dict[str, int], library_sizes: dict[str, int],
                  normalisation: str) -> list[str]:
    """Messages for splits and tracks whose metrics mean little.

    A val or test split under ``MIN_EVAL_WINDOWS`` windows (its Pearson and early stopping
    rest on a handful of windows), and a subject with under ``MIN_LIBRARY_READS`` passing reads
    or under 1 % of the cohort's median (its CPM scale per read is in the thousands: a few
    reads make its whole track).
    """
    out = []
    for split in ("val", "test"):
        if 0 < counts.get(split, 0) < MIN_EVAL_WINDOWS:
            out.append(f"the {split} split has {counts[split]} windows (under "
                       f"{MIN_EVAL_WINDOWS}): its metrics rest on a handful of windows")
    sizes = np.array(list(library_sizes.values()), dtype=float)
    floor = max(MIN_LIBRARY_READS, 0.01 * float(np.median(sizes))) if len(sizes) else 0
    for subject, n in library_sizes.items():
        if n < floor:
            scale = f"; CPM scale {1e6 / n:,.0f} per read" if n > 0 and normalisation == "cpm" \
                else ""
            out.append(f"subject {subject}: {n:,} reads pass the filters (under {floor:,.0f}"
                       f"{scale}): its coverage track is mostly noise")
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
        starts, fracs = _block_windows(as_bytes(sequences[contig]), lengths[contig] - window + 1,
                                       window, stride, max_n_fraction)
        for start, frac in zip(starts.tolist(), fracs.tolist(), strict=True):
            rows.append({"index": len(rows), "contig": contig, "start": start,
                         "end": start + window, "split": split, "n_fraction": round(frac, 4)})
    return rows


def _block_windows(codes: np.ndarray, stop: int, window: int, stride: int,
                   max_n_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Kept window starts in ``range(0, stop, stride)`` (offsets into ``codes``, which must reach
    the last window's end) and their N fractions."""
    starts = np.arange(0, max(stop, 0), stride, dtype=np.int64)
    if not len(starts):
        return starts, np.zeros(0)
    csum = np.concatenate([[0], np.cumsum(~known(codes[:starts[-1] + window]), dtype=np.int64)])
    fracs = (csum[starts + window] - csum[starts]) / window
    keep = fracs <= max_n_fraction
    return starts[keep], fracs[keep]


def _store_attrs(path: str | Path) -> dict:
    """A coverage store's attributes (layout: :mod:`voxseq.genomics.coverage`), no track data."""
    if not Path(path).is_file():
        raise VoxseqError(f"coverage store {path}: file not found")
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
    attrs["contigs"] = json.loads(attrs["contigs"])
    return attrs


def _coverage_bins(paths: Sequence[str | Path], contig: str, b0: int, b1: int) -> np.ndarray:
    """``(b1 - b0, T)`` float32 normalised coverage bins of every track (one file at a time)."""
    out = np.empty((b1 - b0, len(paths)), dtype=np.float32)
    for k, path in enumerate(paths):
        with h5py.File(path, "r") as h5:
            out[:, k] = h5[contig]["track"][b0:b1]
    return out


def tile_genome(reference: str | Path, coverage: dict[str, str | Path], out_h5: str | Path,
                out_tsv: str | Path, window: int, stride: int, max_n_fraction: float,
                val_contigs: Sequence[str] | None, test_contigs: Sequence[str] | None,
                soft_clip_at: float | None, block_bp: int | None = None) -> dict:
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
        See the module docstring (None contigs: chosen from the reference).
    soft_clip_at
        Soft-clip threshold for targets (normalised units); ``None`` disables it.
    block_bp
        Sequence read at a time (default ``BLOCK_BP``, less when its coverage bins times the
        tracks pass ``BLOCK_VALUES``). Memory is about 10 bytes a base of a block, 4 bytes a
        coverage value (under 128 MB) and 13 bytes a window, however large the genome.

    Returns
    -------
    dict
        Window counts per split.
    """
    from voxseq.genomics.reference import read_contigs

    lengths = read_contigs(reference)
    tracks = sorted(coverage)
    if not tracks:
        raise VoxseqError("genomics tile: no coverage tracks given")
    paths = [coverage[t] for t in tracks]
    attrs = [_store_attrs(p) for p in paths]
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
    split_of = plan_splits(lengths, val_contigs, test_contigs, window, stride, reference)
    nb, nt = window // bin_size, len(tracks)
    block_bp = block_bp or min(BLOCK_BP, BLOCK_VALUES // nt * bin_size)
    block = max(stride, block_bp // stride * stride)
    batch = int(np.clip(BLOCK_VALUES // (nb * nt), 1, WRITE_BATCH))
    index = {"contig": [], "start": [], "split": []}
    n = 0
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5, \
            atomic_path(out_tsv) as tmp_tsv, open(tmp_tsv, "w") as tsv, \
            pysam.FastaFile(str(reference)) as fa:
        tsv.write("\t".join(WINDOW_COLUMNS) + "\n")
        seq_ds = h5.create_dataset("sequence", (0, window, 4), dtype="uint8",
                                   maxshape=(None, window, 4), chunks=(1, window, 4),
                                   compression="gzip", compression_opts=1)
        tgt_ds = h5.create_dataset("targets", (0, nb, nt), dtype="float32",
                                   maxshape=(None, nb, nt), chunks=(1, nb, nt),
                                   compression="gzip", compression_opts=1)
        for ci, (contig, length) in enumerate(lengths.items()):
            split = split_of[contig]
            for b0 in range(0, length - window + 1, block):
                end = min(b0 + block - stride + window, length)
                codes = as_bytes(fa.fetch(contig, b0, end).encode("ascii"))
                starts, fracs = _block_windows(codes, min(block, end - b0 - window + 1), window,
                                               stride, max_n_fraction)
                if not len(starts):
                    continue
                seq_ds.resize(n + len(starts), axis=0)
                tgt_ds.resize(n + len(starts), axis=0)
                first_bin = b0 // bin_size
                cov = _coverage_bins(paths, contig, first_bin,
                                     first_bin + int(starts[-1]) // bin_size + nb)
                cov = soft_clip(cov, soft_clip_at)
                views = np.lib.stride_tricks.sliding_window_view(codes, window)
                for i in range(0, len(starts), batch):
                    part = starts[i:i + batch]
                    seq_ds[n + i:n + i + len(part)] = one_hot(views[part])
                    bins = part[:, None] // bin_size + np.arange(nb)[None, :]
                    tgt_ds[n + i:n + i + len(part)] = cov[bins]
                tsv.writelines(
                    f"{n + k}\t{contig}\t{s}\t{s + window}\t{split}\t{round(f, 4):.6g}\n"
                    for k, (s, f) in enumerate(zip((starts + b0).tolist(), fracs.tolist(),
                                                   strict=True)))
                index["contig"].append(np.full(len(starts), ci, dtype=np.int32))
                index["start"].append(starts + b0)
                index["split"].append(np.full(len(starts), SPLITS.index(split), np.uint8))
                n += len(starts)
        if not n:
            raise VoxseqError(f"genomics tile: no window of {window} bp fits the reference "
                              f"{reference} (or all have > {max_n_fraction:.0%} N)")
        h5["contig"] = np.concatenate(index["contig"])
        h5["start"] = np.concatenate(index["start"])
        h5["split"] = np.concatenate(index["split"])
        counts = {s: int((h5["split"][()] == k).sum()) for k, s in enumerate(SPLITS)}
        check_counts(counts, split_of, lengths, window, reference,
                     after_n=f" once windows with > {max_n_fraction:.0%} N are skipped")
        library_sizes = {t: a["library_size"] for t, a in zip(tracks, attrs, strict=True)}
        warnings = tile_warnings(counts, library_sizes, attrs[0]["normalisation"])
        meta = {"window": window, "stride": stride, "bin_size": bin_size,
                "soft_clip": -1.0 if soft_clip_at is None else float(soft_clip_at),
                "max_n_fraction": max_n_fraction, "tracks": json.dumps(tracks),
                "contigs": json.dumps(lengths), "splits": json.dumps(SPLITS),
                "normalisation": attrs[0]["normalisation"], "reference": str(reference),
                "min_mapq": attrs[0]["min_mapq"], "exclude_flags": attrs[0]["exclude_flags"],
                "count_deletions": attrs[0]["count_deletions"],
                "library_sizes": json.dumps(library_sizes),
                "val_contigs": json.dumps([c for c, s in split_of.items() if s == "val"]),
                "test_contigs": json.dumps([c for c, s in split_of.items() if s == "test"]),
                "warnings": json.dumps(warnings)}
        for k, v in meta.items():
            h5.attrs[k] = v
    log.info("tiled %d windows of %d bp (stride %d) for %d tracks: %s", n, window, stride, nt,
             counts)
    for message in warnings:
        log.warning("%s", message)
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
    for k in ("val_contigs", "test_contigs", "warnings"):  # absent from older files
        meta[k] = json.loads(meta[k]) if k in meta else None if k != "warnings" else []
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
