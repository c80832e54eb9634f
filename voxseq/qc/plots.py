"""Cohort quality-control report figures, shared by both modalities (PNG, no display).

The robust scores of the autoencoder QC as a strip plot per group with the flagging threshold,
the latent codes as a 2D PCA map, and what the autoencoder made of each flagged subject: central
axial slices of input, reconstruction and error (imaging) or coverage profiles with residual z
and the regions found (genomics). As in :mod:`voxseq.imaging.plots`, each figure has a
``*_figure`` function returning the matplotlib Figure (for tests) and a function that writes the
PNG atomically (:func:`voxseq.figures.save_figure`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

from voxseq.figures import pyplot, save_figure
from voxseq.imaging.plots import central_slices

#: Known groups (splits) in drawing order, bottom to top, and their band colours (the imaging
#: report's split colours, plus ``new`` for subjects scored after training).
GROUPS = ("train", "val", "test", "new")
GROUP_COLOURS = {"train": "#93c5fd", "val": "#fcd34d", "test": "#86efac", "new": "#d8b4fe"}
OTHER_GROUP_COLOUR = "#e2e8f0"
#: Points of subjects not flagged / flagged (strip plot and annotations).
POINT_COLOUR = "#334155"
FLAGGED_COLOUR = "#dc2626"
#: Shading of the regions found in a genomics profile.
REGION_COLOUR = "#f59e0b"
NO_VALUE = "n/a"


def _score_text(score) -> str:
    """``7.1`` for a finite score, ``n/a`` otherwise."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return NO_VALUE
    return f"{value:.1f}" if math.isfinite(value) else NO_VALUE


def _flag(value) -> bool:
    """A ``flagged`` value as a bool (``True``/``"yes"``/``"true"``/``"1"`` as read from a TSV)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _row_title(item: dict) -> str:
    """``subject — score 7.1`` (a row of a grid)."""
    return f"{item['subject']} — score {_score_text(item.get('score'))}"


def _message_figure(text: str, title: str):
    """One blank axes saying ``text`` under ``title`` (a figure with nothing to show)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 1.8))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _jitter(n: int) -> np.ndarray:
    """Deterministic offsets in [-0.25, 0.25) for ``n`` points, by rank (golden-ratio sequence)."""
    return ((np.arange(n) * 0.6180339887498949) % 1.0 - 0.5) * 0.5


def _group_order(names: Iterable[str]) -> list[str]:
    """Known groups in :data:`GROUPS` order, then the others sorted, then ``n/a``."""
    names = set(names)
    known = [g for g in GROUPS if g in names]
    other = sorted(n for n in names if n not in GROUPS and n != NO_VALUE)
    return known + other + ([NO_VALUE] if NO_VALUE in names else [])


# ---- robust scores -------------------------------------------------------------------------
def score_strip_figure(rows: Sequence[dict], threshold: float, title: str):
    """Robust scores as a horizontal strip plot, one row per group, flagged subjects named.

    Parameters
    ----------
    rows
        One dict per subject: ``subject``, ``score`` (float; NaN or ``None`` where no score could
        be computed), ``flagged`` (bool) and optionally ``group`` (e.g. the split: ``train``,
        ``val``, ``test``, ``new``).
    threshold
        The flagging threshold, drawn as a dashed vertical line (none when not finite).
    title
        Figure title; the number of subjects without a score (omitted) is added to it.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x the score, y the group (a band in :data:`GROUP_COLOURS`) with a jitter by
        rank of score within the group, so the same rows give the same figure. Points are
        :data:`POINT_COLOUR`, flagged ones :data:`FLAGGED_COLOUR` and annotated with their
        subject. Without any group every subject is on one row; a missing group in a table with
        groups is ``n/a``.
    """
    plt = pyplot()
    scored, missing = [], 0
    for r in rows:
        try:
            score = float(r.get("score"))
        except (TypeError, ValueError):
            score = math.nan
        if math.isfinite(score):
            scored.append(
                (str(r.get("group") or ""), score, str(r["subject"]), _flag(r.get("flagged")))
            )
        else:
            missing += 1
    if missing:
        title = f"{title}\n({missing} subject(s) without a score omitted)"
    if not scored:
        return _message_figure("no subject with a score", title)
    grouped = any(g for g, *_ in scored)
    if grouped:
        scored = [(g or NO_VALUE, s, sid, f) for g, s, sid, f in scored]
    order = _group_order(g for g, *_ in scored)
    fig, ax = plt.subplots(figsize=(7.5, 1.6 + 0.75 * len(order)))
    for y, group in enumerate(order):
        ax.axhspan(
            y - 0.4,
            y + 0.4,
            color=GROUP_COLOURS.get(group, OTHER_GROUP_COLOUR),
            alpha=0.45,
            lw=0,
            zorder=0,
        )
        members = sorted((s, sid, f) for g, s, sid, f in scored if g == group)
        ys = y + _jitter(len(members))
        xs = np.array([s for s, _, _ in members])
        flags = np.array([f for _, _, f in members], dtype=bool)
        ax.scatter(
            xs[~flags],
            ys[~flags],
            s=18,
            color=POINT_COLOUR,
            edgecolors="white",
            linewidths=0.4,
            zorder=3,
        )
        ax.scatter(
            xs[flags],
            ys[flags],
            s=30,
            color=FLAGGED_COLOUR,
            edgecolors="black",
            linewidths=0.6,
            zorder=4,
        )
        for k, (x, yy, (_, sid, _)) in enumerate(
            zip(xs[flags], ys[flags], [m for m in members if m[2]], strict=True)
        ):
            ax.annotate(
                sid,
                (x, yy),
                xytext=(4, 5 if k % 2 == 0 else -9),
                textcoords="offset points",
                fontsize=7,
                color=FLAGGED_COLOUR,
                zorder=5,
            )
    handles = [
        ax.scatter([], [], s=18, color=POINT_COLOUR, label="not flagged"),
        ax.scatter(
            [], [], s=30, color=FLAGGED_COLOUR, edgecolors="black", linewidths=0.6, label="flagged"
        ),
    ]
    if threshold is not None and math.isfinite(float(threshold)):
        handles.append(
            ax.axvline(
                float(threshold),
                color="0.25",
                ls="--",
                lw=1.0,
                label=f"threshold {float(threshold):g}",
            )
        )
    n = [sum(g == group for g, *_ in scored) for group in order]
    labels = [f"{g}\nn={k}" for g, k in zip(order, n, strict=True)] if grouped else [f"n={n[0]}"]
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel("robust score")
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18 - 0.1 / len(order)),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def score_strip(
    rows: Sequence[dict], threshold: float, out_png: str | os.PathLike, title: str
) -> None:
    """:func:`score_strip_figure` as a PNG."""
    save_figure(score_strip_figure(rows, threshold, title), out_png)


# ---- latent codes ----------------------------------------------------------------------------
def latent_coordinates(codes: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """2D coordinates of latent codes and their axis labels.

    Parameters
    ----------
    codes
        ``(N, D)`` latent codes (a 1D array is one dimension). Rows with a non-finite value get
        NaN coordinates and take no part in the PCA.

    Returns
    -------
    coords : numpy.ndarray
        ``(N, 2)`` float. ``D >= 2``: the first two principal components
        (``sklearn.decomposition.PCA(n_components=2, svd_solver="full").fit_transform`` of the
        finite rows; a second column of zeros when the rows span a single dimension, all zeros
        when they are identical or only one is finite). ``D == 1``: the code itself and the
        subject's index (input order), no PCA.
    labels : tuple of str
        Axis labels; principal components carry their percentage of explained variance.
    """
    from sklearn.decomposition import PCA

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim == 1:
        codes = codes[:, None]
    if codes.ndim != 2:
        raise ValueError(f"latent codes must be (N, D), got shape {codes.shape}")
    n, d = codes.shape
    coords = np.full((n, 2), np.nan)
    ok = np.isfinite(codes).all(axis=1) if d else np.zeros(n, dtype=bool)
    if d == 1:
        coords[ok, 0] = codes[ok, 0]
        coords[ok, 1] = np.flatnonzero(ok)
        return coords, ("latent code (1 dimension)", "subject (input order)")
    x = codes[ok]
    if len(x) < 2 or not np.ptp(x, axis=0).any():
        coords[ok] = 0.0
        return coords, (f"PC1 ({NO_VALUE})", f"PC2 ({NO_VALUE})")
    k = min(2, len(x), d)
    pca = PCA(n_components=k, svd_solver="full")
    coords[ok, :k] = pca.fit_transform(x)
    coords[ok, k:] = 0.0
    ratio = list(pca.explained_variance_ratio_) + [0.0] * (2 - k)
    return coords, tuple(f"PC{i + 1} ({100 * r:.1f}% of variance)" for i, r in enumerate(ratio))


def category_colours(values: Iterable[str]) -> dict[str, str]:
    """Category -> colour: ``tab10`` (``tab20`` beyond 10) in sorted order, ``n/a`` grey."""
    from matplotlib.colors import to_hex

    plt = pyplot()
    names = sorted(set(values) - {NO_VALUE})
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    out = {v: to_hex(cmap(i % cmap.N)) for i, v in enumerate(names)}
    out[NO_VALUE] = "#9ca3af"
    return out


def latent_map_figure(
    codes: np.ndarray,
    subjects: Sequence[str],
    colour_by: Sequence[str],
    title: str,
    flagged: Iterable[str] = (),
    legend_title: str = "",
):
    """Latent codes on their first two principal components, coloured by a category.

    Parameters
    ----------
    codes
        ``(N, D)`` latent codes, one row per subject (see :func:`latent_coordinates`).
    subjects
        The N subject ids.
    colour_by
        N category names (e.g. split, site or class); ``""`` is drawn as ``n/a`` (grey).
    title
        Figure title; subjects without finite codes (not drawn) are counted in it.
    flagged
        Subject ids drawn with a black edge and a cross, and labelled.
    legend_title
        Title of the colour legend (what ``colour_by`` is).

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes, legend outside on the right.
    coords : numpy.ndarray
        ``(N, 2)`` coordinates of :func:`latent_coordinates`, in ``subjects`` order.
    """
    from matplotlib.lines import Line2D

    subjects = [str(s) for s in subjects]
    cats = [str(c) if c not in ("", None) else NO_VALUE for c in colour_by]
    coords, (xlabel, ylabel) = latent_coordinates(codes)
    if not len(subjects) == len(cats) == len(coords):
        raise ValueError(
            f"latent map: {len(coords)} codes, {len(subjects)} subjects and "
            f"{len(cats)} colour values must be as many"
        )
    flagged = set(map(str, flagged))
    ok = np.isfinite(coords).all(axis=1)
    if (~ok).any():
        title = f"{title}\n({int((~ok).sum())} subject(s) without finite codes omitted)"
    if not ok.any():
        return _message_figure("no latent codes", title), coords
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 5.0))
    colours = category_colours(c for c, good in zip(cats, ok, strict=True) if good)
    handles = []
    for cat, colour in colours.items():
        idx = [i for i, c in enumerate(cats) if c == cat and ok[i]]
        if not idx:
            continue
        for is_flagged, size, edge, width, z in (
            (False, 28, "white", 0.5, 3),
            (True, 60, "black", 1.4, 4),
        ):
            rows = [i for i in idx if (subjects[i] in flagged) == is_flagged]
            ax.scatter(
                coords[rows, 0],
                coords[rows, 1],
                s=size,
                color=colour,
                edgecolors=edge,
                linewidths=width,
                zorder=z,
            )
        handles.append(
            Line2D(
                [], [], ls="", marker="o", color=colour, markersize=6, label=f"{cat} (n={len(idx)})"
            )
        )
    marked = [i for i in range(len(subjects)) if subjects[i] in flagged and ok[i]]
    if marked:
        ax.scatter(
            coords[marked, 0],
            coords[marked, 1],
            s=24,
            marker="x",
            color="black",
            linewidths=1.0,
            zorder=5,
        )
        for i in marked:
            ax.annotate(
                subjects[i],
                coords[i],
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                zorder=6,
            )
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                markerfacecolor="white",
                markeredgecolor="black",
                markeredgewidth=1.4,
                markersize=7,
                label=f"flagged (n={len(marked)})",
            )
        )
    ax.legend(
        handles=handles,
        title=legend_title or None,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig, coords


def latent_map(
    codes: np.ndarray,
    subjects: Sequence[str],
    colour_by: Sequence[str],
    out_png: str | os.PathLike,
    title: str,
    flagged: Iterable[str] = (),
    legend_title: str = "",
) -> np.ndarray:
    """:func:`latent_map_figure` as a PNG; returns its ``(N, 2)`` coordinates (for a TSV)."""
    fig, coords = latent_map_figure(codes, subjects, colour_by, title, flagged, legend_title)
    save_figure(fig, out_png)
    return coords


def _subject_rows(n: int, width: float, row_height: float):
    """A figure of ``n`` stacked sub-figures, one per subject (constrained layout).

    Returns
    -------
    (matplotlib.figure.Figure, ndarray of (n,) SubFigure)
    """
    fig = pyplot().figure(figsize=(width, 0.5 + row_height * n), layout="constrained")
    return fig, np.atleast_1d(fig.subfigures(n, 1))


# ---- imaging: input, reconstruction, error ---------------------------------------------------
def _volumes(item: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An item's input, reconstruction and error as float32, checked to be one 3D shape."""
    image = np.asarray(item["input"], np.float32)
    recon = np.asarray(item["reconstruction"], np.float32)
    error = np.asarray(item["error"], np.float32)
    if image.ndim != 3 or recon.shape != image.shape or error.shape != image.shape:
        raise ValueError(
            f"reconstruction grid '{item['subject']}': input {image.shape}, "
            f"reconstruction {recon.shape} and error {error.shape} must be the "
            "same 3D shape"
        )
    return image, recon, error


def reconstruction_grid_figure(items: Sequence[dict], title: str):
    """Central axial slices of input, reconstruction and error, one row per subject.

    Parameters
    ----------
    items
        One dict per subject: ``subject``, ``input``, ``reconstruction`` and ``error`` (the
        same ``(X, Y, Z)`` shape, canonical RAS) and ``score`` (float, NaN shown as ``n/a``).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes per subject, titled ``subject — score 7.1``. Input and reconstruction share
        a grey scale from the 1st to the 99th percentile of the input volume. The error map is
        drawn in 'magma' from 0 to its volume's 99th percentile, with a colour bar; an error
        with negative values (a signed difference) is drawn as its absolute value. No subject:
        one axes saying "no flagged subjects".
    """
    if not items:
        return _message_figure("no flagged subjects", title)
    volumes = [_volumes(item) for item in items]  # checked before any figure is opened
    fig, subfigs = _subject_rows(len(items), 9, 2.7)
    for r, (item, (image, recon, error), sub) in enumerate(
        zip(items, volumes, subfigs, strict=True)
    ):
        finite = image[np.isfinite(image)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        signed = bool(np.nanmin(error) < 0) if np.isfinite(error).any() else False
        if signed:
            error = np.abs(error)
        good = error[np.isfinite(error)]
        top = float(np.percentile(good, 99)) if good.size else 1.0
        axes = sub.subplots(1, 3)
        for ax, vol in zip(axes[:2], (image, recon), strict=True):
            ax.imshow(
                central_slices(vol)[0],
                cmap="gray",
                origin="lower",
                vmin=lo,
                vmax=max(hi, lo + 1e-6),
            )
        shown = axes[2].imshow(
            central_slices(error)[0], cmap="magma", origin="lower", vmin=0, vmax=max(top, 1e-6)
        )
        sub.colorbar(shown, ax=axes[2], shrink=0.85)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        if r == 0 or signed:
            names = ("input (axial)", "reconstruction", "|error|" if signed else "error")
            for ax, name in zip(axes, names, strict=True):
                ax.set_title(name, fontsize=8)
        sub.suptitle(_row_title(item), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def reconstruction_grid(items: Sequence[dict], out_png: str | os.PathLike, title: str) -> None:
    """:func:`reconstruction_grid_figure` as a PNG."""
    save_figure(reconstruction_grid_figure(items, title), out_png)


# ---- genomics: coverage profiles -------------------------------------------------------------
def _profile(item: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """An item's positions and its input, reconstruction and z, checked to be one ``(B,)``."""
    x = np.asarray(item["positions"], np.float64)
    series = [np.asarray(item[k], np.float64) for k in ("input", "reconstruction", "z")]
    if x.ndim != 1 or any(s.shape != x.shape for s in series):
        raise ValueError(
            f"profile grid '{item['subject']}': positions {x.shape}, input, "
            "reconstruction and z "
            f"{', '.join(str(s.shape) for s in series)} must be the same (B,)"
        )
    return x, series


def profile_grid_figure(items: Sequence[dict], title: str):
    """Input vs reconstructed coverage and residual z along the genome, one block per subject.

    Parameters
    ----------
    items
        One dict per subject: ``subject``; ``positions``, ``input``, ``reconstruction`` and
        ``z``, each ``(B,)`` (bin positions, e.g. cumulative bp, and the bins' log coverage,
        its reconstruction and residual z); ``regions``, ``(start, end)`` pairs in the
        coordinate of ``positions``; ``score`` (float); ``boundaries``, ``(position, contig)``
        pairs of the contigs' starts.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes per subject sharing x: input (grey) and reconstruction (C3, as the genomics
        track figure's observed and predicted), then residual z (C0) with dashed lines at ±3.
        Regions are shaded in :data:`REGION_COLOUR` on both, contig starts are thin grey lines
        named at the top. Titled ``subject — score 7.1``. No subject: one axes saying
        "no flagged subjects".
    """
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    if not items:
        return _message_figure("no flagged subjects", title)
    profiles = [_profile(item) for item in items]  # checked before any figure is opened
    fig, subfigs = _subject_rows(len(items), 10, 3.4)
    for r, (item, (x, series), sub) in enumerate(zip(items, profiles, subfigs, strict=True)):
        top, bottom = sub.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        top.plot(x, series[0], color="0.45", lw=0.8, label="input")
        top.plot(x, series[1], color="C3", lw=1.2, label="reconstruction")
        bottom.plot(x, series[2], color="C0", lw=0.8)
        bottom.axhline(0, color="0.6", lw=0.6)
        for level in (-3, 3):
            bottom.axhline(level, color="0.3", ls="--", lw=0.8)
        regions = list(item.get("regions") or ())
        for ax in (top, bottom):
            for start, end in regions:
                ax.axvspan(start, end, color=REGION_COLOUR, alpha=0.3, lw=0, zorder=0)
            for pos, _ in item.get("boundaries") or ():
                ax.axvline(pos, color="0.55", lw=0.5, zorder=1)
        trans = blended_transform_factory(top.transData, top.transAxes)
        for pos, name in item.get("boundaries") or ():
            top.text(
                pos,
                1.0,
                f" {name}",
                transform=trans,
                fontsize=6,
                color="0.35",
                ha="left",
                va="bottom",
                clip_on=False,
            )
        handles, _ = top.get_legend_handles_labels()
        if regions:
            handles.append(
                Patch(
                    color=REGION_COLOUR,
                    alpha=0.3,
                    label=f"region{'s' if len(regions) > 1 else ''} (n={len(regions)})",
                )
            )
        top.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.005, 1.0),
            fontsize=7,
            frameon=False,
        )
        top.set_ylabel("log coverage", fontsize=8)
        bottom.set_ylabel("residual z", fontsize=8)
        bottom.set_xlabel("genomic position" if r == len(items) - 1 else "", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
        sub.suptitle(_row_title(item), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def profile_grid(items: Sequence[dict], out_png: str | os.PathLike, title: str) -> None:
    """:func:`profile_grid_figure` as a PNG."""
    save_figure(profile_grid_figure(items, title), out_png)
