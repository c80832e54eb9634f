"""Variant-effect scores: predicted coverage with the alt allele minus with the ref allele.

For each SNV, a model window is centred on the variant (clamped to the contig), the reference
and the alt sequence are predicted (averaged with the reverse strand), and the score of a track
is the sum of ``alt - ref`` over the ``variant_bins`` bins around the variant's bin. The
aggregated ``score`` is the mean over tracks; negative means the alt allele lowers coverage
(a broken motif). Indels, multi-base and symbolic alleles and REF alleles that disagree with the
reference are not scored: their row says why in ``status``.

Against a truth table (the demo's ``variant_truth.tsv``: ``contig``, ``pos``, ``ref``, ``alt``,
``class``, optionally a numeric ``effect``): the AUROC ranks ``|score|`` of the SNVs with an
effect (``EFFECT_CLASSES``) against ``neutral`` SNVs, so gains and losses both count, and the
Spearman correlation compares the signed ``score`` with the signed true ``effect`` over the scored
SNVs that have one (neutral ones included, effect 0). An older table without ``effect`` still
gives the AUROC; its Spearman is then undefined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pysam
from scipy.stats import spearmanr

from voxseq import VoxseqError
from voxseq.genomics.sequence import one_hot
from voxseq.io.atomic import read_tsv

log = logging.getLogger(__name__)

BASES = frozenset("ACGT")
EFFECT_CLASSES = ("motif_breaking", "motif_creating", "flank_gc")  # truth classes: effect != 0
NEGATIVE_CLASS = "neutral"


def read_variants(vcfs: dict[str, str | Path]) -> list[dict]:
    """Unique variants (one per contig, pos, ref, alt) over subjects' VCFs, with carriers.

    Parameters
    ----------
    vcfs
        Subject -> bgzipped, indexed VCF.

    Returns
    -------
    list of dict
        ``contig``, ``pos`` (1-based), ``id``, ``ref``, ``alt``, ``carriers`` (subjects whose
        genotype holds the alt allele, or every subject of a sites-only VCF), sorted by the
        order in which contigs first appear, then position.
    """
    found: dict[tuple, dict] = {}
    contig_order: dict[str, int] = {}
    for subject, path in sorted(vcfs.items()):
        try:
            vf = pysam.VariantFile(str(path))
        except (OSError, ValueError) as exc:
            raise VoxseqError(f"subject {subject}: VCF {path} cannot be read ({exc})") from exc
        with vf:
            samples = list(vf.header.samples)
            for rec in vf:
                contig_order.setdefault(rec.contig, len(contig_order))
                for k, alt in enumerate(rec.alts or (), start=1):
                    carried = not samples or any(
                        k in (rec.samples[s].get("GT") or ()) for s in samples)
                    key = (rec.contig, rec.pos, rec.ref, alt)
                    row = found.setdefault(key, {"contig": rec.contig, "pos": rec.pos,
                                                 "id": rec.id or "", "ref": rec.ref, "alt": alt,
                                                 "carriers": []})
                    if carried:
                        row["carriers"].append(subject)
    return sorted(found.values(), key=lambda r: (contig_order[r["contig"]], r["pos"], r["alt"]))


def check_variant(variant: dict, fasta: pysam.FastaFile) -> str:
    """``"ok"`` or the reason a variant cannot be scored."""
    ref, alt = variant["ref"].upper(), variant["alt"].upper()
    if len(ref) != 1 or len(alt) != 1 or alt not in BASES:
        return f"skipped: not an SNV ({variant['ref']}>{variant['alt']})"
    if variant["contig"] not in fasta.references:
        return f"skipped: contig {variant['contig']} not in the reference"
    base = fasta.fetch(variant["contig"], variant["pos"] - 1, variant["pos"]).upper()
    if base != ref:
        return f"skipped: REF {ref} does not match the reference base {base or '(none)'}"
    if ref == alt:
        return "skipped: ALT equals REF"
    return "ok"


def variant_window(pos0: int, length: int, window: int) -> int:
    """Start of the window centred on 0-based ``pos0``, clamped to ``[0, length - window]``."""
    return int(min(max(pos0 - window // 2, 0), max(length - window, 0)))


def score_variants(predict_fn: Callable[[np.ndarray], np.ndarray], reference: str | Path,
                   variants: list[dict], window: int, bin_size: int, variant_bins: int,
                   batch_size: int = 16) -> tuple[list[dict], np.ndarray]:
    """Score SNVs with a model.

    Parameters
    ----------
    predict_fn
        One-hot ``(N, window, 4)`` -> predictions ``(N, window // bin_size, T)`` in coverage
        units.
    reference
        The FASTA the model's windows come from.
    variants
        From :func:`read_variants`.
    window, bin_size
        The model's input length and output resolution.
    variant_bins
        Bins summed around the variant's bin (``variant_bins // 2`` each side, clipped).
    batch_size
        Variants per prediction call (each gives a ref and an alt sequence).

    Returns
    -------
    rows : list of dict
        The input dicts plus ``status`` and ``score`` (mean over tracks; NaN when skipped).
    scores : (n_variants, T) float64
        Per-track scores; NaN rows for skipped variants.
    """
    if variant_bins < 1:
        raise VoxseqError(f"genomics.infer.variant_bins must be >= 1, got {variant_bins}")
    rows = [dict(v) for v in variants]
    scores: np.ndarray | None = None
    with pysam.FastaFile(str(reference)) as fa:
        for r in rows:
            r["status"] = check_variant(r, fa)
        todo = [i for i, r in enumerate(rows) if r["status"] == "ok"]
        for b in range(0, len(todo), batch_size):
            part = todo[b:b + batch_size]
            seqs, centre_bins = [], []
            for i in part:
                r = rows[i]
                length = fa.get_reference_length(r["contig"])
                start = variant_window(r["pos"] - 1, length, window)
                ref_seq = one_hot(fa.fetch(r["contig"], start, start + window).upper())
                if len(ref_seq) < window:
                    ref_seq = np.concatenate([ref_seq, np.zeros((window - len(ref_seq), 4),
                                                                 ref_seq.dtype)])
                alt_seq = ref_seq.copy()
                off = r["pos"] - 1 - start
                alt_seq[off] = one_hot(r["alt"].upper())[0]
                seqs += [ref_seq, alt_seq]
                centre_bins.append(off // bin_size)
            pred = np.asarray(predict_fn(np.stack(seqs)), dtype=np.float64)
            if scores is None:
                scores = np.full((len(rows), pred.shape[-1]), np.nan)
            for j, i in enumerate(part):
                lo = max(centre_bins[j] - variant_bins // 2, 0)
                hi = min(lo + variant_bins, pred.shape[1])
                scores[i] = (pred[2 * j + 1, lo:hi] - pred[2 * j, lo:hi]).sum(axis=0)
    if scores is None:
        scores = np.full((len(rows), 0), np.nan)
    skipped = [r for r in rows if r["status"] != "ok"]
    if skipped:
        ex = "; ".join(f"{r['contig']}:{r['pos']} {r['ref']}>{r['alt']} {r['status']} "
                       f"(subjects {', '.join(r.get('carriers', [])[:3]) or '-'})"
                       for r in skipped[:3])
        log.warning("%d of %d variants not scored (e.g. %s)", len(skipped), len(rows), ex)
    for i, r in enumerate(rows):
        r["score"] = float(np.mean(scores[i])) if scores.shape[1] else float("nan")
    return rows, scores


def _read_truth_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"variant truth {path}: file not found")
    rows = read_tsv(path)
    missing = {"contig", "pos", "ref", "alt", "class"} - set(rows[0] if rows else {})
    if missing:
        raise VoxseqError(f"variant truth {path}: missing column(s) {sorted(missing)}")
    return rows


def read_truth_table(path: str | Path) -> tuple[dict[tuple, str], dict[tuple, float]]:
    """The truth TSV, read once: key -> ``class``, and key -> true ``effect`` for the rows that
    have one (empty for a table without the column). Keys are ``(contig, pos, ref, alt)``.

    A cell of ``effect`` that is not a finite number (other than empty) is an error naming the row.
    """
    classes, effects = {}, {}
    for r in _read_truth_rows(path):
        key = (r["contig"], int(r["pos"]), r["ref"], r["alt"])
        classes[key] = r["class"]
        cell = (r.get("effect") or "").strip()
        if not cell:
            continue
        try:
            value = float(cell)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise VoxseqError(f"variant truth {path}: effect {cell!r} of {r['contig']}:"
                              f"{r['pos']} {r['ref']}>{r['alt']} is not a finite number")
        effects[key] = value
    return classes, effects


def read_truth(path: str | Path) -> dict[tuple, str]:
    """Variant truth TSV (``contig``, ``pos``, ``ref``, ``alt``, ``class``) as key -> class."""
    return read_truth_table(path)[0]


def read_truth_effects(path: str | Path) -> dict[tuple, float]:
    """Key -> true ``effect`` of the rows that have one (:func:`read_truth_table`)."""
    return read_truth_table(path)[1]


def truth_labels(rows: list[dict], truth: dict[tuple, str],
                 positive: str | tuple[str, ...] = EFFECT_CLASSES,
                 negative: str = NEGATIVE_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Indices of scored variants with a positive/negative truth class, and their labels.

    ``positive`` is a class or a tuple of classes (default: every class with an effect).
    """
    positives = (positive,) if isinstance(positive, str) else tuple(positive)
    idx, labels = [], []
    for i, r in enumerate(rows):
        cls = truth.get((r["contig"], r["pos"], r["ref"], r["alt"]))
        if r["status"] == "ok" and (cls in positives or cls == negative):
            idx.append(i)
            labels.append(cls in positives)
    return np.array(idx, dtype=int), np.array(labels, dtype=bool)


def truth_effects(rows: list[dict], effects: dict[tuple, float]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of scored variants with a finite score and a true effect, and those effects."""
    idx, values = [], []
    for i, r in enumerate(rows):
        value = effects.get((r["contig"], r["pos"], r["ref"], r["alt"]))
        if r["status"] == "ok" and value is not None and np.isfinite(r["score"]):
            idx.append(i)
            values.append(value)
    return np.array(idx, dtype=int), np.array(values, dtype=float)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (ties share their mean rank); NaN under 3 pairs or a constant.

    Parameters
    ----------
    x, y : (n,) array
        Paired values, finite.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: needs two 1-D arrays of one length, got {x.shape} and "
                         f"{y.shape}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
