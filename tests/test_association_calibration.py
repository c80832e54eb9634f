"""Association calibration on simulated cohorts: null inflation, planted effects, a confound;
exactness against a per-variant least-squares fit with missing calls."""

from __future__ import annotations

import numpy as np
import pytest

from voxseq.genetics.association import (
    covariate_matrix,
    genotype_pcs,
    glm_linear,
    lambda_gc,
    use_pcs,
    write_glm,
)


def _genotypes(rng, m: int, n: int, freq=None) -> np.ndarray:
    freq = rng.uniform(0.05, 0.95, m) if freq is None else freq
    return rng.binomial(2, freq[:, None], (m, n)).astype(np.float32)


def test_null_lambda_gc():
    rng = np.random.default_rng(1)
    n, m = 1000, 10_000
    g = _genotypes(rng, m, n)
    g[rng.random(g.shape) < 0.01] = np.nan
    y = rng.normal(size=(n, 3))
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    res = glm_linear(g, y, x)
    for j in range(3):
        assert 0.95 <= lambda_gc(res.p[:, j]) <= 1.05
    assert (res.err == ".").all()


def test_planted_effects_found():
    rng = np.random.default_rng(2)
    n, m = 2000, 3000
    g = _genotypes(rng, m, n)
    causal = np.array([10, 500, 1200, 2222, 2900])
    effect = np.array([0.35, -0.3, 0.3, -0.35, 0.4])
    age = rng.uniform(20, 80, n)
    y = (np.nan_to_num(g[causal].T) @ effect + 0.02 * age + rng.normal(size=n))[:, None]
    res = glm_linear(g, y, age[:, None])
    p = res.p[:, 0]
    assert (p[causal] < 5e-8).all()
    assert np.array_equal(np.sign(res.beta[causal, 0]), np.sign(effect))
    null = np.setdiff1d(np.arange(m), causal)
    assert (p[null] >= 0.05 / m).all()


def _confounded(rng, n=800, m=3000):
    batch = rng.integers(0, 2, n)
    base = rng.uniform(0.1, 0.9, m)
    shift = rng.normal(0, 0.1, m)
    freq = np.clip(np.where(batch[None, :] == 1, base[:, None] + shift[:, None],
                            base[:, None] - shift[:, None]), 0.01, 0.99)
    g = rng.binomial(2, freq).astype(np.float32)
    y = (0.8 * batch + rng.normal(size=n))[:, None]
    return g, y, batch


def test_batch_confound_inflates_and_covariate_corrects():
    g, y, batch = _confounded(np.random.default_rng(3))
    unadjusted = lambda_gc(glm_linear(g, y).p[:, 0])
    x, _ = covariate_matrix({"batch": [f"b{b}" for b in batch]}, categorical=["batch"])
    adjusted = lambda_gc(glm_linear(g, y, x).p[:, 0])
    assert unadjusted > 1.2
    assert 0.95 <= adjusted <= 1.05
    # the first genotype PC finds the batch and corrects as well
    assert use_pcs(g.shape[1], g.shape[0], 1)
    pcs = genotype_pcs(g, 1)
    assert lambda_gc(glm_linear(g, y, pcs).p[:, 0]) <= 1.05


def test_pcs_rule():
    assert not use_pcs(150, 50_000, 10)
    assert not use_pcs(5000, 500, 10)
    assert not use_pcs(5000, 50_000, 0)
    assert use_pcs(500, 50_000, 10) and not use_pcs(199, 50_000, 10)


@pytest.mark.parametrize("miss_rate", [0.0, 0.05, 0.4])
def test_equals_per_variant_least_squares(miss_rate):
    rng = np.random.default_rng(4)
    n, m = 120, 60
    g = _genotypes(rng, m, n)
    g[rng.random(g.shape) < miss_rate] = np.nan
    y = rng.normal(size=(n, 2)) + 50
    y[rng.random(n) < 0.1, 1] = np.nan
    x, _ = covariate_matrix({"age": list(rng.uniform(20, 80, n)),
                             "site": list(rng.choice(["a", "b", "c", ""], n))}, ["site"])
    res = glm_linear(g, y, x, chunk=17)
    for j in range(2):
        for i in range(m):
            use = ~np.isnan(g[i]) & ~np.isnan(y[:, j]) & ~np.isnan(x).any(1)
            design = np.column_stack([np.ones(use.sum()), g[i, use], x[use]])
            coef, rss, *_ = np.linalg.lstsq(design, y[use, j], rcond=None)
            df = use.sum() - design.shape[1]
            cov = rss[0] / df * np.linalg.inv(design.T @ design)
            assert res.obs_ct[i, j] == use.sum() and res.err[i, j] == "."
            np.testing.assert_allclose(res.beta[i, j], coef[1], rtol=1e-8)
            np.testing.assert_allclose(res.se[i, j], np.sqrt(cov[1, 1]), rtol=1e-8)


def test_write_glm_plink2_layout(tmp_path):
    rng = np.random.default_rng(5)
    g = _genotypes(rng, 3, 40)
    g[1] = 0.0
    res = glm_linear(g, rng.normal(size=(40, 1)), rng.normal(size=(40, 1)))
    out = tmp_path / "x.glm.linear"
    write_glm(out, ["1"] * 3, [10, 20, 30], ["a", "b", "c"], ["A"] * 3, ["G"] * 3, res, 0)
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert lines[0][0] == "#CHROM" and lines[0][-1] == "ERRCODE"
    assert lines[2][8:] == ["NA", "NA", "NA", "NA", "CONST_OMITTED_ALLELE"]
    assert float(lines[1][8]) == pytest.approx(res.beta[0, 0], rel=1e-5)


def test_association_plots(tmp_path):
    from voxseq.genetics.plots import association_plots

    rng = np.random.default_rng(6)
    p = rng.uniform(size=400)
    p[7], p[9] = 1e-12, np.nan
    chrom = np.array(["1"] * 200 + ["2"] * 150 + ["10"] * 50)
    lam = association_plots(chrom, np.arange(400) * 100, p, "lesion_mm3",
                            tmp_path / "m.png", tmp_path / "q.png")
    assert lam == pytest.approx(lambda_gc(p))
    assert (tmp_path / "m.png").stat().st_size > 5000 and (tmp_path / "q.png").stat().st_size > 5000


def test_association_cohort_end_to_end(tmp_path):
    from voxseq.genetics.cohort import association_cohort
    from voxseq.genetics.genotypes import Genotypes
    from voxseq.genetics.plink import write_bed
    from voxseq.io.atomic import read_tsv, write_tsv

    rng = np.random.default_rng(7)
    n, m = 300, 400
    g = _genotypes(rng, m, n)
    samples = [f"s{i}" for i in range(n)]
    geno = Genotypes(samples, np.array(["1"] * m, dtype=object), np.arange(m) * 10 + 1,
                     np.array(["A"] * m, dtype=object), np.array(["G"] * m, dtype=object), g)
    write_bed(tmp_path / "g", geno)
    sex = rng.choice(["M", "F"], n)
    lesion = 50 + 30 * g[42] + 5 * (sex == "M") + rng.normal(0, 5, n)
    rows = [{"subject": s, "sex": sex[i], "age": f"{rng.uniform(20, 80):.1f}",
             "lesion_burden_mm3": f"{lesion[i]:.3f}" if i % 10 else ""}
            for i, s in enumerate(samples[:-5])]  # 5 genotyped subjects without a row
    write_tsv(tmp_path / "subjects.tsv", rows, ["subject", "sex", "age", "lesion_burden_mm3"])
    out = tmp_path / "assoc"
    summary = association_cohort(str(tmp_path / "g"), str(tmp_path / "subjects.tsv"),
                                 ["lesion_burden_mm3"], ["age", "sex"], str(out), n_pcs=2,
                                 pcs_min_samples=200, pcs_min_variants=100, block=150)
    assert summary["association_subjects"] == n - 5 and summary["association_pcs"] == 2
    assert summary["association_covariates"] == ["age", "sex=M", "PC1", "PC2"]
    top = summary["association_phenotypes"]["lesion_burden_mm3"]
    assert top["top_variant"] == "1:421:A:G" and top["hits"] >= 1 and top["top_beta"] > 0
    table = read_tsv(out / "lesion_burden_mm3.glm.linear")
    assert len(table) == m and table[42]["OBS_CT"] == str(len([r for r in rows
                                                               if r["lesion_burden_mm3"]]))
    assert (out / "lesion_burden_mm3_qq.png").is_file()
    # three blocks of variants give what one call on all of them gives
    from voxseq.genetics.subjects import phenotype_matrix

    kept = rows  # the genotyped subjects with a row, in genotype order
    x, _ = covariate_matrix({"age": [r["age"] for r in kept], "sex": [r["sex"] for r in kept]},
                            ["sex"])
    pcs_cols = genotype_pcs(g[:, : n - 5], 2)
    direct = glm_linear(g[:, : n - 5], phenotype_matrix(kept, ["lesion_burden_mm3"]),
                        np.column_stack([x, pcs_cols]))
    np.testing.assert_allclose([float(r["BETA"]) if r["BETA"] != "NA" else np.nan
                                for r in table], direct.beta[:, 0], rtol=1e-3, atol=1e-4)
    assert association_cohort(str(tmp_path / "g"), str(tmp_path / "subjects.tsv"),
                              ["lesion_burden_mm3"], ["age"], str(out), n_pcs=2,
                              pcs_min_samples=1000)["association_pcs"] == 0


def test_association_cohort_uses_dosages(tmp_path):
    from voxseq.genetics.cohort import association_cohort
    from voxseq.genetics.genotypes import Genotypes
    from voxseq.genetics.plink import write_bed
    from voxseq.io.atomic import read_tsv, write_tsv

    rng = np.random.default_rng(8)
    n, m = 60, 30
    ds = np.clip(_genotypes(rng, m, n) + rng.uniform(-0.3, 0.3, (m, n)), 0, 2).astype(np.float32)
    samples = [f"s{i}" for i in range(n)]
    write_bed(tmp_path / "g", Genotypes(samples, np.array(["1"] * m, dtype=object),
                                        np.arange(m) + 1, np.array(["A"] * m, dtype=object),
                                        np.array(["G"] * m, dtype=object), ds))
    np.save(tmp_path / "g.dosage.npy", ds)
    y = rng.normal(size=n)
    write_tsv(tmp_path / "s.tsv", [{"subject": s, "y": float(y[i])} for i, s in
                                   enumerate(samples)], ["subject", "y"])
    association_cohort(str(tmp_path / "g"), str(tmp_path / "s.tsv"), ["y"], [], str(tmp_path),
                       block=7)
    beta = [float(r["BETA"]) for r in read_tsv(tmp_path / "y.glm.linear")]
    y6 = np.array([float(f"{v:.6g}") for v in y])[:, None]
    np.testing.assert_allclose(beta, glm_linear(ds, y6).beta[:, 0], rtol=1e-5)
