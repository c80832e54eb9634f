"""Cohort QC figures on small synthetic inputs: each writes a readable PNG, atomically."""

from __future__ import annotations

import math

import matplotlib.image
import matplotlib.text
import numpy as np
import pytest
from sklearn.decomposition import PCA

from voxseq.figures import pyplot
from voxseq.qc import plots


def _check_png(path) -> np.ndarray:
    """``path`` is a non-empty PNG that matplotlib reads, with no temporary left beside it."""
    assert path.is_file() and path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 10 and image.shape[1] > 10
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    return image


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return [t for t in out if t]


def _close(fig) -> None:
    pyplot().close(fig)


def _rows() -> list[dict]:
    rows = [
        {
            "subject": f"s{i:02d}",
            "score": float(i % 5) - 1.0,
            "flagged": False,
            "group": ("train", "val", "test")[i % 3],
        }
        for i in range(12)
    ]
    rows += [
        {"subject": "odd1", "score": 7.1, "flagged": True, "group": "new"},
        {"subject": "odd2", "score": 5.2, "flagged": True, "group": "test"},
        {"subject": "broken", "score": math.nan, "flagged": False, "group": "new"},
        {"subject": "none", "score": None, "flagged": True, "group": "train"},
    ]
    return rows


# ---- score strip -----------------------------------------------------------------------------
def test_score_strip_png(tmp_path):
    out = tmp_path / "qc" / "scores.png"
    assert plots.score_strip(_rows(), 4.0, out, "imaging QC scores") is None
    _check_png(out)
    plots.score_strip(_rows(), 4.0, out, "again")  # overwrite in place
    _check_png(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.png"]


def test_score_strip_content():
    fig = plots.score_strip_figure(_rows(), 4.0, "imaging QC scores")
    texts = _texts(fig)
    ax = fig.axes[0]
    assert "2 subject(s) without a score omitted" in ax.get_title()
    assert "odd1" in texts and "odd2" in texts and "s00" not in texts  # flagged named only
    assert "threshold 4" in texts
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert [t.split("\n")[0] for t in ticks] == ["train", "val", "test", "new"]
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert len(points) == 14 and np.isfinite(points).all()
    _close(fig)
    # deterministic: the same rows in another order draw the same points
    again = plots.score_strip_figure(_rows()[::-1], 4.0, "x")
    other = np.concatenate(
        [c.get_offsets() for c in again.axes[0].collections if len(c.get_offsets())]
    )
    assert np.allclose(np.sort(points, axis=0), np.sort(other, axis=0))
    _close(again)


def test_score_strip_edge_cases(tmp_path):
    nan_only = [{"subject": "a", "score": math.nan, "flagged": False}]
    out = tmp_path / "nan.png"
    plots.score_strip(nan_only, 3.0, out, "all NaN")
    _check_png(out)
    plots.score_strip([], 3.0, tmp_path / "empty.png", "empty")
    _check_png(tmp_path / "empty.png")
    ungrouped = [
        {"subject": "a", "score": 1.0, "flagged": False},
        {"subject": "b", "score": 9.0, "flagged": "yes"},
    ]
    fig = plots.score_strip_figure(ungrouped, math.nan, "no groups, no threshold")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["n=2"]
    assert "b" in _texts(fig) and not any(t.startswith("threshold") for t in _texts(fig))
    _close(fig)


# ---- latent map ------------------------------------------------------------------------------
def test_latent_map_first_column_is_pca_first_component(tmp_path):
    t = np.linspace(-3, 3, 9)
    direction = np.array([1.0, 2.0, -2.0]) / 3.0  # unit vector
    codes = 5.0 + t[:, None] * direction  # points on a line through (5, 5, 5)
    subjects = [f"s{i}" for i in range(9)]
    out = tmp_path / "latent.png"
    coords = plots.latent_map(
        codes, subjects, ["a", "b", ""] * 3, out, "latent codes", flagged=["s8"]
    )
    _check_png(out)
    assert coords.shape == (9, 2)
    expected = PCA(n_components=2, svd_solver="full").fit_transform(codes)
    assert np.allclose(coords, expected)
    # known answer: the position along the line (up to sign), nothing off it
    assert np.allclose(np.abs(coords[:, 0]), np.abs(t))
    assert np.allclose(coords[:, 0] * np.sign(coords[-1, 0]), t)
    assert np.allclose(coords[:, 1], 0, atol=1e-9)
    # same as sklearn's default solver up to the sign of the component
    default = PCA(n_components=2).fit_transform(codes)[:, 0]
    assert np.allclose(np.abs(default), np.abs(coords[:, 0]))


def test_latent_map_figure_content():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(12, 4))
    subjects = [f"s{i}" for i in range(12)]
    fig, coords = plots.latent_map_figure(
        codes,
        subjects,
        ["site1"] * 6 + ["site2"] * 5 + [""],
        "latent",
        flagged={"s3", "zz"},
        legend_title="site",
    )
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and "% of variance" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("PC2 (")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["site1 (n=6)", "site2 (n=5)", "n/a (n=1)", "flagged (n=1)"]
    assert ax.get_legend().get_title().get_text() == "site"
    assert "s3" in _texts(fig) and "s4" not in _texts(fig)
    ratio = PCA(n_components=2, svd_solver="full").fit(codes).explained_variance_ratio_
    assert f"{100 * ratio[0]:.1f}%" in ax.get_xlabel()
    assert np.allclose(coords, PCA(n_components=2, svd_solver="full").fit_transform(codes))
    _close(fig)


@pytest.mark.parametrize(
    "codes",
    [
        np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 0.0]]),  # N=2
        np.array([[0.5, 1.5]]),  # N=1
        np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]),  # identical codes
        np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 1.0]]),  # one without finite codes
        np.array([[np.nan, 1.0]]),  # none finite
        np.zeros((0, 3)),  # no subject
    ],
)
def test_latent_map_small_inputs(tmp_path, codes):
    n = len(codes)
    out = tmp_path / "latent.png"
    with np.errstate(all="raise"):
        coords = plots.latent_map(
            codes, [f"s{i}" for i in range(n)], ["x"] * n, out, "small", flagged=["s0"]
        )
    _check_png(out)
    assert coords.shape == (n, 2)
    ok = np.isfinite(codes).all(axis=1)
    assert np.isfinite(coords[ok]).all() and np.isnan(coords[~ok]).all()


def test_latent_map_two_codes_known_answer(tmp_path):
    coords = plots.latent_map(
        np.array([[0.0, 0.0], [3.0, 4.0]]), ["a", "b"], ["x", "y"], tmp_path / "two.png", "two"
    )
    assert np.allclose(np.abs(coords[:, 0]), 2.5) and np.allclose(coords[:, 1], 0)


def test_latent_map_one_dimension(tmp_path):
    codes = np.array([[0.3], [-1.0], [2.0]])
    out = tmp_path / "d1.png"
    coords = plots.latent_map(codes, ["a", "b", "c"], ["", "", ""], out, "1D", flagged=["c"])
    _check_png(out)
    assert np.allclose(coords, [[0.3, 0], [-1.0, 1], [2.0, 2]])
    fig, _ = plots.latent_map_figure(codes[:, 0], ["a", "b", "c"], ["", "", ""], "1D")
    assert fig.axes[0].get_xlabel() == "latent code (1 dimension)"
    _close(fig)


def test_latent_map_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="as many"):
        plots.latent_map(np.zeros((3, 2)), ["a", "b"], ["x"] * 3, tmp_path / "x.png", "bad")
    assert not list(tmp_path.iterdir())


# ---- imaging reconstruction grid -------------------------------------------------------------
def _volume_item(subject: str, score: float, signed: bool = False) -> dict:
    rng = np.random.default_rng(len(subject))
    image = rng.normal(100, 20, size=(16, 12, 8)).astype(np.float32)
    recon = image + rng.normal(0, 5, size=image.shape).astype(np.float32)
    error = image - recon if signed else (image - recon) ** 2
    return {
        "subject": subject,
        "input": image,
        "reconstruction": recon,
        "error": error,
        "score": score,
    }


def test_reconstruction_grid(tmp_path):
    items = [_volume_item("sub-01", 7.13), _volume_item("sub-02", math.nan, signed=True)]
    out = tmp_path / "recon.png"
    assert plots.reconstruction_grid(items, out, "flagged imaging subjects") is None
    _check_png(out)
    fig = plots.reconstruction_grid_figure(items, "flagged imaging subjects")
    texts = _texts(fig)
    assert "sub-01 — score 7.1" in texts and "sub-02 — score n/a" in texts
    assert {"input (axial)", "reconstruction", "error", "|error|"} <= set(texts)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 6
    lo, hi = np.percentile(items[0]["input"], [1, 99])
    assert (
        np.allclose(images[0].get_clim(), (lo, hi)) and images[1].get_clim() == images[0].get_clim()
    )
    assert images[2].get_clim()[0] == 0 and images[5].get_array().min() >= 0
    assert images[0].get_array().shape == (12, 16)  # axial slice (Y, X)
    _close(fig)


def test_reconstruction_grid_empty_and_bad(tmp_path):
    out = tmp_path / "recon.png"
    plots.reconstruction_grid([], out, "flagged imaging subjects")
    _check_png(out)
    fig = plots.reconstruction_grid_figure([], "t")
    assert "no flagged subjects" in _texts(fig)
    _close(fig)
    bad = _volume_item("sub-03", 1.0)
    bad["error"] = bad["error"][:-1]
    open_figures = len(pyplot().get_fignums())
    with pytest.raises(ValueError, match="sub-03"):
        plots.reconstruction_grid([bad], tmp_path / "bad.png", "t")
    assert not (tmp_path / "bad.png").exists()
    assert len(pyplot().get_fignums()) == open_figures
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# ---- genomics profile grid -------------------------------------------------------------------
def _profile_item(subject: str, score: float) -> dict:
    b = 300
    positions = (np.arange(b) + 0.5) * 1000.0
    rng = np.random.default_rng(3)
    cov = np.log1p(rng.poisson(30, size=b).astype(float))
    recon = np.full(b, cov.mean())
    z = (cov - recon) / cov.std()
    z[100:120] += 6
    return {
        "subject": subject,
        "positions": positions,
        "input": cov,
        "reconstruction": recon,
        "z": z,
        "regions": [(100_000.0, 120_000.0), (250_000.0, 260_000.0)],
        "score": score,
        "boundaries": [(0.0, "chr1"), (150_000.0, "chr2")],
    }


def test_profile_grid(tmp_path):
    items = [_profile_item("s1", 12.04), _profile_item("s2", math.nan)]
    out = tmp_path / "profiles.png"
    assert plots.profile_grid(items, out, "flagged genomics subjects") is None
    _check_png(out)
    fig = plots.profile_grid_figure(items, "flagged genomics subjects")
    texts = _texts(fig)
    assert "s1 — score 12.0" in texts and "s2 — score n/a" in texts
    assert " chr1" in texts and " chr2" in texts
    assert "regions (n=2)" in texts and "reconstruction" in texts
    assert len(fig.axes) == 4
    z_ax = fig.axes[1]
    levels = sorted(line.get_ydata()[0] for line in z_ax.get_lines() if line.get_ls() == "--")
    assert levels == [-3, 3]
    _close(fig)


def test_profile_grid_empty_and_bad(tmp_path):
    out = tmp_path / "profiles.png"
    plots.profile_grid([], out, "flagged genomics subjects")
    _check_png(out)
    one = _profile_item("s1", 4.0)
    one["regions"], one["boundaries"] = [], []
    plots.profile_grid([one], out, "one subject, no regions")
    _check_png(out)
    bad = _profile_item("s9", 1.0)
    bad["z"] = bad["z"][:10]
    open_figures = len(pyplot().get_fignums())
    with pytest.raises(ValueError, match="s9"):
        plots.profile_grid([bad], tmp_path / "bad.png", "t")
    assert not (tmp_path / "bad.png").exists()
    assert len(pyplot().get_fignums()) == open_figures
