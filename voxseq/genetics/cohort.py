"""Cohort entry points for the rules: genotypes + QC -> PLINK 1 files; subject table +
genotypes -> association tables, figures and a summary."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.genetics.association import (
    GENOME_WIDE,
    GlmResult,
    covariate_matrix,
    genotype_pcs,
    glm_linear,
    use_pcs,
    write_glm,
)
from voxseq.genetics.genotypes import (
    read_cohort_vcf,
    read_subject_vcfs,
    variant_qc,
    write_qc_report,
)
from voxseq.genetics.plink import read_bed, read_bed_dosage, write_bed
from voxseq.genetics.subjects import phenotype_matrix
from voxseq.io.atomic import atomic_path, read_tsv, write_json

log = logging.getLogger(__name__)

DOSAGE_SUFFIX = ".dosage.npy"  # (M, N) float32 ALT dosages beside a .bed of hard calls


def genotype_cohort(out_prefix: str, out_qc: str, vcfs: Mapping[str, str] | None = None,
                    cohort_vcf: str | None = None, samples: Sequence[str] | None = None,
                    absent_as_ref: bool = False, qc: Mapping[str, float] | None = None) -> dict:
    """Read the cohort's genotypes, run variant and sample QC, write the passing variants and
    samples as ``<out_prefix>.bed/.bim/.fam`` (hard calls; fractional dosages also as
    ``<out_prefix>.dosage.npy``) and the QC report ``out_qc`` (+ ``.samples.tsv``).

    ``qc``: keyword arguments of :func:`voxseq.genetics.genotypes.variant_qc`. Returns counts.
    """
    if vcfs:
        geno = read_subject_vcfs(vcfs, absent_as_ref)
    elif cohort_vcf:
        geno = read_cohort_vcf(cohort_vcf, samples)
    else:
        raise VoxseqError("genotypes: neither per-subject VCFs nor a cohort VCF given")
    keep_v, keep_s, rows, srows = variant_qc(geno, **(qc or {}))
    write_qc_report(out_qc, rows, srows, geno.skipped)
    kept = geno.subset(keep_v, keep_s)
    write_bed(out_prefix, kept)
    fractional = bool(np.any(np.nan_to_num(kept.dosage) % 1))
    if fractional:  # the .bed holds hard calls; the dosages (FORMAT DS) go beside it
        with atomic_path(f"{out_prefix}{DOSAGE_SUFFIX}") as tmp, open(tmp, "wb") as fh:
            np.save(fh, kept.dosage, allow_pickle=False)
        log.info("genotypes: fractional dosages kept in %s%s", out_prefix, DOSAGE_SUFFIX)
    return {"genotype_variants": len(rows), "genotype_variants_pass": int(keep_v.sum()),
            "genotype_samples": len(srows), "genotype_samples_pass": int(keep_s.sum()),
            "genotype_skipped": dict(geno.skipped), "genotype_dosages": fractional}


def association_cohort(bfile: str, subjects_tsv: str, phenotypes: Sequence[str],
                       covariates: Sequence[str], out_dir: str, n_pcs: int = 0,
                       pcs_min_samples: int = 200, pcs_min_variants: int = 1000,
                       seed: int = 0, block: int = 100_000) -> dict:
    """Every phenotype column of ``subjects.tsv`` against every variant of ``bfile``.

    The ALT dosage is that of ``<bfile>.dosage.npy`` when :func:`genotype_cohort` wrote one
    (fractional FORMAT DS dosages), else the .bed's hard calls. Writes
    ``<out_dir>/<phenotype>.glm.linear`` (plink2's layout), ``<phenotype>_manhattan.png``,
    ``<phenotype>_qq.png`` and ``association.json``. Covariates: the named subject-table columns
    (numeric when every present value is a number, else categorical as k-1 dummies), plus the
    first ``n_pcs`` genotype PCs when :func:`voxseq.genetics.association.use_pcs` allows it
    (from at most 50,000 evenly spaced variants). Subjects: those both genotyped and in the
    table. The genotypes are read ``block`` variants at a time (memory: ~ 40 x N x block bytes).
    """
    table = {r["subject"]: r for r in read_tsv(subjects_tsv)}
    missing = [c for c in (*phenotypes, *covariates) if c not in next(iter(table.values()), {})]
    if missing:
        raise VoxseqError(f"subject table {subjects_tsv}: no column(s) {missing}")
    meta = read_bed(bfile, 0, 0)
    with open(f"{bfile}.bim") as fh:
        n, m = len(meta.samples), sum(1 for line in fh if line.strip())
    sel = np.array([s in table for s in meta.samples])
    if sel.sum() < 3:
        raise VoxseqError(f"association: {int(sel.sum())} subject(s) both genotyped ({bfile}) "
                          f"and in {subjects_tsv}")
    rows = [table[s] for s in np.asarray(meta.samples)[sel]]
    cols = {c: [r[c] for r in rows] for c in covariates}
    x, names = covariate_matrix(cols, [c for c, v in cols.items() if not _numeric(v)])
    pcs = use_pcs(len(rows), m, n_pcs, pcs_min_samples, pcs_min_variants)
    if pcs:
        idx = np.unique(np.linspace(0, m - 1, min(m, 50_000)).astype(np.int64))
        x = np.column_stack([x, genotype_pcs(read_bed_dosage(bfile, n, m, idx)[:, sel], n_pcs,
                                             seed)])
        names += [f"PC{i + 1}" for i in range(n_pcs)]
    y = phenotype_matrix(rows, phenotypes)
    dosages = Path(f"{bfile}{DOSAGE_SUFFIX}")
    dosages = np.load(dosages, mmap_mode="r", allow_pickle=False) if dosages.is_file() else None
    parts, res = [], None
    for lo in range(0, m, block):
        part = read_bed(bfile, lo, lo + block)
        if dosages is not None:
            part.dosage = np.asarray(dosages[lo:lo + block], np.float32)
        parts.append(part)
        r = glm_linear(part.dosage[:, sel], y, x, names=list(phenotypes), warn=not lo)
        res = r if res is None else GlmResult(*(np.concatenate([getattr(res, f), getattr(r, f)])
                                                for f in GlmResult.__dataclass_fields__))
    geno = {f: np.concatenate([getattr(p, f) for p in parts]) if parts else np.zeros(0)
            for f in ("chrom", "pos", "ids", "ref", "alt")}
    summary = {"association_subjects": len(rows), "association_variants": m,
               "association_covariates": names, "association_pcs": n_pcs if pcs else 0,
               "association_phenotypes": {}}
    for j, name in enumerate(phenotypes):
        summary["association_phenotypes"][name] = _phenotype_outputs(Path(out_dir), name, geno,
                                                                     res, j)
    write_json(Path(out_dir) / "association.json", summary)
    return summary


def _phenotype_outputs(out: Path, name: str, geno: dict, res: GlmResult, j: int) -> dict:
    """Write one phenotype's table and figures; its summary entry."""
    from voxseq.genetics.plots import association_plots

    write_glm(out / f"{name}.glm.linear", geno["chrom"], geno["pos"], geno["ids"], geno["ref"],
              geno["alt"], res, j)
    lam = association_plots(geno["chrom"], geno["pos"], res.p[:, j], name,
                            out / f"{name}_manhattan.png", out / f"{name}_qq.png")
    p = res.p[:, j]
    best = int(np.nanargmin(p)) if np.isfinite(p).any() else None
    return {"lambda_gc": lam, "tested": int(np.isfinite(p).sum()),
            "hits": int((p < GENOME_WIDE).sum()),
            "top_variant": None if best is None else str(geno["ids"][best]),
            "top_p": None if best is None else float(p[best]),
            "top_beta": None if best is None else float(res.beta[best, j]),
            "obs_ct_max": int(res.obs_ct[:, j].max()) if len(p) else 0}


def _numeric(values: Sequence[str]) -> bool:
    present = [v for v in values if v not in ("", None)]
    try:
        [float(v) for v in present]
    except ValueError:
        return False
    return True
