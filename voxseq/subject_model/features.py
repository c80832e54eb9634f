"""Genomics subject features: one fixed-length vector per subject, standardised per fold.

Three blocks, each a :class:`FeatureTable` (subjects x named features), joined on the subjects
that have every block given (:func:`join_features`):

* ``qc_latent_<i>``: the genomics QC autoencoder's latent code of the subject's coarse coverage
  profile (:func:`qc_latent_codes`, through :func:`voxseq.genomics.qc.score_genomics_qc`);
* ``coverage_<region>``: ``log2(1 + mean normalised coverage)`` over the bins of each named set
  of regions, read from the coverage stores' library-size normalised ``track``
  (:func:`region_coverage`). The regions are the motif sites of the demo reference
  (:func:`demo_motif_regions`: one feature per motif, all its sites pooled) or of a BED file
  (:func:`read_regions_bed`), else coarse bins (:func:`coarse_bin_regions`);
* ``dosage_<variant>``: ALT dosages (0, 1, 2; NaN for a missing call) of selected variants from
  a (subjects x variants) matrix (:func:`dosage_features`).

:class:`Standardiser` centres and scales each feature with statistics of the training rows
only (missing values become the training mean, i.e. 0), so a validation subject never moves
the statistics its own prediction is standardised with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxseq import VoxseqError

log = logging.getLogger(__name__)


@dataclass
class FeatureTable:
    """Named features of subjects.

    Attributes
    ----------
    subjects : list of str
        Row order of ``values`` (unique).
    names : list of str
        Column order of ``values`` (unique).
    values : (N, F) float64
        NaN where a value is missing (e.g. a missing genotype call).
    """

    subjects: list[str]
    names: list[str]
    values: np.ndarray

    def __post_init__(self) -> None:
        self.subjects, self.names = list(self.subjects), list(self.names)
        self.values = np.asarray(self.values, dtype=np.float64).reshape(
            len(self.subjects), len(self.names)
        )
        for kind, items in (("subject", self.subjects), ("feature", self.names)):
            dup = sorted({x for x in items if items.count(x) > 1})
            if dup:
                raise VoxseqError(f"subject features: duplicate {kind}(s) {dup[:5]}")

    def rows(self, subjects: Sequence[str]) -> np.ndarray:
        """The values of ``subjects``, in that order: (len(subjects), F)."""
        index = {s: i for i, s in enumerate(self.subjects)}
        missing = [s for s in subjects if s not in index]
        if missing:
            raise VoxseqError(f"subject(s) {missing[:5]}: no features {self.names[:3]}...")
        return self.values[[index[s] for s in subjects]]

    def columns(self, names: Sequence[str], what: str = "cohort") -> FeatureTable:
        """The named features, in that order; refuse any that this table lacks."""
        index = {n: j for j, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise VoxseqError(
                f"{what}: missing feature(s) {missing[:10]}"
                + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            )
        return FeatureTable(self.subjects, list(names), self.values[:, [index[n] for n in names]])


def join_features(blocks: Sequence[FeatureTable]) -> FeatureTable:
    """Subjects present in every block (in the first block's order), columns side by side."""
    if not blocks:
        raise VoxseqError("subject features: no genomics feature block given")
    common = set(blocks[0].subjects).intersection(*(b.subjects for b in blocks[1:]))
    subjects = [s for s in blocks[0].subjects if s in common]
    dropped = sorted(set().union(*(b.subjects for b in blocks)) - common)
    if dropped:
        log.warning("genomics features: %d subject(s) lack a feature block: %s", len(dropped),
                    dropped[:10])
    return FeatureTable(
        subjects,
        [n for b in blocks for n in b.names],
        np.concatenate([b.rows(subjects) for b in blocks], axis=1),
    )


@dataclass
class Standardiser:
    """Per-feature centre and scale from training rows; missing values become 0 (the mean).

    Attributes
    ----------
    mean, scale : (F,) float64
        A feature with no spread (or no value) in the training rows gets scale 1 (and mean 0
        when it has no value at all).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, rows: Sequence[int] | None = None) -> Standardiser:
        """Statistics of ``values[rows]`` (all rows when None); (N, F) -> (F,) each."""
        train = np.asarray(values, np.float64)
        train = train if rows is None else train[np.asarray(rows, dtype=np.int64)]
        present = np.isfinite(train)
        count = present.sum(0)
        mean = np.where(count > 0, np.where(present, train, 0.0).sum(0) / np.maximum(count, 1), 0.0)
        sq = np.where(present, (train - mean) ** 2, 0.0).sum(0)
        std = np.sqrt(sq / np.maximum(count - 1, 1))
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(N, F) -> standardised (N, F) float64, missing values 0."""
        z = (np.asarray(values, np.float64) - self.mean) / self.scale
        return np.where(np.isfinite(z), z, 0.0)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardiser:
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64))


# ---- regions and coverage -------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """One interval (0-based, half-open) of a named set of regions."""

    name: str
    contig: str
    start: int
    end: int


def coarse_bin_regions(contigs: dict[str, int], bin_size: int) -> list[Region]:
    """Consecutive bins of ``bin_size`` bp over every contig, each its own region."""
    if bin_size < 1:
        raise VoxseqError(f"subject_model: region bin size must be positive, got {bin_size}")
    return [
        Region(f"{c}:{a}-{min(a + bin_size, n)}", c, a, min(a + bin_size, n))
        for c, n in contigs.items()
        for a in range(0, n, bin_size)
    ]


def read_regions_bed(path: str | Path) -> list[Region]:
    """Regions of a BED file (contig, start, end, optional name; ``#``/track lines skipped).
    Rows sharing a name are one set of regions (one feature)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        cols = line.split("\t")
        try:
            c, a, b = cols[0], int(cols[1]), int(cols[2])
        except (IndexError, ValueError) as exc:
            raise VoxseqError(f"regions {path} line {n}: not contig, start, end ({exc})") from exc
        if b <= a or a < 0:
            raise VoxseqError(f"regions {path} line {n}: empty or negative interval {a}-{b}")
        out.append(Region(cols[3] if len(cols) > 3 and cols[3] else f"{c}:{a}-{b}", c, a, b))
    if not out:
        raise VoxseqError(f"regions {path}: no intervals")
    return out


def demo_motif_regions(reference: str | Path, flank: int = 50, small: bool = False
                       ) -> list[Region]:
    """The demo reference's motif sites (every exact match, either strand), widened by
    ``flank`` bp each side, one set of regions per motif (``motif_<name>``)."""
    import pysam

    from voxseq.demo.genomics import SMALL, GenomicsDemoConfig, find_sites

    cfg = SMALL if small else GenomicsDemoConfig()
    out = []
    with pysam.FastaFile(str(reference)) as fasta:
        for c, n in zip(fasta.references, fasta.lengths, strict=True):
            for start, t in find_sites(fasta.fetch(c).upper(), cfg):
                name, motif, _ = cfg.motifs[t]
                end = min(start + len(motif) + flank, n)
                out.append(Region(f"motif_{name}", c, max(start - flank, 0), end))
    return out


def _region_bins(regions: Sequence[Region], contigs: dict[str, int], bin_size: int
                 ) -> dict[str, dict[str, np.ndarray]]:
    """Region name -> contig -> the (unique, sorted) bins its intervals overlap."""
    unknown = sorted({r.contig for r in regions} - set(contigs))
    if unknown:
        raise VoxseqError(f"subject_model regions: contig(s) {unknown} are not in the coverage "
                          f"stores (contigs {list(contigs)[:5]}...)")
    bins: dict[str, dict[str, list[np.ndarray]]] = {}
    for r in regions:
        last = min(math.ceil(r.end / bin_size), math.ceil(contigs[r.contig] / bin_size))
        bins.setdefault(r.name, {}).setdefault(r.contig, []).append(
            np.arange(r.start // bin_size, last))
    return {name: {c: np.unique(np.concatenate(v)) for c, v in by.items()}
            for name, by in bins.items()}


def region_coverage(stores: dict[str, str | Path], regions: Sequence[Region]) -> FeatureTable:
    """``coverage_<name>``: log2(1 + mean normalised coverage over each named set of regions).

    Parameters
    ----------
    stores
        Subject -> coverage store (:mod:`voxseq.genomics.coverage`); all with one bin size.
    regions
        The intervals; intervals sharing a name are pooled into one feature (their bins once).
    """
    from voxseq.genomics.qc import _store

    names = list(dict.fromkeys(r.name for r in regions))
    values, index, bin_size = np.zeros((len(stores), len(names))), None, None
    for i, (s, path) in enumerate(stores.items()):
        attrs, tracks = _store(s, path, "track")
        if bin_size is None:
            bin_size = int(attrs["bin_size"])
            index = _region_bins(regions, attrs["contigs"], bin_size)
        elif int(attrs["bin_size"]) != bin_size:
            raise VoxseqError(f"subject {s}: coverage store {path} has bin size "
                              f"{attrs['bin_size']}, the other subjects' {bin_size}")
        for j, name in enumerate(names):
            parts = [tracks[c][b[b < len(tracks[c])]] for c, b in index[name].items()]
            covered = np.concatenate(parts)
            values[i, j] = np.log2(1.0 + float(covered.mean())) if covered.size else np.nan
    return FeatureTable(list(stores), [f"coverage_{n}" for n in names], values)


def qc_latent_codes(stores: dict[str, str | Path], qc_bundle: str | Path) -> FeatureTable:
    """``qc_latent_<i>``: each subject's latent code under the genomics QC bundle (its coarse
    profile standardised as the bundle records, then encoded)."""
    from voxseq.genomics.qc import score_genomics_qc

    rows, _, codes, _ = score_genomics_qc(stores, str(qc_bundle), threshold=math.inf)
    subjects = [r["subject"] for r in rows]
    return FeatureTable(subjects, [f"qc_latent_{k}" for k in range(codes.shape[1])], codes)


def dosage_features(dosages: np.ndarray, subjects: Sequence[str], variants: Sequence[str],
                    selected: Sequence[str] | None = None) -> FeatureTable:
    """``dosage_<variant>``: ALT dosages of the ``selected`` variants (all when None).

    Parameters
    ----------
    dosages
        (subjects, variants) ALT allele counts in [0, 2]; NaN for a missing call.
    subjects, variants
        Row and column ids of ``dosages``.
    """
    d = np.asarray(dosages, dtype=np.float64)
    if d.shape != (len(subjects), len(variants)):
        raise VoxseqError(f"genotype dosages: shape {d.shape}, expected ({len(subjects)} "
                          f"subjects, {len(variants)} variants)")
    bad = np.isfinite(d) & ((d < 0) | (d > 2))
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise VoxseqError(f"subject {subjects[i]}: dosage {d[i, j]} of variant {variants[j]} "
                          "is outside [0, 2]")
    table = FeatureTable(subjects, [f"dosage_{v}" for v in variants], d)
    if selected is None:
        return table
    return table.columns([f"dosage_{v}" for v in selected], "genotype dosages")
