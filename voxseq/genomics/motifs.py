"""Motif discovery from attributions: seqlets called and clustered into motifs, motifs trimmed,
written and read as MEME, and matched against known (planted) motif cores.

The method is TF-MoDISco's outline, kept small enough to run in a second on a CPU:

1. seqlets (:func:`call_seqlets`): peaks of the per-position contribution (hypothetical
   contribution at the observed base) summed over a motif-sized core, above ``z`` robust standard
   deviations of all such sums, taken greedily with non-maximum suppression; positive and
   negative seqlets apart;
2. clustering (:func:`cluster_seqlets`): greedy seed-and-align: the strongest free seqlet seeds a
   pattern, every free seqlet is aligned to it (Pearson correlation of hypothetical
   contributions, best strand and shift) and joins above a similarity; the pattern is re-averaged
   and the alignment repeated; a large enough cluster is a motif (PPM: aligned base frequencies;
   CWM: mean aligned contribution);
3. trimming (:func:`trim_motif`): to the positions whose summed absolute CWM is at least
   ``trim_threshold`` (0.3) of its largest, first to last (as tfmodisco-lite's report trims).

tfmodisco-lite 3.0.0 (``modisco-lite`` on PyPI) installs here and, on the same attributions of
the demo's test windows, finds the same three planted motifs, but took 21 s of CPU with its numba
kernels already compiled (importing scikit-learn, igraph and leidenalg; the Leiden runs) against
0.2 s here, with a rule budget of about 45 s in the demo; this module needs numpy only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from voxseq import VoxseqError
from voxseq.io.atomic import write_text

log = logging.getLogger(__name__)

ALPHABET = "ACGT"
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass
class Motif:
    """A discovered motif: ``ppm`` and ``cwm`` ``(w, 4)`` in A, C, G, T order."""

    name: str
    ppm: np.ndarray
    cwm: np.ndarray | None = None
    n_sites: int = 0

    @property
    def consensus(self) -> str:
        return consensus(self.ppm)


def consensus(ppm: np.ndarray) -> str:
    """The most probable base at each position of a ``(w, 4)`` matrix."""
    return "".join(ALPHABET[i] for i in np.asarray(ppm).argmax(1))


def revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def trim_motif(motif: Motif, threshold: float = 0.3) -> Motif:
    """Motif cut to its first..last position whose summed ``|cwm|`` (information content
    when there is no CWM) is at least ``threshold`` of the largest."""
    if motif.cwm is not None:
        score = np.abs(motif.cwm).sum(1)
    else:
        p = np.clip(motif.ppm, 1e-9, 1)
        score = 2 + (p * np.log2(p)).sum(1)
    if len(score) == 0 or score.max() <= 0:
        return motif
    keep = np.flatnonzero(score >= threshold * score.max())
    s = slice(int(keep[0]), int(keep[-1]) + 1)
    return Motif(motif.name, motif.ppm[s], None if motif.cwm is None else motif.cwm[s],
                 motif.n_sites)


def hamming_to_core(motif_consensus: str, core: str) -> tuple[int, str, int]:
    """Best match of a known core against a motif's consensus, either strand, any offset.

    The distance counts the core's positions that differ from the consensus or that fall
    outside it (so a motif shorter than the core cannot match it perfectly); a longer motif
    matches on its best ``len(core)`` positions.

    Returns
    -------
    tuple
        ``(distance, strand, offset)``: strand ``"+"`` or ``"-"`` (the core's reverse complement
        matched), offset of the core's first base in the consensus (may be negative).
    """
    best = (len(core), "+", 0)
    for strand, seq in (("+", core), ("-", revcomp(core))):
        for off in range(-len(seq) + 1, len(motif_consensus)):
            d = sum(1 for j, b in enumerate(seq)
                    if not 0 <= off + j < len(motif_consensus) or motif_consensus[off + j] != b)
            if d < best[0]:
                best = (d, strand, off)
    return best


def match_planted(motifs: Sequence[Motif], planted: Iterable[tuple[str, str]],
                  max_distance: int = 1) -> list[dict]:
    """For each planted ``(name, core)``: the discovered motif whose consensus is nearest.

    Returns
    -------
    list of dict
        One per planted motif: ``planted``, ``core``, ``motif`` (best motif's name, None when
        there is none), ``consensus``, ``distance`` (Hamming, :func:`hamming_to_core`),
        ``strand``, ``offset``, ``recovered`` (``distance <= max_distance``). Ties go to the
        motif listed first (tfmodisco-lite lists patterns by decreasing number of seqlets).
    """
    out = []
    for name, core in planted:
        core = core.upper()
        row = {"planted": name, "core": core, "motif": None, "consensus": None,
               "distance": len(core), "strand": None, "offset": None, "recovered": False}
        for m in motifs:
            d, strand, off = hamming_to_core(m.consensus, core)
            if d < row["distance"]:
                row.update(motif=m.name, consensus=m.consensus, distance=d, strand=strand,
                           offset=off)
        row["recovered"] = row["motif"] is not None and row["distance"] <= max_distance
        out.append(row)
    return out


# ---- MEME ------------------------------------------------------------------------------------
def format_meme(motifs: Sequence[Motif], background: Sequence[float] | None = None) -> str:
    """Motifs as MEME minimal format (version 4), one letter-probability matrix each."""
    bg = np.full(4, 0.25) if background is None else np.asarray(background, float)
    if bg.shape != (4,) or np.any(bg < 0) or not np.isclose(bg.sum(), 1):
        raise ValueError(f"meme: background must be 4 frequencies summing to 1, got {bg}")
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies",
             " ".join(f"{b} {f:.4f}" for b, f in zip(ALPHABET, bg, strict=True)), ""]
    for m in motifs:
        if not re.fullmatch(r"\S+", m.name):
            raise ValueError(f"meme: motif name {m.name!r} must be one word")
        p = np.clip(np.asarray(m.ppm, float), 0, None)
        if p.ndim != 2 or p.shape[1] != 4 or len(p) == 0:
            raise ValueError(f"meme: motif {m.name}: matrix must be (w, 4), got {p.shape}")
        p = p / np.where(p.sum(1, keepdims=True) > 0, p.sum(1, keepdims=True), 1)
        lines += [f"MOTIF {m.name}",
                  f"letter-probability matrix: alength= 4 w= {len(p)} nsites= {max(m.n_sites, 1)}"
                  " E= 0"]
        lines += [" ".join(f"{v:.6f}" for v in row) for row in p]
        lines.append("")
    return "\n".join(lines)


def write_meme(path: str | Path, motifs: Sequence[Motif],
               background: Sequence[float] | None = None) -> None:
    """Write :func:`format_meme` atomically."""
    write_text(path, format_meme(motifs, background))


def read_meme(path: str | Path) -> list[Motif]:
    """Motifs of a MEME (minimal or full) text file: name, letter-probability matrix, nsites.

    Raises
    ------
    VoxseqError
        When the file has no ``MEME version`` line, an alphabet other than ACGT, or a matrix
        whose rows do not match its header (``w=``, 4 columns, each summing to 1).
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if not any(ln.startswith("MEME version") for ln in lines):
        raise VoxseqError(f"MEME file {path}: no 'MEME version' line")
    motifs, name, i = [], None, 0
    while i < len(lines):
        ln = lines[i].strip()
        if ln.startswith("ALPHABET") and ln.split("=", 1)[1].strip() != ALPHABET:
            raise VoxseqError(f"MEME file {path}: alphabet {ln!r}, expected ACGT")
        if ln.startswith("MOTIF"):
            parts = ln.split()
            if len(parts) < 2:
                raise VoxseqError(f"MEME file {path}, line {i + 1}: MOTIF without a name")
            name = parts[1]
        elif ln.startswith("letter-probability matrix"):
            if name is None:
                raise VoxseqError(f"MEME file {path}, line {i + 1}: matrix before any MOTIF")
            head = dict(re.findall(r"(\w+)=\s*(\S+)", ln))
            w = int(head.get("w", 0))
            rows = []
            for j in range(i + 1, i + 1 + w):
                vals = lines[j].split() if j < len(lines) else []
                if len(vals) != 4:
                    raise VoxseqError(f"MEME file {path}, line {j + 1}: motif {name}: expected "
                                      f"4 probabilities, got {vals}")
                rows.append([float(v) for v in vals])
            ppm = np.asarray(rows, float).reshape(-1, 4)
            if w == 0 or not np.allclose(ppm.sum(1), 1, atol=1e-3):
                raise VoxseqError(f"MEME file {path}: motif {name}: rows must sum to 1 (w={w})")
            motifs.append(Motif(name, ppm, None, int(float(head.get("nsites", 0)))))
            name, i = None, i + w
        i += 1
    return motifs


# ---- discovery -------------------------------------------------------------------------------
@dataclass
class Seqlets:
    """Seqlets of one sign: ``(S, W + 2 * shift, 4)`` one-hot and hypothetical contributions
    around each seqlet's centre, its window and centre, and its strength (summed contribution
    over the core, absolute)."""

    onehot: np.ndarray
    hypothetical: np.ndarray
    window: np.ndarray
    centre: np.ndarray
    strength: np.ndarray


def call_seqlets(onehot: np.ndarray, hypothetical: np.ndarray, *, core: int = 10,
                 flank: int = 5, z: float = 4.0) -> tuple[Seqlets, Seqlets, float]:
    """Seqlets: peaks of the contribution summed over ``core`` bp.

    The contribution of a position is its hypothetical contribution at the observed base. Its
    ``core``-bp running sum is compared with ``z`` robust standard deviations (1.4826 x MAD) of
    all running sums; peaks above it (or below minus it) are taken greedily, strongest first,
    each suppressing ``core // 2 + flank`` bp either side. Each seqlet keeps ``core + 2 * flank``
    bp plus ``flank`` more each side for alignment (seqlets too close to a window edge for that
    are dropped).

    Returns
    -------
    tuple
        Positive seqlets, negative seqlets, the threshold.
    """
    contrib = (hypothetical * onehot).sum(-1)
    box = np.stack([np.convolve(c, np.ones(core), mode="same") for c in contrib])
    med = np.median(box)
    threshold = float(z * 1.4826 * np.median(np.abs(box - med)))
    half, width = core // 2 + flank, core + 4 * flank
    picked: dict[int, list[tuple[int, int, float]]] = {1: [], -1: []}
    for i, row in enumerate(box):
        cand = np.flatnonzero(np.abs(row) > threshold)
        taken = np.zeros(len(row), bool)
        for p in cand[np.argsort(-np.abs(row[cand]), kind="stable")]:
            if taken[p]:
                continue
            taken[max(p - half, 0):p + half] = True
            lo = p - width // 2
            if lo >= 0 and lo + width <= len(row):
                picked[int(np.sign(row[p]))].append((i, int(p), float(abs(row[p]))))

    def gather(rows: list[tuple[int, int, float]]) -> Seqlets:
        idx = np.array([r[0] for r in rows], int)
        cen = np.array([r[1] for r in rows], int)
        take = (cen - width // 2)[:, None] + np.arange(width)
        return Seqlets(onehot[idx[:, None], take].astype(np.float32).reshape(-1, width, 4),
                       hypothetical[idx[:, None], take].astype(np.float32).reshape(-1, width, 4),
                       idx, cen, np.array([r[2] for r in rows], float))

    return gather(picked[1]), gather(picked[-1]), threshold


def _best_alignment(pattern: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Pearson correlation of a ``(W, 4)`` pattern with every ``W``-bp stretch of each seqlet
    ``x`` ``(S, W + 2m, 4)``, either strand: best ``(similarity, strand, shift)`` per seqlet
    (strand 1: the seqlet's reverse complement)."""
    w = len(pattern)
    both = np.stack([x, x[:, ::-1, ::-1]])  # (2, S, W + 2m, 4)
    views = sliding_window_view(both, w, axis=2)  # (2, S, shifts, 4, W)
    views = views.transpose(0, 1, 2, 4, 3).reshape(2, len(x), -1, w * 4)
    views = views - views.mean(-1, keepdims=True)
    p = pattern.reshape(-1) - pattern.mean()
    corr = (views @ p) / (np.linalg.norm(views, axis=-1) * np.linalg.norm(p) + 1e-12)
    flat = corr.transpose(1, 0, 2).reshape(len(x), -1)
    best = flat.argmax(1)
    return flat.max(1), best // corr.shape[2], best % corr.shape[2]


def _aligned(x: np.ndarray, strand: np.ndarray, shift: np.ndarray, w: int) -> np.ndarray:
    """The ``w``-bp stretch of each seqlet at its strand and shift: ``(S, w, 4)``."""
    rc = np.where(strand[:, None, None] == 1, x[:, ::-1, ::-1], x)
    take = shift[:, None] + np.arange(w)
    return np.take_along_axis(rc, take[:, :, None], axis=1)


def cluster_seqlets(seqlets: Seqlets, prefix: str, *, flank: int = 5, similarity: float = 0.6,
                    min_seqlets: int = 20, max_motifs: int = 10, max_seeds: int = 30
                    ) -> list[Motif]:
    """Greedy seed-and-align clustering of seqlets into motifs.

    The strongest unclustered seqlet seeds a pattern (its central ``W`` bp of hypothetical
    contributions); every unclustered seqlet is aligned to it (best Pearson correlation over
    both strands and shifts of up to ``flank`` bp) and those at ``similarity`` or more join; the
    pattern becomes the mean of the aligned members and the alignment is repeated (3 rounds).
    A cluster of ``min_seqlets`` or more is a motif: PPM = base frequencies of the aligned
    members, CWM = their mean contribution (hypothetical x one-hot); its members leave the pool.
    A smaller one only drops its seed. Stops after ``max_motifs`` motifs or ``max_seeds`` seeds.
    """
    w = seqlets.onehot.shape[1] - 2 * flank
    pool = np.argsort(-seqlets.strength, kind="stable")
    motifs: list[Motif] = []
    for _ in range(max_seeds):
        if len(pool) < min_seqlets or len(motifs) >= max_motifs:
            break
        pattern = seqlets.hypothetical[pool[0], flank:flank + w]
        member = np.zeros(len(pool), bool)
        for _round in range(3):
            sim, strand, shift = _best_alignment(pattern, seqlets.hypothetical[pool])
            member = sim >= similarity
            member[0] = True  # the seed (a pattern from few seqlets may drift off it)
            pattern = _aligned(seqlets.hypothetical[pool[member]], strand[member],
                               shift[member], w).mean(0)
        if member.sum() >= min_seqlets:
            oh = _aligned(seqlets.onehot[pool[member]], strand[member], shift[member], w)
            hyp = _aligned(seqlets.hypothetical[pool[member]], strand[member], shift[member], w)
            motifs.append(Motif(f"{prefix}_{len(motifs)}", oh.mean(0), (hyp * oh).mean(0),
                                int(member.sum())))
            pool = pool[~member]
        else:
            pool = pool[1:]
    return motifs


def discover_motifs(onehot: np.ndarray, hypothetical: np.ndarray, *, core: int = 10,
                    flank: int = 5, z: float = 4.0, similarity: float = 0.6,
                    min_seqlets: int = 20, max_motifs: int = 10,
                    trim_threshold: float = 0.3, min_width: int = 5) -> list[Motif]:
    """Motifs of the attributions: :func:`call_seqlets`, then :func:`cluster_seqlets` per sign,
    each motif trimmed (:func:`trim_motif`); a motif under ``min_width`` bp after trimming (a
    single strong base) is dropped.

    Parameters
    ----------
    onehot, hypothetical
        ``(N, L, 4)`` one-hot sequences and hypothetical contributions (centred gradients).

    Returns
    -------
    list of Motif
        ``pos_<k>`` motifs (raise the scalar), then ``neg_<k>`` (lower it), each sign in the
        order found (largest cluster first, as a rule).
    """
    oh = np.asarray(onehot, dtype=np.float32)
    hyp = np.asarray(hypothetical, dtype=np.float32)
    if oh.shape != hyp.shape or oh.ndim != 3 or oh.shape[2] != 4:
        raise ValueError(f"motifs: one-hot {oh.shape} and hypothetical {hyp.shape} must both "
                         "be (N, L, 4)")
    pos, neg, threshold = call_seqlets(oh, hyp, core=core, flank=flank, z=z)
    log.info("seqlets: %d positive, %d negative (|%d-bp contribution| > %.4g)",
             len(pos.strength), len(neg.strength), core, threshold)
    kw = {"flank": flank, "similarity": similarity, "min_seqlets": min_seqlets,
          "max_motifs": max_motifs}
    motifs = [trim_motif(m, trim_threshold)
              for m in cluster_seqlets(pos, "pos", **kw) + cluster_seqlets(neg, "neg", **kw)]
    narrow = [m.name for m in motifs if len(m.ppm) < min_width]
    if narrow:
        log.info("dropped motifs narrower than %d bp after trimming: %s", min_width, narrow)
    return [m for m in motifs if len(m.ppm) >= min_width]
