"""Association: voxseq against ``plink2 --glm omit-ref hide-covar`` on one synthetic cohort.

Builds (once, cached in ``--workdir``) ``--subjects`` x ``--snps`` genotypes as PLINK 1 files
(ALT frequencies 0.02-0.98, 1 % missing calls), ``--phenotypes`` quantitative phenotypes (two
with 5 % missing values) and covariates (age, sex, a 3-level categorical site), then times, at
``--threads`` threads each (plink2 ``--threads``; voxseq's BLAS through threadpoolctl), end to
end from the same files to the same ``.glm.linear`` tables:

- plink2: ``plink2 --bfile ... --pheno ... --covar ... --glm omit-ref hide-covar``;
- voxseq: read the .bed and tables, :func:`voxseq.genetics.association.glm_linear`, and
  :func:`~voxseq.genetics.association.write_glm` per phenotype (its compute-only time printed
  beside).

Then it compares every BETA, SE, T_STAT and P that plink2 printed (6 significant digits) with
voxseq's, and checks that OBS_CT and the NA rows agree. The last line reads
``association_vs_plink2=<voxseq seconds / plink2 seconds> max_rel_diff=<largest relative
difference>``.

    python benchmarks/association.py --workdir /tmp/assocbench --threads 1
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# this folder's coverage.py would shadow the coverage package numba imports
sys.path = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from voxseq.genetics.association import covariate_matrix, glm_linear, write_glm  # noqa: E402
from voxseq.genetics.genotypes import Genotypes  # noqa: E402
from voxseq.genetics.plink import read_bed, write_bed  # noqa: E402

COVARS = ("age", "sex", "site")


def build(work: Path, n: int, m: int, p: int, seed: int) -> None:
    """Write ``cohort.bed/.bim/.fam``, ``pheno.tsv`` and ``covar.tsv`` (plink2's layout)."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:06d}" for i in range(n)]
    freq = rng.uniform(0.02, 0.98, m).astype(np.float32)
    dosage = np.empty((m, n), np.float32)
    for lo in range(0, m, 10_000):
        block = rng.binomial(2, freq[lo:lo + 10_000, None], (min(10_000, m - lo), n))
        dosage[lo:lo + 10_000] = np.where(rng.random(block.shape) < 0.01, np.nan, block)
    chrom = np.array([str(1 + i * 22 // m) for i in range(m)], dtype=object)
    geno = Genotypes(samples, chrom, np.arange(m, dtype=np.int64) * 100 + 1,
                     np.full(m, "A", dtype=object), np.full(m, "G", dtype=object), dosage)
    write_bed(work / "cohort", geno)
    site = rng.choice(["siteA", "siteB", "siteC"], n)
    age, sex = rng.uniform(20, 90, n), rng.integers(0, 2, n)
    lines = ["#FID\tIID\tage\tsex\tsite"] + [f"{s}\t{s}\t{float(age[i])!r}\t{sex[i]}\t{site[i]}"
                                            for i, s in enumerate(samples)]
    (work / "covar.tsv").write_text("\n".join(lines) + "\n")
    y = rng.normal(size=(n, p)) + 0.02 * age[:, None]
    y[:, : p // 2] += 0.3 * np.nan_to_num(dosage[:p // 2].T - 1)  # some signal
    y[rng.random((n, p)) < 0.05 * (np.arange(p) < 2)] = np.nan
    names = [f"y{j + 1}" for j in range(p)]
    lines = ["#FID\tIID\t" + "\t".join(names)] + [
        f"{s}\t{s}\t" + "\t".join("NA" if np.isnan(v) else repr(float(v)) for v in y[i])
        for i, s in enumerate(samples)]
    (work / "pheno.tsv").write_text("\n".join(lines) + "\n")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path) as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return rows[0], rows[1:]


def run_voxseq(work: Path, out: Path):
    """voxseq end to end; returns (total seconds, compute seconds, phenotype names, results)."""
    t0 = time.perf_counter()
    geno = read_bed(work / "cohort")
    head, prow = _read(work / "pheno.tsv")
    _, crow = _read(work / "covar.tsv")
    y = np.array([[np.nan if v == "NA" else float(v) for v in r[2:]] for r in prow])
    x, _ = covariate_matrix({c: [r[2 + i] for r in crow] for i, c in enumerate(COVARS)},
                            ["site"])
    t1 = time.perf_counter()
    res = glm_linear(geno.dosage, y, x, names=head[2:])
    compute = time.perf_counter() - t1
    out.mkdir(parents=True, exist_ok=True)
    for j, name in enumerate(head[2:]):
        write_glm(out / f"voxseq.{name}.glm.linear", geno.chrom, geno.pos, geno.ids, geno.ref,
                  geno.alt, res, j)
    return time.perf_counter() - t0, compute, head[2:], res


def run_plink2(work: Path, out: Path, threads: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["plink2", "--bfile", str(work / "cohort"), "--pheno", str(work / "pheno.tsv"),
           "--covar", str(work / "covar.tsv"), "--glm", "omit-ref", "hide-covar",
           "--threads", str(threads), "--out", str(out / "plink2")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def compare(out: Path, names: list[str], res) -> float:
    """Largest relative difference of plink2's printed BETA, SE, T_STAT, P from voxseq's
    values; exits on any OBS_CT or NA mismatch."""
    worst = 0.0
    for j, name in enumerate(names):
        head, theirs = _read(out / f"plink2.{name}.glm.linear")
        col = {c: head.index(c) for c in ("OBS_CT", "BETA", "SE", "T_STAT", "P", "ERRCODE")}
        obs = np.array([int(r[col["OBS_CT"]]) for r in theirs])
        err = np.array([r[col["ERRCODE"]] for r in theirs], dtype=object)
        if not (np.array_equal(obs, res.obs_ct[:, j]) and np.array_equal(err, res.err[:, j])):
            raise SystemExit(f"{name}: OBS_CT or ERRCODE differ from plink2's")
        ok = err == "."
        for c, ours in (("BETA", res.beta), ("SE", res.se), ("T_STAT", res.t), ("P", res.p)):
            vb = np.array([float(r[col[c]]) for r in theirs])[ok]
            rel = np.abs(ours[ok, j] - vb) / np.maximum(np.abs(vb), 1e-300)
            worst = max(worst, float(rel.max()) if rel.size else 0.0)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/assocbench"))
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--snps", type=int, default=100_000)
    parser.add_argument("--phenotypes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("plink2") is None:
        raise SystemExit("plink2 not found: see benchmarks/README.md (Debian: apt-get install "
                         "plink2)")
    from threadpoolctl import threadpool_limits

    work = args.workdir / f"n{args.subjects}_m{args.snps}_p{args.phenotypes}_s{args.seed}"
    if not (work / "pheno.tsv").is_file():
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build(work, args.subjects, args.snps, args.phenotypes, args.seed)
        print(f"built {work} in {time.perf_counter() - t:.1f} s")
    out = work / "out"
    plink_s = run_plink2(work, out, args.threads)
    with threadpool_limits(args.threads):
        ours, compute, names, res = run_voxseq(work, out)
    diff = compare(out, names, res)
    print(f"plink2 {plink_s:.2f} s; voxseq {ours:.2f} s (glm_linear {compute:.2f} s) at "
          f"{args.threads} thread(s); {args.subjects} subjects x {args.snps} SNPs x "
          f"{args.phenotypes} phenotypes")
    print(f"association_vs_plink2={ours / plink_s:.2f} max_rel_diff={diff:.2e}")


if __name__ == "__main__":
    main()
