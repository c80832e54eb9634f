"""The demo's planted imaging QTL and its covariates.

One SNV away from every motif site and every other demo variant is a lesion QTL: each ALT allele
a subject carries adds ``QTL_LESIONS`` small lesions (radius ``QTL_LESION_RADIUS_MM``) to its
organ, so the subject's ``lesion_count`` (and, a little, its lesion burden) rises with its ALT
dosage. A subject's dosage is drawn from its own stream ``default_rng([seed, 17, i])``
(Binomial(2, ``QTL_ALT_FREQ``)), the extra lesions' places from ``[seed, 17, i, 1]``, and its
``age`` and ``sex`` (no effect on anything) from ``[seed, 19, i]``: every other draw of the demo
is unchanged. The variant does not change the reads and is not in the variant-effect truth table
(it is not in a motif site or its flanks). The truth is written to ``qtl_truth.tsv``
(``QTL_TRUTH_COLUMNS``).

Why lesion count and not lesion size: the demo's burden spreads about fourfold between its
"heavy" and light subjects, so at 26 subjects a size scaling that keeps the classes balanced
does not stand out from ~170 variants (about one run in five in simulation). The regular lesions
sit in the organ's core and mostly merge into one component, so two small lesions per allele in
the organ's outer shell move the count clearly (seed 42, 26 subjects, from the labels: p ~ 4e-15)
while the burden rises ~5 % on average.

The QTL does not move the subject's class: ``class`` is drawn from the volume of the subject's
disease lesions (the regular ones, measured before the QTL's are painted; see
:func:`voxseq.demo.imaging.make_subject`). Drawn from the whole lesion volume instead, the
extra lesions pushed one light carrier of the default demo over the threshold, so its class
said "high burden" while its disease lesions were those of a light subject, and the imaging
classifier's out-of-fold AUROC fell from 0.989 to 0.818. Now the class means the same as
without the QTL, and the whole lesion volume still orders the default demo's classes (every
light subject, extra lesions included, below every heavy one); the default classifier's
out-of-fold AUROC is 0.967 (19 subjects), not back to the 1.0 of a run without the QTL's
lesions: the two highest-scoring light subjects (0.33, 0.30) both carry two ALT alleles, and
one heavy non-carrier scores 0.10 (0.15 in that run too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxseq.io.atomic import write_tsv

QTL_ALT_FREQ = 0.4
QTL_LESIONS = 2  # extra lesions per ALT allele
QTL_LESION_RADIUS_MM = 3.0
QTL_PHENOTYPE = "lesion_count"
#: away from motif sites (their flanks included) and other variants, in bp
QTL_CLEARANCE = 200
QTL_TRUTH_COLUMNS = ("id", "contig", "pos", "ref", "alt", "phenotype", "effect_per_allele",
                     "alt_freq")


def qtl_dosage(seed: int, index: int) -> int:
    """Subject ``index``'s ALT dosage (0, 1, 2) of the planted QTL."""
    return int(np.random.default_rng([seed, 17, index]).binomial(2, QTL_ALT_FREQ))


def qtl_lesion_rng(seed: int, index: int) -> np.random.Generator:
    """The stream that places subject ``index``'s extra lesions."""
    return np.random.default_rng([seed, 17, index, 1])


def demo_covariates(seed: int, index: int) -> dict[str, str]:
    """Subject ``index``'s ``age`` (years, one decimal, 25-80) and ``sex`` (M/F)."""
    rng = np.random.default_rng([seed, 19, index])
    age = rng.uniform(25.0, 80.0)
    return {"age": f"{age:.1f}", "sex": "F" if rng.random() < 0.5 else "M"}


def choose_qtl(genome: dict[str, bytearray], sites: dict[str, list[tuple[int, int]]],
               variants: list[dict], motif_length: int = 12) -> dict:
    """The QTL SNV: the first position (scanning the last contig from its middle) at least
    ``QTL_CLEARANCE`` bp from every motif site and variant, on an A/C/G/T base; ALT is the
    next base in ACGT order. Deterministic from the genome."""
    contig = list(genome)[-1]
    seq = bytes(genome[contig])
    taken = [s for s, _ in sites.get(contig, [])] + [v["pos0"] for v in variants
                                                      if v["contig"] == contig]
    taken = np.array(sorted(taken) or [-10**9])
    for pos0 in range(len(seq) // 2, len(seq) - QTL_CLEARANCE):
        base = chr(seq[pos0]).upper()
        near = np.abs(taken - pos0).min() < QTL_CLEARANCE + motif_length
        if base in "ACGT" and not near:
            alt = "ACGT"[("ACGT".index(base) + 1) % 4]
            return {"contig": contig, "pos0": pos0, "ref": base, "alt": alt,
                    "id": f"{contig}:{pos0 + 1}:{base}:{alt}"}  # as the genotypes name it
    raise ValueError(f"demo QTL: no position on {contig} {QTL_CLEARANCE} bp from every motif "
                     "site and variant")


def write_qtl_truth(path: str | Path, qtl: dict) -> None:
    """``qtl_truth.tsv``: the planted QTL, its phenotype and effect (lesions per ALT allele)."""
    write_tsv(path, [{**qtl, "pos": qtl["pos0"] + 1, "phenotype": QTL_PHENOTYPE,
                      "effect_per_allele": QTL_LESIONS, "alt_freq": QTL_ALT_FREQ}],
              QTL_TRUTH_COLUMNS)
