"""Cohort genotypes from VCFs: biallelic SNVs, additive ALT dosage, variant and sample QC.

Sources: one bgzipped, indexed VCF per subject (variant-only calls: a site absent from a
subject's file is homozygous reference only with ``absent_as_ref=True``, else missing), or one
multi-sample VCF. Only biallelic SNVs are kept (one REF and one ALT base, both A/C/G/T); the
rest is counted by reason (``multiallelic``, ``not_snv``, ``alt_differs_between_subjects``).
The dosage is the count of ALT alleles: FORMAT ``DS`` when the record has it, else the GT's
ALT alleles (a missing allele makes the call missing).

Variant QC (thresholds are parameters; the defaults follow regenie's documented filters:
``--geno 0.1 --maf 0.01 --hwe 1e-15 --mind 0.1`` and step 2's ``--minMAC 5``), on hard calls
(dosage rounded, as plink2's hardcalls) of the samples that pass the sample call rate:
call rate >= ``min_call_rate``, minor allele frequency >= ``min_maf``, minor allele count >=
``min_mac``, and the Hardy-Weinberg exact test p (Wigginton, Cutler and Abecasis 2005, not
mid-p; plink2 ``--hardy``) >= ``min_hwe_p``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from voxseq import VoxseqError
from voxseq.io.atomic import write_tsv

log = logging.getLogger(__name__)

BASES = frozenset("ACGT")
QC_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "call_rate", "alt_freq", "maf", "mac",
              "hwe_p", "pass", "reason")


@dataclass
class Genotypes:
    """ALT dosages of a cohort.

    Attributes
    ----------
    samples : list of N subject ids
    chrom, ref, alt, ids : (M,) str arrays; pos : (M,) int64 (1-based)
    dosage : (M, N) float32 ALT dosage in [0, 2], NaN for a missing call
    skipped : records left out, by reason
    """

    samples: list[str]
    chrom: np.ndarray
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    dosage: np.ndarray
    ids: np.ndarray = None
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ids is None:
            self.ids = np.array([f"{c}:{p}:{r}:{a}" for c, p, r, a in
                                 zip(self.chrom, self.pos, self.ref, self.alt, strict=True)],
                                dtype=object)

    def subset(self, variants: np.ndarray | None = None, samples: np.ndarray | None = None
               ) -> Genotypes:
        """A copy restricted to a boolean or index selection of variants and/or samples."""
        v = slice(None) if variants is None else variants
        s = slice(None) if samples is None else samples
        return Genotypes(list(np.asarray(self.samples, dtype=object)[s]), self.chrom[v],
                         self.pos[v], self.ref[v], self.alt[v], self.dosage[v][:, s],
                         self.ids[v], dict(self.skipped))


def _site_kind(ref: str, alts: tuple | None) -> str | None:
    """None for a biallelic SNV, else the reason it is skipped."""
    if not alts or len(alts) != 1:
        return "multiallelic" if alts and len(alts) > 1 else "not_snv"
    if len(ref) != 1 or len(alts[0]) != 1 or ref.upper() not in BASES \
            or alts[0].upper() not in BASES:
        return "not_snv"
    return None


def _call_dosage(call) -> float:
    """ALT dosage of one pysam sample call: DS if present, else the GT's ALT count."""
    if "DS" in call and call["DS"] is not None:
        ds = call["DS"]
        return float(ds[0] if isinstance(ds, tuple) else ds)
    gt = call.get("GT")
    if not gt or any(a is None for a in gt):
        return np.nan
    return float(sum(a > 0 for a in gt))


def _pick_sample(vcf, subject: str, path: str) -> str:
    names = list(vcf.header.samples)
    if subject in names:
        return subject
    if len(names) == 1:
        return names[0]
    raise VoxseqError(f"subject {subject}: VCF {path} has samples {names[:5]}, none named "
                      f"{subject!r} and more than one")


def read_subject_vcfs(vcfs: Mapping[str, str], absent_as_ref: bool = False) -> Genotypes:
    """Cohort genotypes from one variant-only VCF per subject.

    Parameters
    ----------
    vcfs
        subject -> bgzipped, indexed VCF (its sample named as the subject, or its only sample).
    absent_as_ref
        A site absent from a subject's VCF is homozygous reference (dosage 0); otherwise the
        call is missing (NaN). Use True only when each VCF lists every non-reference call of a
        fully covered genome.

    Returns
    -------
    Genotypes
        Sites (biallelic SNVs) in the cohort's contig order (first seen), then by position.
    """
    import pysam

    samples = list(vcfs)
    calls: dict[tuple, dict[int, float]] = {}
    contigs: dict[str, int] = {}
    skipped: Counter = Counter()
    for j, (subject, path) in enumerate(vcfs.items()):
        try:
            vcf = pysam.VariantFile(str(path))
        except (OSError, ValueError) as exc:
            raise VoxseqError(f"subject {subject}: cannot read VCF {path}: {exc}") from exc
        with vcf:
            sample = _pick_sample(vcf, subject, path)
            for c in vcf.header.contigs:
                contigs.setdefault(c, len(contigs))
            for rec in vcf.fetch() if vcf.index is not None else vcf:
                reason = _site_kind(rec.ref, rec.alts)
                if reason:
                    skipped[reason] += 1
                    continue
                contigs.setdefault(rec.chrom, len(contigs))
                key = (rec.chrom, rec.pos, rec.ref.upper())
                call = (rec.alts[0].upper(), _call_dosage(rec.samples[sample]))
                calls.setdefault(key, {})[j] = call
    return _assemble(samples, calls, contigs, skipped, absent_as_ref)


def _assemble(samples, calls, contigs, skipped, absent_as_ref) -> Genotypes:
    fill = 0.0 if absent_as_ref else np.nan
    keys, rows = [], []
    for key in sorted(calls, key=lambda k: (contigs[k[0]], k[1], k[2])):
        alts = {a for a, _ in calls[key].values()}
        if len(alts) > 1:
            skipped["alt_differs_between_subjects"] += 1
            continue
        row = np.full(len(samples), fill, dtype=np.float32)
        for j, (_, d) in calls[key].items():
            row[j] = d
        keys.append((*key, alts.pop()))
        rows.append(row)
    if skipped:
        log.info("genotypes: skipped %s", dict(skipped))
    return _from_keys(samples, keys, rows, dict(skipped))


def _from_keys(samples, keys, rows, skipped) -> Genotypes:
    m = len(keys)
    dosage = np.vstack(rows) if rows else np.zeros((0, len(samples)), np.float32)
    return Genotypes(samples, np.array([k[0] for k in keys], dtype=object),
                     np.array([k[1] for k in keys], dtype=np.int64).reshape(m),
                     np.array([k[2] for k in keys], dtype=object),
                     np.array([k[3] for k in keys], dtype=object), dosage, skipped=skipped)


def read_cohort_vcf(path: str, samples: Sequence[str] | None = None) -> Genotypes:
    """Cohort genotypes from one multi-sample VCF (``samples``: a subset, in that order)."""
    import pysam

    try:
        vcf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as exc:
        raise VoxseqError(f"cohort VCF {path}: cannot read: {exc}") from exc
    with vcf:
        names = list(samples) if samples is not None else list(vcf.header.samples)
        missing = [s for s in names if s not in vcf.header.samples]
        if missing:
            raise VoxseqError(f"subject(s) {missing[:5]}: not in cohort VCF {path}")
        vcf.subset_samples(names)
        keys, rows, skipped = [], [], Counter()
        for rec in vcf:
            reason = _site_kind(rec.ref, rec.alts)
            if reason:
                skipped[reason] += 1
                continue
            keys.append((rec.chrom, rec.pos, rec.ref.upper(), rec.alts[0].upper()))
            rows.append(np.array([_call_dosage(rec.samples[s]) for s in names], np.float32))
    if skipped:
        log.info("genotypes: skipped %s", dict(skipped))
    return _from_keys(names, keys, rows, dict(skipped))


@numba.njit(cache=True)
def _hwe_one(het: int, hom1: int, hom2: int) -> float:  # pragma: no cover - compiled
    homr = min(hom1, hom2)
    homc = max(hom1, hom2)
    rare = 2 * homr + het
    n = het + homr + homc
    if n == 0:
        return 1.0
    probs = np.zeros(rare + 1)
    mid = rare * (2 * n - rare) // (2 * n)
    if (mid % 2) != (rare % 2):
        mid += 1
    probs[mid] = 1.0
    total = 1.0
    cur_homr = (rare - mid) // 2
    cur_homc = n - mid - cur_homr
    h = mid
    while h > 1:
        probs[h - 2] = probs[h] * h * (h - 1.0) / (4.0 * (cur_homr + 1.0) * (cur_homc + 1.0))
        total += probs[h - 2]
        cur_homr += 1
        cur_homc += 1
        h -= 2
    cur_homr = (rare - mid) // 2
    cur_homc = n - mid - cur_homr
    h = mid
    while h <= rare - 2:
        probs[h + 2] = probs[h] * 4.0 * cur_homr * cur_homc / ((h + 2.0) * (h + 1.0))
        total += probs[h + 2]
        cur_homr -= 1
        cur_homc -= 1
        h += 2
    p = 0.0
    obs = probs[het]
    for i in range(rare + 1):
        if probs[i] <= obs * (1.0 + 1e-8):
            p += probs[i]
    return min(1.0, p / total)


@numba.njit(cache=True)
def _hwe_many(het, hom1, hom2):  # pragma: no cover - compiled
    out = np.empty(len(het))
    for i in range(len(het)):
        out[i] = _hwe_one(het[i], hom1[i], hom2[i])
    return out


def hwe_exact(het: np.ndarray, hom_ref: np.ndarray, hom_alt: np.ndarray) -> np.ndarray:
    """Hardy-Weinberg exact test p per variant (Wigginton et al. 2005; not mid-p).

    Parameters
    ----------
    het, hom_ref, hom_alt : (M,) genotype counts

    Returns
    -------
    (M,) float64 p-values (1 for a variant without calls)
    """
    return _hwe_many(np.asarray(het, np.int64), np.asarray(hom_ref, np.int64),
                     np.asarray(hom_alt, np.int64))


def hardcall_counts(dosage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hom_ref, het, hom_alt) counts per variant of the rounded dosage (M, N); NaN skipped."""
    h = np.rint(dosage)
    return (h == 0).sum(1), (h == 1).sum(1), (h == 2).sum(1)


def variant_qc(geno: Genotypes, min_call_rate: float = 0.9, min_maf: float = 0.01,
               min_mac: int = 5, min_hwe_p: float = 1e-15, min_sample_call_rate: float = 0.9
               ) -> tuple[np.ndarray, np.ndarray, list[dict], list[dict]]:
    """Sample call rate, then variant call rate, MAF, MAC and HWE filters.

    Returns
    -------
    keep_variants : (M,) bool
    keep_samples : (N,) bool (sample call rate over all variants >= ``min_sample_call_rate``)
    variant_rows : one dict per variant (``QC_COLUMNS``; ``reason``: failed filters, ``;``)
    sample_rows : one dict per sample (``subject``, ``call_rate``, ``pass``)
    """
    called = ~np.isnan(geno.dosage)
    m = called.shape[0]
    s_rate = called.mean(0) if m else np.ones(len(geno.samples))
    keep_s = s_rate >= min_sample_call_rate
    d = geno.dosage[:, keep_s]
    ns = int(keep_s.sum())
    hom_ref, het, hom_alt = hardcall_counts(d)
    n_called = hom_ref + het + hom_alt
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = n_called / ns if ns else np.zeros(m)
        alt_freq = (het + 2 * hom_alt) / (2 * n_called)
    mac = np.minimum(het + 2 * hom_alt, het + 2 * hom_ref)
    maf = np.minimum(alt_freq, 1 - alt_freq)
    hwe = hwe_exact(het, hom_ref, hom_alt)
    fails = {"call_rate": ~(rate >= min_call_rate), "maf": ~(maf >= min_maf),
             "mac": ~(mac >= min_mac), "hwe": ~(hwe >= min_hwe_p)}
    keep_v = ~np.any(list(fails.values()), axis=0) if m else np.zeros(0, bool)
    rows = [{"chrom": geno.chrom[i], "pos": int(geno.pos[i]), "id": geno.ids[i],
             "ref": geno.ref[i], "alt": geno.alt[i], "call_rate": float(rate[i]),
             "alt_freq": float(alt_freq[i]), "maf": float(maf[i]), "mac": int(mac[i]),
             "hwe_p": float(hwe[i]), "pass": "true" if keep_v[i] else "false",
             "reason": ";".join(k for k, f in fails.items() if f[i])} for i in range(m)]
    srows = [{"subject": s, "call_rate": float(r), "pass": "true" if k else "false"}
             for s, r, k in zip(geno.samples, s_rate, keep_s, strict=True)]
    log.info("variant QC: %d of %d variants pass, %d of %d samples pass call rate %.2f",
             int(keep_v.sum()), m, ns, len(geno.samples), min_sample_call_rate)
    return keep_v, keep_s, rows, srows


def write_qc_report(path: str, variant_rows: list[dict], sample_rows: list[dict],
                    skipped: Mapping[str, int] | None = None) -> None:
    """The variant QC table (``QC_COLUMNS``) and beside it ``<path stem>.samples.tsv``; records
    skipped before QC as rows with ``pass`` = ``skipped`` and the count in ``mac``."""
    extra = [{"chrom": "", "id": f"skipped:{k}", "mac": v, "pass": "skipped", "reason": k}
             for k, v in (skipped or {}).items()]
    write_tsv(path, [*variant_rows, *extra], QC_COLUMNS)
    stem = str(path)[:-4] if str(path).endswith(".tsv") else str(path)
    write_tsv(f"{stem}.samples.tsv", sample_rows, ["subject", "call_rate", "pass"])
