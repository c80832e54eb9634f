"""Synthetic genomics cohort: a reference with planted motifs, per-subject BAMs and VCFs.

The "biology": every exact match of a motif (either strand) is a site whose strength is its
motif's base strength, times a flank term (GC content of the 5 bp each side) and a small per-site
log-normal factor. Each subject's expected depth is a background plus a Gaussian peak at every
site, scaled by the subject's own weight for that motif and its library size. Reads are drawn
from that profile, so coverage rises at motif sites with subject-specific strength.

Reads carry realistic flags that coverage filters must drop (duplicates, secondary, QC-fail,
placed and unplaced unmapped reads, MAPQ under 10), CIGARs with deletions, insertions and soft
clips, and random base qualities. The VCFs hold SNVs of graded true effect (see
:func:`choose_variants`): SNVs that break sites of the strong, medium and weak motif, SNVs that
create a site from a one-mismatch near-match, partial disruptions and gains (a flank base switched
between A/T and G/C changes the flank term), neutral SNVs at least ``neutral_distance`` (100) bp
from any site, and a few indels. The truth is written to ``genomics/variant_truth.tsv``
(``TRUTH_COLUMNS``): ``class``, the site's ``motif`` and ``site_start`` (0-based), and
``effect``, the change of the expected depth summed over the ``effect_span`` (256) bp centred on
the variant that the alt allele makes under this model (:func:`variant_effect`; 0 for neutral
SNVs, empty for indels). The variants do not change the simulated reads: the model learns from
the reference, and carriers' reads are drawn from it too.

Difficulty (default): 800 kb over chr1..chr5 (one N stretch each), ~3,500 motif sites (three
10-mers of base strength 1, 0.6 and 0.35, a quarter in same-motif pairs), 50 bp reads at a
background depth of 2 and up to ~+30 at a site, 16 subjects with library scales 0.6-1.4 and
per-motif weights log-normal(0, 0.35); 45 motif-breaking, 30 motif-creating, 30 flank (GC)
and 60 neutral SNVs, 4 indels.

Seeds: the reference, sites and variants come from ``default_rng([seed, 10, k])``; subject ``i``
draws from ``default_rng([seed, 11 + k, i])``, so a subject's data do not depend on how many
subjects are generated.

Quality-control outliers (``generate_genomics(..., anomalies=...)``, used for the two extra
subjects of ``make_demo_cohort(..., outliers=True)``) change only the subject's expected depth
before its reads are drawn; their own random draws come from ``default_rng([seed, 13, k])``, so
the subject's reads are otherwise drawn exactly as without the anomaly:

* ``duplication`` imitates a large copy-number gain: on the longest contig the expected depth of
  one interval is multiplied by ``duplication_gain`` (1.5, one extra copy of a diploid segment).
  The interval is ``duplication_length`` (120 kb) long, or 40 % of the longest contig when that
  does not fit in half the contig (the small test genome: 6.4 kb of 16 kb). Its start is drawn
  from ``default_rng([seed, 13, 0])`` among the starts that overlap the contig's N stretch the
  least, at least 1 kb from the contig's ends (see :func:`duplication_interval`).
* ``failed_library`` imitates a degraded or over-amplified library: the expected depth is
  multiplied by ``exp(a s(x))``, ``s`` Gaussian noise smoothed with ``failed_wave_sigma``
  (8 kb: waves of tens of kb; 1.2 kb in the small genome) and normalised to unit SD on each
  contig's non-N bases, drawn from ``default_rng([seed, 13, 1])``, ``a =
  failed_wave_amplitude`` (0.5); and by a GC bias ``exp(b z)``, ``z`` the standardised GC
  content of the surrounding 500 bp, ``b = failed_gc_bias`` (0.3), as from a PCR-heavy library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam
from scipy.ndimage import gaussian_filter1d

from voxseq.demo.layout import genomics_files
from voxseq.genomics.reference import ensure_fai
from voxseq.genomics.variants import EFFECT_CLASSES  # noqa: F401 (the classes with an effect)
from voxseq.io.atomic import remove_stale_temporaries, write_text, write_tsv

log = logging.getLogger(__name__)

_COMP = bytes.maketrans(b"ACGTN", b"TGCAN")
ANOMALIES = ("duplication", "failed_library")
TRUTH_COLUMNS = ("contig", "pos", "ref", "alt", "class", "motif", "site_start", "effect")


@dataclass(frozen=True)
class GenomicsDemoConfig:
    """Size and difficulty of the demo genomics cohort."""

    contig_lengths: tuple[int, ...] = (240_000, 200_000, 100_000, 100_000, 160_000)
    gc: float = 0.42
    n_runs: tuple[int, int] = (2_000, 6_000)  # one N stretch per contig, length range (bp)
    motifs: tuple[tuple[str, str, float], ...] = (
        ("ap1_like", "TGACTCAGCA", 1.0),
        ("ccaat_like", "CCAATCGGAT", 0.6),
        ("gata_like", "GATAAGGCTT", 0.35),
    )
    site_spacing: float = 240.0  # mean bp between planted sites
    cluster_prob: float = 0.25  # chance that a site gets a same-motif neighbour 20-60 bp away
    read_length: int = 50
    background_depth: float = 2.0
    peak_depth: float = 30.0  # extra depth at the centre of a strength-1 site
    peak_sigma: float = 40.0
    library_scale: tuple[float, float] = (0.6, 1.4)
    motif_weight_sigma: float = 0.35
    duplicate_rate: float = 0.04
    secondary_rate: float = 0.02
    qcfail_rate: float = 0.01
    unmapped_rate: float = 0.02
    low_mapq_rate: float = 0.04
    n_breaking: int = 45  # SNVs in a site's core, spread evenly over the motifs
    n_creating: int = 30  # SNVs that complete a one-mismatch near-match, evenly over the motifs
    n_flank: int = 30  # SNVs that change a site's flank GC (partial gain or loss)
    n_neutral: int = 60
    n_indels: int = 4
    neutral_distance: int = 100  # bp from the nearest motif site to a neutral SNV
    effect_span: int = 256  # bp centred on a variant whose depth change is its true effect
    carrier_prob: float = 0.35
    # quality-control outliers (see the module docstring)
    duplication_length: int = 120_000
    duplication_gain: float = 1.5
    failed_wave_sigma: float = 8_000.0
    failed_wave_amplitude: float = 0.5
    failed_gc_bias: float = 0.3


SMALL = GenomicsDemoConfig(contig_lengths=(16_000,) * 4, n_runs=(500, 1_000),
                           site_spacing=400.0, n_breaking=6, n_creating=3, n_flank=3,
                           n_neutral=8, n_indels=2,
                           failed_wave_sigma=1_200.0)


def revcomp(seq: str) -> str:
    """Reverse complement of an upper-case ACGTN string."""
    return seq.encode().translate(_COMP)[::-1].decode()


def make_reference(rng: np.random.Generator, cfg: GenomicsDemoConfig) -> dict[str, bytearray]:
    """Random contigs ``chr1..chrN`` with one N stretch each and planted motif instances."""
    probs = [(1 - cfg.gc) / 2, cfg.gc / 2, cfg.gc / 2, (1 - cfg.gc) / 2]
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    genome = {}
    for k, length in enumerate(cfg.contig_lengths):
        seq = bases[rng.choice(4, size=length, p=probs)].copy()
        n_len = int(rng.integers(*cfg.n_runs))
        n_start = int(rng.integers(length // 4, 3 * length // 4 - n_len))
        seq[n_start:n_start + n_len] = ord("N")
        pos = int(rng.integers(50, 150))
        while pos < length - 100:
            _plant(rng, seq, pos, cfg)
            pos += 30 + int(rng.exponential(cfg.site_spacing))
        genome[f"chr{k + 1}"] = bytearray(seq.tobytes())
    return genome


def _plant(rng: np.random.Generator, seq: np.ndarray, pos: int, cfg: GenomicsDemoConfig) -> None:
    weights = np.array([1.0 / (1 + i) for i in range(len(cfg.motifs))])
    t = int(rng.choice(len(cfg.motifs), p=weights / weights.sum()))
    starts = [pos]
    if rng.random() < cfg.cluster_prob:
        starts.append(pos + int(rng.integers(20, 60)))
    for s in starts:
        motif = cfg.motifs[t][1]
        motif = motif if rng.random() < 0.5 else revcomp(motif)
        window = seq[s:s + len(motif)]
        if len(window) == len(motif) and not (window == ord("N")).any():
            seq[s:s + len(motif)] = np.frombuffer(motif.encode(), dtype=np.uint8)


def find_sites(seq: str, cfg: GenomicsDemoConfig) -> list[tuple[int, int]]:
    """Every exact motif match on either strand: (start, motif index), sorted by start."""
    hits = set()
    for t, (_, motif, _) in enumerate(cfg.motifs):
        for m in {motif, revcomp(motif)}:
            hits.update((h.start(), t) for h in re.finditer(f"(?={m})", seq))
    return sorted(hits)


def flank_term(seq: str, start: int, length: int) -> float:
    """Flank factor of a site: ``0.6 + 0.8 x`` the GC share of the 5 bp on each side."""
    flank = seq[max(start - 5, 0):start] + seq[start + length:start + length + 5]
    return 0.6 + 0.8 * sum(b in "GC" for b in flank) / max(len(flank), 1)


def site_strengths(seq: str, sites: list[tuple[int, int]], cfg: GenomicsDemoConfig,
                   rng: np.random.Generator) -> np.ndarray:
    """Strength of each site: motif strength x (0.6 + 0.8 GC of 5 bp flanks) x lognormal(0.2)."""
    out = np.empty(len(sites))
    for i, (s, t) in enumerate(sites):
        out[i] = cfg.motifs[t][2] * flank_term(seq, s, len(cfg.motifs[t][1]))
    return out * rng.lognormal(0.0, 0.2, size=len(sites))


def near_matches(seq: str, cfg: GenomicsDemoConfig) -> list[tuple[int, int, int, str]]:
    """Motif matches (either strand) but for one base: ``(start, motif index, pos0, alt)``.

    The SNV ``pos0 -> alt`` turns the 10-mer at ``start`` into an exact match; sorted.
    """
    codes = np.frombuffer(seq.encode(), dtype=np.uint8)
    found = set()
    for t, (_, motif, _) in enumerate(cfg.motifs):
        n = len(codes) - len(motif) + 1
        for word in {motif, revcomp(motif)} if n > 0 else ():
            target = np.frombuffer(word.encode(), dtype=np.uint8)
            mismatches = np.zeros(n, dtype=np.int16)
            for j, base in enumerate(target):
                mismatches += codes[j:j + n] != base
            for s in np.flatnonzero(mismatches == 1).tolist():
                j = int(np.flatnonzero(codes[s:s + len(word)] != target)[0])
                if codes[s + j] != ord("N"):
                    found.add((s, t, s + j, word[j]))
    return sorted(found)


def variant_effect(seq: str, pos0: int, alt: str, strength_of: dict[tuple[int, int], float],
                   cfg: GenomicsDemoConfig) -> tuple[float, int, int]:
    """True effect of the SNV ``pos0 -> alt`` under the generative model.

    The sites whose core or 5 bp flanks hold ``pos0`` are found in the reference and in the alt
    sequence. A site in both keeps its per-site noise and its strength scales by the new flank
    term; a site only in the alt sequence (created) gets motif strength x flank term (noise at
    its median, 1); a site only in the reference (broken) loses its strength. The effect is the
    change of the expected depth (:func:`depth_profile`, library scale and motif weights 1,
    background unchanged) summed over the ``cfg.effect_span`` bp centred on the variant
    (``[pos0 - span // 2, pos0 - span // 2 + span)``): the bins that
    :func:`voxseq.genomics.variants.score_variants` sums with the demo config (8 bins of
    32 bp) away from the contig ends. Negative: the alt allele lowers coverage.

    Parameters
    ----------
    seq
        The contig (reference).
    strength_of
        (start, motif index) -> strength of every reference site of the contig.

    Returns
    -------
    effect : float
    n_lost, n_gained : int
        Sites the alt allele breaks and creates.
    """
    reach = max(len(m) for _, m, _ in cfg.motifs) + 5
    lo, hi = max(pos0 - 2 * reach, 0), min(pos0 + 2 * reach + 1, len(seq))
    ref_text = seq[lo:hi]
    alt_text = ref_text[:pos0 - lo] + alt + ref_text[pos0 - lo + 1:]

    def touched(text: str) -> dict[tuple[int, int], int]:  # (start, motif) -> local start
        return {(s + lo, t): s for s, t in find_sites(text, cfg)
                if s + lo - 5 <= pos0 < s + lo + len(cfg.motifs[t][1]) + 5}

    ref_sites, alt_sites = touched(ref_text), touched(alt_text)
    amp = {key: -strength_of[key] for key in ref_sites if key not in alt_sites}  # broken
    for (s, t), local in alt_sites.items():
        m = len(cfg.motifs[t][1])
        gain = flank_term(alt_text, local, m)
        if (s, t) not in ref_sites:  # created
            amp[(s, t)] = cfg.motifs[t][2] * gain
        elif gain != flank_term(ref_text, local, m):  # flank changed
            amp[(s, t)] = strength_of[(s, t)] * (gain / flank_term(ref_text, local, m) - 1.0)
    if not amp:
        return 0.0, 0, 0
    half = cfg.effect_span // 2
    radius = half + int(4 * cfg.peak_sigma + 0.5) + 2 * reach
    a, b = max(pos0 - radius, 0), min(pos0 + radius, len(seq))
    n_mask = np.frombuffer(seq[a:b].encode(), dtype=np.uint8) == ord("N")
    keys = list(amp)
    depth = depth_profile(b - a, [(s - a, t) for s, t in keys], np.array([amp[k] for k in keys]),
                          np.ones(len(cfg.motifs)), n_mask, 0.0, cfg)
    lo_span = max(pos0 - half - a, 0)
    effect = float(depth[lo_span:max(pos0 - half + cfg.effect_span - a, 0)].sum())
    return effect, len(set(ref_sites) - set(alt_sites)), len(set(alt_sites) - set(ref_sites))


def _spend(budget: Iterator[int]) -> None:
    if next(budget, None) is None:
        raise ValueError("demo genome too small or too sparse in motif sites for the requested "
                         "number of variants; lower n_breaking / n_creating / n_flank / n_neutral")


def _other_base(rng: np.random.Generator, ref: str, pool: str = "ACGT") -> str:
    choices = [b for b in pool if b != ref]
    return choices[int(rng.integers(len(choices)))]


def choose_variants(rng: np.random.Generator, genome: dict[str, bytearray],
                    sites: dict[str, list[tuple[int, int]]], strength: dict[str, np.ndarray],
                    cfg: GenomicsDemoConfig) -> list[dict]:
    """SNVs of graded true effect, neutral SNVs and a few indels, with their true ``effect``.

    Classes (``EFFECT_CLASSES`` have a non-zero effect; see :func:`variant_effect`):

    * ``motif_breaking``: a core base (not the outer two each side) of a site changed, the same
      number per motif (strong, medium, weak), so the loss is graded by the site's strength;
    * ``motif_creating``: completes a one-mismatch near-match of a motif (:func:`near_matches`)
      into a new site, the same number per motif;
    * ``flank_gc``: a partial disruption or gain: a base of a site's 5 bp flanks switched
      between A/T and G/C, so the flank term and the site's strength change by ``0.08 / (0.6 +
      0.8 GC)`` of it (about 8-13 %) while the site stays;
    * ``neutral``: at least ``neutral_distance`` bp from any site and creating none (effect 0);
    * ``indel``: an insertion or a deletion away from sites; not scored, no effect.

    An SNV whose effect is not of its intended kind (e.g. a core change that also creates a
    site) is drawn again.
    """
    contigs = list(genome)
    texts = {c: genome[c].decode() for c in contigs}
    strength_of = {c: dict(zip(sites[c], strength[c].tolist(), strict=True)) for c in contigs}
    n_motifs = len(cfg.motifs)
    by_motif = [[(c, s) for c in contigs for s, tt in sites[c] if tt == t] for t in range(n_motifs)]
    near: list[list[tuple[str, int, int, str]]] = [[] for _ in range(n_motifs)]
    for c in contigs if cfg.n_creating else ():
        for s, t, pos0, alt in near_matches(texts[c], cfg):
            near[t].append((c, s, pos0, alt))
    for t in range(n_motifs):
        if not by_motif[t] or (cfg.n_creating and not near[t]):
            raise ValueError(f"demo genome has no site or no near-match of motif "
                             f"{cfg.motifs[t][0]}; lower n_breaking / n_creating")
    variants, taken = [], set()
    budget = iter(range(1000 * (cfg.n_breaking + cfg.n_creating + cfg.n_flank + cfg.n_neutral
                                + cfg.n_indels) + 1000))

    def add(c: str, pos0: int, alt: str, cls: str, t: int | None, start: int | str) -> None:
        ref = texts[c][pos0]
        if (c, pos0) in taken or ref not in "ACGT":
            return
        effect, lost, gained = variant_effect(texts[c], pos0, alt, strength_of[c], cfg)
        wanted = {"motif_breaking": lost > 0 and not gained, "motif_creating": gained > 0
                  and not lost, "flank_gc": not lost and not gained and effect != 0.0,
                  "neutral": not lost and not gained and effect == 0.0}[cls]
        if wanted:
            taken.add((c, pos0))
            variants.append({"contig": c, "pos0": pos0, "ref": ref, "alt": alt, "class": cls,
                             "motif": "" if t is None else cfg.motifs[t][0],
                             "site_start": start, "effect": effect})

    def count(cls: str) -> int:
        return sum(v["class"] == cls for v in variants)

    while count("motif_breaking") < cfg.n_breaking:
        _spend(budget)
        t = count("motif_breaking") % n_motifs
        c, s = by_motif[t][int(rng.integers(len(by_motif[t])))]
        pos0 = s + int(rng.integers(2, len(cfg.motifs[t][1]) - 2))
        add(c, pos0, _other_base(rng, texts[c][pos0]), "motif_breaking", t, s)
    while count("motif_creating") < cfg.n_creating:
        _spend(budget)
        t = count("motif_creating") % n_motifs
        c, s, pos0, alt = near[t][int(rng.integers(len(near[t])))]
        add(c, pos0, alt, "motif_creating", t, s)
    while count("flank_gc") < cfg.n_flank:
        _spend(budget)
        t = count("flank_gc") % n_motifs
        c, s = by_motif[t][int(rng.integers(len(by_motif[t])))]
        d = int(rng.integers(1, 6))  # 1..5 bp outside the core, either side
        pos0 = s - d if rng.random() < 0.5 else s + len(cfg.motifs[t][1]) + d - 1
        if 0 <= pos0 < len(texts[c]):
            ref = texts[c][pos0]
            add(c, pos0, _other_base(rng, ref, "AT" if ref in "GC" else "GC"), "flank_gc", t, s)
    starts = {c: np.array([s for s, _ in sites[c]] or [-10**9]) for c in contigs}
    n_neutral = 0
    while n_neutral < cfg.n_neutral + cfg.n_indels:
        _spend(budget)
        c = contigs[int(rng.integers(len(contigs)))]
        pos0 = int(rng.integers(600, max(len(genome[c]) - 600, 601)))
        if np.abs(starts[c] - pos0).min() < cfg.neutral_distance or (c, pos0) in taken:
            continue
        ref = chr(genome[c][pos0])
        if ref not in "ACGT" or chr(genome[c][pos0 + 1]) not in "ACGT":
            continue
        if n_neutral >= cfg.n_neutral:  # indels: an insertion, then a deletion, alternating
            n_neutral += 1
            taken.add((c, pos0))
            alt2 = ref + "T" if n_neutral % 2 else ref
            ref2 = ref if n_neutral % 2 else ref + chr(genome[c][pos0 + 1])
            variants.append({"contig": c, "pos0": pos0, "ref": ref2, "alt": alt2,
                             "class": "indel", "motif": "", "site_start": "", "effect": None})
            continue
        before = len(variants)
        add(c, pos0, _other_base(rng, ref), "neutral", None, "")
        n_neutral += len(variants) - before
    order = {c: i for i, c in enumerate(contigs)}
    return sorted(variants, key=lambda v: (order[v["contig"]], v["pos0"]))


def depth_profile(length: int, sites: list[tuple[int, int]], strength: np.ndarray,
                  weights: np.ndarray, n_mask: np.ndarray, background: float,
                  cfg: GenomicsDemoConfig) -> np.ndarray:
    """Expected per-base depth ``(length,)`` of one subject on one contig."""
    peaks = np.zeros(length)
    if sites:
        m_len = np.array([len(cfg.motifs[t][1]) for _, t in sites])
        centre = np.array([s for s, _ in sites]) + m_len // 2
        amp = strength * weights[np.array([t for _, t in sites])]
        np.add.at(peaks, np.clip(centre, 0, length - 1), amp)
    peak = gaussian_filter1d(peaks, cfg.peak_sigma, mode="constant")
    peak *= cfg.peak_depth * np.sqrt(2 * np.pi) * cfg.peak_sigma
    return np.where(n_mask, 0.0, background + peak)


def duplication_interval(genome: dict[str, bytearray], seed: int, cfg: GenomicsDemoConfig
                         ) -> tuple[str, int, int]:
    """The planted duplication: (contig, start, end), 0-based half-open, on the longest contig.

    ``cfg.duplication_length`` long, or 40 % of the contig when that is more than half of it;
    the start is drawn from ``default_rng([seed, 13, 0])`` among the starts at least 1 kb from
    the contig's ends whose interval overlaps the N stretch the least.
    """
    contig = max(genome, key=lambda c: len(genome[c]))  # the first of the longest
    length = len(genome[contig])
    size = cfg.duplication_length
    if size > length // 2:
        size = int(0.4 * length)
    margin = min(1_000, (length - size) // 4)
    starts = np.arange(margin, length - size - margin + 1)
    is_n = np.frombuffer(bytes(genome[contig]), dtype=np.uint8) == ord("N")
    cum = np.r_[0, np.cumsum(is_n)]
    overlap = cum[starts + size] - cum[starts]
    best = starts[overlap == overlap.min()]
    start = int(best[int(np.random.default_rng([seed, 13, 0]).integers(len(best)))])
    return contig, start, start + size


def failed_library_factor(rng: np.random.Generator, seq: bytes, cfg: GenomicsDemoConfig
                          ) -> np.ndarray:
    """Depth factor ``(len(seq),)`` of a failed library: smooth random wave times GC bias.

    The wave is smoothed on a grid of ``failed_wave_sigma / 20`` bp and interpolated (a direct
    Gaussian filter of that width per base would be slow); both terms are standardised over the
    contig's non-N bases.
    """
    n = len(seq)
    codes = np.frombuffer(seq, dtype=np.uint8)
    ok = codes != ord("N")
    step = max(int(cfg.failed_wave_sigma / 20), 1)
    coarse = gaussian_filter1d(rng.normal(size=n // step + 2), cfg.failed_wave_sigma / step)
    wave = np.interp(np.arange(n), np.arange(len(coarse)) * step, coarse)
    gc = np.isin(codes, np.frombuffer(b"GC", dtype=np.uint8)).astype(float)
    w = min(500, n)
    cum = np.r_[0.0, np.cumsum(gc)]
    lo = np.clip(np.arange(n) - w // 2, 0, n - w)
    gc = (cum[lo + w] - cum[lo]) / w  # GC share of the surrounding ``w`` bp
    out = np.zeros(n)
    for x, k in ((wave, cfg.failed_wave_amplitude), (gc, cfg.failed_gc_bias)):
        if ok.any():
            out += k * (x - x[ok].mean()) / (x[ok].std() + 1e-12)
    return np.exp(out)


def simulate_reads(rng: np.random.Generator, depth: np.ndarray, cfg: GenomicsDemoConfig
                   ) -> np.ndarray:
    """Sorted 0-based read starts drawn so that the expected depth is ``depth``."""
    kernel = np.ones(cfg.read_length) / cfg.read_length**2  # starts per bp = mean depth / L
    rate = np.convolve(depth, kernel)[cfg.read_length - 1:]
    rate[len(rate) - cfg.read_length:] = 0.0
    rate[depth == 0] = 0.0
    cum = np.cumsum(rate)
    n = int(rng.poisson(cum[-1]))
    u = np.sort(rng.random(n)) * cum[-1]
    return np.searchsorted(cum, u, side="right").astype(np.int64)


# CIGAR patterns of the 50 bp reads (reference span) and their frequencies
_PATTERNS = [("50M", 50), ("20M2D30M", 52), ("25M1I24M", 49), ("5S45M", 45), ("45M5S", 45)]
_PATTERN_P = np.array([0.88, 0.04, 0.03, 0.025, 0.025])
# reference offset of each read base per pattern; -1: a base not from the reference
_OFFSETS = np.array([
    np.arange(50),
    np.r_[np.arange(20), np.arange(22, 52)],
    np.r_[np.arange(25), -1, np.arange(25, 49)],
    np.r_[[-1] * 5, np.arange(45)],
    np.r_[np.arange(45), [-1] * 5],
])


def read_sequences(rng: np.random.Generator, ref: bytes, starts: np.ndarray,
                   pattern: np.ndarray) -> np.ndarray:
    """Read bases ``(n, 50)`` (ASCII codes) for reads at ``starts`` with CIGAR ``pattern``."""
    off = _OFFSETS[pattern]
    ref_codes = np.frombuffer(ref, dtype=np.uint8)
    pos = np.clip(starts[:, None] + off, 0, len(ref_codes) - 1)
    random_bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, off.shape)]
    return np.where(off >= 0, ref_codes[pos], random_bases)


def subject_sam_lines(rng: np.random.Generator, subject: str, contig: str, ref: bytes,
                      starts: np.ndarray, cfg: GenomicsDemoConfig) -> list[tuple[int, str]]:
    """SAM records (position, line) of one contig: reads plus flagged decoys."""
    n = len(starts)
    pattern = rng.choice(len(_PATTERNS), size=n, p=_PATTERN_P)
    reverse = rng.random(n) < 0.5
    mapq = np.where(rng.random(n) < cfg.low_mapq_rate, rng.integers(0, 10, n),
                    rng.integers(20, 61, n))
    qcfail = rng.random(n) < cfg.qcfail_rate
    dup = rng.random(n) < cfg.duplicate_rate
    secondary = rng.random(n) < cfg.secondary_rate
    unmapped = rng.random(n) < cfg.unmapped_rate / 2
    secondary_pos = rng.integers(0, max(len(ref) - 60, 1), n)
    seqs = read_sequences(rng, ref, starts, pattern).tobytes().decode()
    quals = (rng.integers(2, 41, size=(n, 50)).astype(np.uint8) + 33).tobytes().decode()
    span = np.array([sp for _, sp in _PATTERNS])[pattern]
    keep = starts + span <= len(ref)
    out = []
    for i in np.flatnonzero(keep).tolist():
        s, seq, qual = int(starts[i]), seqs[50 * i:50 * i + 50], quals[50 * i:50 * i + 50]
        flag = (16 if reverse[i] else 0) | (512 if qcfail[i] else 0)
        body = f"\t{contig}\t{s + 1}\t{mapq[i]}\t{_PATTERNS[pattern[i]][0]}\t*\t0\t0\t{seq}\t{qual}"
        out.append((s, f"{subject}.{contig}.{i}\t{flag}{body}"))
        if dup[i]:
            out.append((s, f"{subject}.{contig}.{i}d\t{flag | 1024}{body}"))
        if secondary[i]:
            s2 = int(secondary_pos[i])
            out.append((s2, f"{subject}.{contig}.{i}\t{256 | flag}\t{contig}\t{s2 + 1}\t0\t50M"
                            "\t*\t0\t0\t*\t*"))
        if unmapped[i]:  # placed unmapped (mate-style position)
            out.append((s, f"{subject}.{contig}.{i}u\t4\t{contig}\t{s + 1}\t0\t*\t*\t0\t0\t"
                           f"{seq}\t{qual}"))
    return out


@contextlib.contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` (same file system, so renames are atomic)."""
    remove_stale_temporaries(path)  # a killed earlier run's scratch
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bam(path: Path, subject: str, genome: dict[str, bytearray],
              lines: list[str], n_unplaced: int, rng: np.random.Generator) -> None:
    """Write sorted SAM records as an indexed BAM, atomically (index renamed last)."""
    header = ["@HD\tVN:1.6\tSO:coordinate"]
    header += [f"@SQ\tSN:{c}\tLN:{len(s)}" for c, s in genome.items()]
    header += [f"@RG\tID:{subject}\tSM:{subject}", "@PG\tID:voxseq-demo\tPN:voxseq-demo"]
    for j in range(n_unplaced):
        seq = bytes(b"ACGT"[i] for i in rng.integers(0, 4, 50)).decode()
        lines.append(f"{subject}.unplaced.{j}\t4\t*\t0\t0\t*\t*\t0\t0\t{seq}\t{'#' * 50}")
    with _scratch(path) as tmp:
        (tmp / "in.sam").write_text("\n".join(header + lines) + "\n")
        pysam.view("-b", "-1", "--no-PG", "-o", str(tmp / "out.bam"), str(tmp / "in.sam"),
                   catch_stdout=False)
        pysam.index(str(tmp / "out.bam"))
        os.replace(tmp / "out.bam", path)  # BAM before its index, so the index is never older
        os.replace(tmp / "out.bam.bai", f"{path}.bai")


def write_vcf(path: Path, subject: str, genome: dict[str, bytearray], variants: list[dict],
              genotypes: list[str]) -> None:
    """Write a bgzipped, tabix-indexed single-sample VCF, atomically."""
    head = ["##fileformat=VCFv4.2", "##source=voxseq-demo"]
    head += [f"##contig=<ID={c},length={len(s)}>" for c, s in genome.items()]
    head += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{subject}"]
    body = [f"{v['contig']}\t{v['pos0'] + 1}\t{v['contig']}_{v['pos0'] + 1}_{v['ref']}_{v['alt']}"
            f"\t{v['ref']}\t{v['alt']}\t50\tPASS\t.\tGT\t{gt}"
            for v, gt in zip(variants, genotypes, strict=True)]
    with _scratch(path) as tmp:
        (tmp / "in.vcf").write_text("\n".join(head + body) + "\n")
        pysam.tabix_compress(str(tmp / "in.vcf"), str(tmp / "out.vcf.gz"), force=True)
        pysam.tabix_index(str(tmp / "out.vcf.gz"), preset="vcf", force=True)
        os.replace(tmp / "out.vcf.gz", path)
        os.replace(tmp / "out.vcf.gz.tbi", f"{path}.tbi")


def generate_genomics(outdir: Path, subjects: list[str], seed: int, small: bool = False,
                      shift: float = 0.0, cfg: GenomicsDemoConfig | None = None,
                      reference_seed: int | None = None,
                      anomalies: dict[str, str] | None = None,
                      qtl_dosages: dict[str, int] | None = None
                      ) -> dict[str, dict[str, str | int]]:
    """Write the demo reference, per-subject BAM + VCF and the variant truth under ``outdir``.

    Parameters
    ----------
    outdir
        Destination; gets ``reference.fa`` (+ ``.fai``) and ``genomics/``.
    subjects
        Subject ids; subject ``i`` is simulated from ``[seed, k, i]``.
    small
        Tiny genome (4 x 16 kb) and few variants, for tests.
    shift
        Cohort shift: library sizes scale by ``1 + shift`` and background depth by
        ``1 + shift / 2`` (a "new cohort" sequenced differently).
    reference_seed
        Seed of the genome and its motif sites (default ``seed``): a new cohort of the same
        species keeps the training cohort's reference while its subjects and variants change.
    anomalies
        subject -> one of ``ANOMALIES`` (see the module docstring): that subject's depth is
        distorted; the other subjects are unchanged.
    qtl_dosages
        subject -> ALT dosage of the planted lesion QTL (:mod:`voxseq.demo.qtl`): the SNV is
        added to the VCF of each subject that carries it, and ``genomics/qtl_truth.tsv`` is
        written. None: no QTL (every other file is the same either way).

    Returns
    -------
    dict
        subject -> {"bam": path, "vcf": path, "motif_weights": {motif: weight}}, paths relative
        to ``outdir``. A subject with a ``duplication`` also gets ``contig``, ``start`` and
        ``end`` (0-based, half-open).
    """
    outdir = Path(outdir)
    cfg = cfg or (SMALL if small else GenomicsDemoConfig())
    ref_seed = seed if reference_seed is None else reference_seed
    genome = make_reference(np.random.default_rng([ref_seed, 10, 0]), cfg)
    fasta = outdir / "reference.fa"
    write_text(fasta, "".join(
        f">{c}\n" + "\n".join(s[i:i + 60].decode() for i in range(0, len(s), 60)) + "\n"
        for c, s in genome.items()))
    ensure_fai(fasta)
    texts = {c: s.decode() for c, s in genome.items()}
    rng_sites = np.random.default_rng([ref_seed, 10, 1])
    sites = {c: find_sites(texts[c], cfg) for c in genome}
    strength = {c: site_strengths(texts[c], sites[c], cfg, rng_sites) for c in genome}
    variants = choose_variants(np.random.default_rng([seed, 10, 2]), genome, sites, strength, cfg)
    gdir = outdir / "genomics"
    gdir.mkdir(parents=True, exist_ok=True)
    write_tsv(gdir / "variant_truth.tsv",
              [{**v, "pos": v["pos0"] + 1} for v in variants], TRUTH_COLUMNS)
    log.info("demo genome: %d contigs, %d bp, %d motif sites, %d variants", len(genome),
             sum(map(len, genome.values())), sum(map(len, sites.values())), len(variants))
    qtl = None
    if qtl_dosages is not None:
        from voxseq.demo.qtl import choose_qtl, write_qtl_truth

        qtl = choose_qtl(genome, sites, variants, max(len(m[1]) for m in cfg.motifs))
        write_qtl_truth(gdir / "qtl_truth.tsv", qtl)
    anomalies = anomalies or {}
    unknown = set(anomalies.values()) - set(ANOMALIES)
    if unknown:
        raise ValueError(f"unknown anomalies {sorted(unknown)}; one of {ANOMALIES}")
    dup = (duplication_interval(genome, seed, cfg) if "duplication" in anomalies.values()
           else ("", 0, 0))
    out = {}
    for i, sid in enumerate(subjects):
        anomaly = anomalies.get(sid)
        rng_wave = np.random.default_rng([seed, 13, 1])
        rng = np.random.default_rng([seed, 11, i])
        lib = rng.uniform(*cfg.library_scale) * max(1.0 + shift, 0.1)
        weights = rng.lognormal(0.0, cfg.motif_weight_sigma, size=len(cfg.motifs))
        background = cfg.background_depth * max(1.0 + shift / 2, 0.1)
        lines: list[tuple[int, str]] = []
        for c in genome:
            n_mask = np.frombuffer(bytes(genome[c]), dtype=np.uint8) == ord("N")
            depth = lib * depth_profile(len(genome[c]), sites[c], strength[c], weights, n_mask,
                                        background, cfg)
            if anomaly == "duplication" and c == dup[0]:
                depth[dup[1]:dup[2]] *= cfg.duplication_gain
            elif anomaly == "failed_library":
                depth *= failed_library_factor(rng_wave, bytes(genome[c]), cfg)
            starts = simulate_reads(rng, depth, cfg)
            recs = subject_sam_lines(rng, sid, c, bytes(genome[c]), starts, cfg)
            recs.sort(key=lambda r: r[0])
            lines.extend(r[1] for r in recs)
        n_unplaced = int(len(lines) * cfg.unmapped_rate / 2)
        files = genomics_files(sid)
        write_bam(outdir / files["bam"], sid, genome, lines, n_unplaced, rng)
        rng_gt = np.random.default_rng([seed, 12, i])
        carried = rng_gt.random(len(variants)) < cfg.carrier_prob
        hom = rng_gt.random(len(variants)) < 0.2
        mine = [v for v, k in zip(variants, carried, strict=True) if k]
        gts = ["1/1" if h else "0/1" for h, k in zip(hom, carried, strict=True) if k]
        if qtl and qtl_dosages.get(sid, 0):  # in position order, as tabix needs
            order = {c: k for k, c in enumerate(genome)}
            pairs = sorted([*zip(mine, gts, strict=True),
                            (qtl, "1/1" if qtl_dosages[sid] == 2 else "0/1")],
                           key=lambda p: (order[p[0]["contig"]], p[0]["pos0"]))
            mine, gts = [p[0] for p in pairs], [p[1] for p in pairs]
        write_vcf(outdir / files["vcf"], sid, genome, mine, gts)
        log.info("demo subject %s: %d alignments, %d variants", sid, len(lines), len(mine))
        out[sid] = dict(files)
        out[sid]["motif_weights"] = {m[0]: float(w) for m, w in zip(cfg.motifs, weights,
                                                                       strict=True)}
        if anomaly == "duplication":
            out[sid].update(contig=dup[0], start=dup[1], end=dup[2])
    return out
