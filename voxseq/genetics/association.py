"""Per-variant linear association, equal to ``plink2 --glm omit-ref hide-covar``.

For each phenotype and variant: OLS of the phenotype on intercept + ALT dosage + covariates.
A phenotype uses the samples with its value and every covariate present; a variant further
drops the samples whose call is missing (``OBS_CT``). As plink2, a variant gets NA with an
error code when ``OBS_CT`` <= the number of predictors (intercept, dosage, covariates:
``SAMPLE_CT<=PREDICTOR_CT``), when its dosage is constant (``CONST_OMITTED_ALLELE``), when two
predictors correlate above ``max_corr`` (``CORR_TOO_HIGH``, plink2 ``--max-corr``, 0.999),
when the predictors' correlation matrix is singular (``VIF_INFINITE``) or a predictor's
variance inflation factor exceeds ``vif`` (``VIF_TOO_HIGH``, plink2 ``--vif``, 50).

Vectorised: the samples are grouped by phenotype-and-covariate missingness pattern; per group
the covariates are orthonormalised once (Q of a QR), the phenotypes and a chunk of variants
(missing calls filled with 0) are residualised on them, and one matrix product gives every
variant x phenotype cross-product. A variant's missing calls are dropped exactly by the
equivalent of one indicator column per missing sample (Frisch-Waugh-Lovell), whose effect is
a k x k correction per variant (Woodbury) from further matrix products over the missingness
mask; nothing loops over variants in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse, special
from scipy.linalg import blas

log = logging.getLogger(__name__)

GENOME_WIDE = 5e-8  # the conventional genome-wide significance level
ERR_SAMPLE_CT = "SAMPLE_CT<=PREDICTOR_CT"
ERR_CONST = "CONST_OMITTED_ALLELE"  # biallelic: either allele fixed
ERR_CORR = "CORR_TOO_HIGH"
ERR_VIF_INF = "VIF_INFINITE"
ERR_VIF = "VIF_TOO_HIGH"
ERR_COVARS = "COVARIATES_COLLINEAR"  # plink2 skips such a phenotype, voxseq reports NA rows


@dataclass
class GlmResult:
    """Association results, (M, P) arrays: variants x phenotypes.

    beta, se, t, p : float64, NaN where ``err`` is set
    obs_ct : int64 samples in the regression
    err : object array of plink2 error codes, ``"."`` when none
    """

    beta: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    obs_ct: np.ndarray
    err: np.ndarray


def integer_012(y: np.ndarray) -> bool:
    """True for a phenotype whose present values are all 0, 1 or 2 (plink2: case/control)."""
    v = y[~np.isnan(y)]
    return v.size > 0 and bool(np.isin(v, (0.0, 1.0, 2.0)).all())


def glm_linear(dosage: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray | None = None,
               names: list[str] | None = None, max_corr: float = 0.999, vif: float = 50.0,
               chunk: int = 8192, warn: bool = True) -> GlmResult:
    """Association of every variant with every phenotype, as plink2 ``--glm`` (linear).

    Parameters
    ----------
    dosage : (M, N) ALT dosage, NaN for a missing call
    phenotypes : (N, P) float, NaN for a missing value; always quantitative (an integer 0/1/2
        phenotype, which plink2 would read as case/control, is logged as a warning)
    covariates : (N, C) float numeric covariates and categorical dummies, NaN for missing;
        no intercept column (it is added)
    names : phenotype names for the log
    max_corr, vif : plink2's ``--max-corr`` and ``--vif`` thresholds
    chunk : variants per block (memory ~ 8 x N x chunk x 4 bytes)
    warn : log the 0/1/2 phenotype warning (off for later blocks of one analysis)
    """
    m, n = dosage.shape
    y = np.asarray(phenotypes, np.float64).reshape(n, -1)
    c = np.zeros((n, 0)) if covariates is None else np.asarray(covariates, np.float64)
    c = c.reshape(n, -1)
    names = names or [f"pheno{i + 1}" for i in range(y.shape[1])]
    for j, name in enumerate(names):
        if warn and integer_012(y[:, j]):
            log.warning("phenotype %s has only 0/1/2 values: treated as quantitative "
                        "(plink2 would read it as case/control)", name)
    shape = (m, y.shape[1])
    res = GlmResult(np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan),
                    np.full(shape, np.nan), np.zeros(shape, np.int64),
                    np.full(shape, ".", dtype=object))
    present = ~np.isnan(y) & ~np.isnan(c).any(1, keepdims=True)
    patterns, inverse = np.unique(present.T, axis=0, return_inverse=True)
    for g, mask in enumerate(patterns):
        cols = np.flatnonzero(inverse.ravel() == g)
        samples = np.flatnonzero(mask)
        cc = c[samples] - c[samples].mean(0) if samples.size else c[samples]
        q, rank = _basis(cc)
        yg = y[np.ix_(samples, cols)]
        yr = yg - q @ (q.T @ yg)  # residualised once per missingness pattern
        for lo in range(0, m, chunk):
            block = _Block(dosage[lo:lo + chunk][:, samples], cc, q, yr)
            block.fill(res, slice(lo, lo + chunk), cols, rank < cc.shape[1] + 1, max_corr, vif)
    return res


class _Block:
    """A block of variants against the phenotypes of one sample set (variant-major arrays)."""

    def __init__(self, gt: np.ndarray, cc: np.ndarray, q: np.ndarray, yr: np.ndarray):
        self.miss = np.isnan(gt)  # (m, n)
        self.g = np.array(gt, dtype=np.float64, order="C")  # dgemm below needs C order
        self.g[self.miss] = 0.0
        self.w = sparse.csr_array(self.miss, dtype=np.float64)  # missing calls are few
        self.obs = gt.shape[1] - self.miss.sum(1)
        with np.errstate(invalid="ignore"):
            self.constant = ~(np.fmax.reduce(gt, axis=1) > np.fmin.reduce(gt, axis=1))
        self.cc, self.q, self.yr = cc, q, yr

    def fill(self, res: GlmResult, rows: slice, cols: np.ndarray, covars_collinear: bool,
             max_corr: float, vif: float) -> None:
        """Compute and store the block's statistics and error codes."""
        m, n_pred = self.g.shape[0], self.cc.shape[1] + 2
        err = np.full((m, len(cols)), ERR_COVARS if covars_collinear else ".", dtype=object)
        codes = _collinear(self.g, self.w, self.obs, self.cc, max_corr, vif)
        for code, name in ((3, ERR_VIF), (2, ERR_VIF_INF), (1, ERR_CORR)):
            err[codes == code] = name
        gmg, gmy, ymy, ok_solve = self._residual_products()
        err[~ok_solve] = ERR_VIF_INF
        err[self.constant] = ERR_CONST
        err[self.obs <= n_pred] = ERR_SAMPLE_CT
        df = (self.obs - self.q.shape[1] - 1)[:, None].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = gmy / gmg[:, None]
            rss = np.maximum(ymy - beta * gmy, 0.0)
            se = np.sqrt(rss / df / gmg[:, None])
            t = beta / se
            p = 2.0 * special.stdtr(df, -np.abs(t))
        good = err == "."
        for name, val in (("beta", beta), ("se", se), ("t", t), ("p", p)):
            getattr(res, name)[rows, cols] = np.where(good, val, np.nan)
        res.obs_ct[rows, cols] = np.broadcast_to(self.obs[:, None], err.shape)
        res.err[rows, cols] = err

    def _residual_products(self):
        """g'Mg (m,), g'My (m, P), y'My (m, P) with M the residual maker of [covariates, one
        indicator per missing call of the variant]; and (m,) False where dropping the missing
        samples leaves the covariates rank deficient. Residualises ``g`` in place."""
        q, yr, g = self.q, self.yr, self.g
        if q.shape[1]:  # g -= (g @ q) @ q.T in place (one BLAS call, no (m, n) temporary)
            blas.dgemm(-1.0, q, g @ q, beta=1.0, c=g.T, trans_b=True, overwrite_c=True)
        gmy = g @ yr  # the one product: every variant x every phenotype
        gmg = np.einsum("ij,ij->i", g, g)
        ymy = np.broadcast_to(np.einsum("ij,ij->j", yr, yr), gmy.shape).copy()
        ok = np.ones(g.shape[0], bool)
        idx = np.flatnonzero(self.obs < g.shape[1])
        if idx.size:
            w = self.w[idx]
            k, p = q.shape[1], yr.shape[1]
            wg = sparse.csr_array(self.w.multiply(g))[idx]
            qq = (q[:, :, None] * q[:, None, :]).reshape(len(q), -1)
            a = np.eye(k) - (w @ qq).reshape(-1, k, k)
            qdg = wg @ q  # (m', k)
            qdy = (w @ (q[:, :, None] * yr[:, None, :]).reshape(len(q), -1)).reshape(-1, k, p)
            ok_sub = np.linalg.cond(a) < 1e10 if k else np.ones(len(idx), bool)
            a[~ok_sub] = np.eye(k)
            sol = np.linalg.solve(a, np.concatenate([qdg[:, :, None], qdy], axis=2))
            gdgd = np.asarray(wg.multiply(wg).sum(1)).ravel()
            gmg[idx] -= gdgd + np.einsum("mk,mk->m", qdg, sol[:, :, 0])
            gmy[idx] -= wg @ yr + np.einsum("mk,mkp->mp", qdg, sol[:, :, 1:])
            ymy[idx] -= w @ (yr * yr) + np.einsum("mkp,mkp->mp", qdy, sol[:, :, 1:])
            ok[idx] = ok_sub
        return gmg, gmy, ymy, ok


def _basis(cc: np.ndarray) -> tuple[np.ndarray, int]:
    """Orthonormal basis (n, r) of [1, covariates] and its rank r."""
    n = cc.shape[0]
    design = np.column_stack([np.ones(n), cc])
    if n == 0:
        return np.zeros((0, design.shape[1])), design.shape[1]
    q, r = np.linalg.qr(design)
    diag = np.abs(np.diag(r))
    keep = diag > 1e-10 * max(diag.max(), 1.0) * np.sqrt(n)
    return q[:, keep], int(keep.sum())


def _collinear(g0, w, obs, cc, max_corr, vif):
    """plink2's multicollinearity checks on the correlation matrix of [dosage, covariates]
    over each variant's own samples: (m,) codes 0 fine, 1 a correlation above ``max_corr``,
    2 singular (VIF infinite), 3 a VIF above ``vif``."""
    m, qn = g0.shape[0], cc.shape[1]
    if qn == 0:
        return np.zeros(m, np.int8)
    nn = np.maximum(obs, 1).astype(np.float64)
    s_c = cc.sum(0)[None, :] - w @ cc  # (m, q)
    s_cc = (cc.T @ cc)[None] - (w @ (cc[:, :, None] * cc[:, None, :]).reshape(len(cc), -1)
                                ).reshape(m, qn, qn)
    s = np.empty((m, qn + 1, qn + 1))
    s[:, 0, 0] = np.einsum("ij,ij->i", g0, g0)
    s[:, 0, 1:] = s[:, 1:, 0] = g0 @ cc
    s[:, 1:, 1:] = s_cc
    mean = np.column_stack([g0.sum(1), s_c]) / nn[:, None]
    cov = s / nn[:, None, None] - mean[:, :, None] * mean[:, None, :]
    sd = np.sqrt(np.clip(np.einsum("mii->mi", cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / (sd[:, :, None] * sd[:, None, :])
    bad_sd = ~(sd > 1e-12 * np.maximum(np.abs(mean), 1.0)).all(1)
    corr[bad_sd] = np.eye(qn + 1)
    off = np.abs(corr - np.eye(qn + 1)[None]).max(axis=(1, 2))
    wv, vv = np.linalg.eigh(corr)
    singular = wv[:, 0] <= 1e-12 * wv[:, -1]
    vifs = (vv ** 2 / np.where(singular[:, None], 1.0, wv)[:, None, :]).sum(-1)
    codes = np.where(singular | bad_sd, 2, np.where(vifs.max(1) > vif, 3, 0)).astype(np.int8)
    codes[(off > max_corr) & ~bad_sd] = 1
    return codes


def covariate_matrix(columns: dict[str, list], categorical: list[str] | tuple = ()
                     ) -> tuple[np.ndarray, list[str]]:
    """Covariate design (without intercept) from per-sample values.

    Parameters
    ----------
    columns : name -> N values (str or float); "", "NA" or NaN is missing
    categorical : names coded as k-1 dummies (levels sorted; the first is the reference; a
        column with one level gives no dummy); other columns are numeric

    Returns
    -------
    (N, C) float64 with NaN for a missing value (all of a categorical's dummies), column names
    (``<name>=<level>`` for dummies)
    """
    out, names = [], []
    for name, values in columns.items():
        if name in categorical:
            vals = ["" if _missing(v) else str(v) for v in values]
            levels = sorted({v for v in vals if v})
            for level in levels[1:]:
                out.append([np.nan if not v else float(v == level) for v in vals])
                names.append(f"{name}={level}")
        else:
            out.append([np.nan if _missing(v) else float(v) for v in values])
            names.append(name)
    n = len(next(iter(columns.values()))) if columns else 0
    return (np.array(out, np.float64).T if out else np.zeros((n, 0))), names


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() in ("", "NA")


def lambda_gc(p: np.ndarray) -> float:
    """Genomic inflation: median chi-square (1 df) of the p-values over its null median 0.4549."""
    p = np.asarray(p, np.float64)
    p = p[np.isfinite(p)]
    if not p.size:
        return float("nan")
    return float(np.median(special.chdtri(1, p)) / special.chdtri(1, 0.5))


def genotype_pcs(dosage: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The first ``k`` principal components of the standardised dosage (missing: the mean).

    Parameters
    ----------
    dosage : (M, N) QC-passed variants x samples, NaN missing
    k : number of components (at most min(M, N) - 1)

    Returns
    -------
    (N, k) float64 sample scores (left singular vectors scaled by their singular values)
    """
    from scipy.sparse.linalg import svds

    mean = np.nanmean(dosage, axis=1, keepdims=True)
    sd = np.nanstd(dosage, axis=1, keepdims=True)
    keep = (sd > 0).ravel()
    z = np.nan_to_num((dosage[keep] - mean[keep]) / sd[keep]).T
    u, s, _ = svds(z, k=k, random_state=seed)  # ARPACK: k largest, ascending
    order = np.argsort(s)[::-1]
    return u[:, order] * s[order]


def use_pcs(n_samples: int, n_variants: int, k: int, min_samples: int = 200,
            min_variants: int = 1000) -> bool:
    """The rule for genotype PCs as covariates: ``k`` > 0, at least ``min_samples`` samples
    (and 20 per PC) and ``min_variants`` QC-passed variants; a smaller cohort has too few
    samples for PCs to capture ancestry rather than noise."""
    return k > 0 and n_samples >= max(min_samples, 20 * k) and n_variants >= min_variants


GLM_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT", "BETA", "SE",
               "T_STAT", "P", "ERRCODE")


def write_glm(path: str, chrom, pos, ids, ref, alt, res: GlmResult, j: int) -> None:
    """Phenotype ``j``'s results as plink2's ``.glm.linear`` (6 significant digits, NA)."""
    from voxseq.io.atomic import write_text

    def num(col: np.ndarray) -> list[str]:
        return ["NA" if not np.isfinite(v) else f"{v:.6g}" for v in col.tolist()]

    m = len(pos)
    cols = [list(map(str, chrom)), list(map(str, pos)), list(map(str, ids)),
            list(map(str, ref)), list(map(str, alt)), list(map(str, alt)), ["ADD"] * m,
            list(map(str, res.obs_ct[:, j].tolist())), num(res.beta[:, j]), num(res.se[:, j]),
            num(res.t[:, j]), num(res.p[:, j]), list(map(str, res.err[:, j]))]
    body = "".join("\t".join(row) + "\n" for row in zip(*cols, strict=True))
    write_text(path, "\t".join(GLM_COLUMNS) + "\n" + body)
