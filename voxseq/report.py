"""Shared report helpers: headless pyplot, PNG saving, training curves and the results page.

The results page is what ``snakemake --report`` opens on: headline numbers of ``summary.json``,
the cohort tables and every report figure with its caption, as one HTML fragment (included by
``workflow/report/landing.rst``) and as a standalone page (a report item of its own).
Figures of one modality live in :mod:`voxseq.imaging.plots` and :mod:`voxseq.genomics.plots`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxseq.io.atomic import atomic_path, read_tsv, write_text

#: Colour of foreground label k (1-based) is ``LABEL_COLOURS[(k - 1) % len(LABEL_COLOURS)]``.
LABEL_COLOURS = ("#ff4040", "#40c0ff", "#ffd040", "#80ff80", "#ff80ff", "#ffa040")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    pyplot().close(fig)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def best_epoch(rows: Sequence[dict]) -> int | None:
    """Row index of the highest ``score`` (the first on ties, as the fit loop keeps it).

    Returns ``None`` when no row has a finite score.
    """
    scores = np.array([_float(r.get("score")) for r in rows], dtype=float)
    if not np.isfinite(scores).any():
        return None
    return int(np.nanargmax(scores))


def training_curves_figure(rows: Sequence[dict], series: dict[str, str], title: str,
                           score_label: str, max_series: int = 8):
    """Loss per epoch (left) and validation metrics per epoch (right), best epoch marked.

    Parameters
    ----------
    rows
        The fit loop's metrics table (``epoch`` 0-based, ``train_loss``, ``val_loss``,
        ``score`` and per-label/track columns).
    series
        Column -> legend name of the per-label/track metrics drawn beside ``score``.
    score_label
        Legend name of ``score`` (what the bundle's best epoch is chosen on).
    max_series
        Above this many series they are drawn thin and grey under one legend entry.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows:
        raise ValueError(f"training curves '{title}': the metrics table has no rows")
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    ep = np.array([int(r["epoch"]) + 1 for r in rows])
    col = {k: np.array([_float(r.get(k)) for r in rows]) for k in rows[0]}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, col["train_loss"], marker=".", label="train")
    a.plot(ep, col["val_loss"], marker=".", label="validation")
    many = len(series) > max_series
    for i, (key, name) in enumerate(series.items()):
        if many:
            b.plot(ep, col[key], color="0.75", lw=0.8,
                   label=f"per track ({len(series)})" if i == 0 else None)
        else:
            b.plot(ep, col[key], marker=".", lw=1.2, label=name)
    b.plot(ep, col["score"], color="black", lw=2, marker=".", label=score_label)
    best = best_epoch(rows)
    if best is not None:
        for ax in (a, b):
            ax.axvline(ep[best], color="C3", ls=":", lw=1.2)
        a.plot([], [], color="C3", ls=":", label=f"best epoch {ep[best]}")
        b.scatter([ep[best]], [col["score"][best]], marker="*", s=160, color="C3", zorder=5,
                  label=f"best: epoch {ep[best]}, {col['score'][best]:.3f}")
    for ax, ylabel in ((a, "loss"), (b, "validation metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- the results page ------------------------------------------------------------------------
@dataclass(frozen=True)
class PageFigure:
    """A figure of the results page: a title, its PNG(s) and its caption as HTML."""

    title: str
    pngs: tuple[str, ...]
    caption_html: str = ""


def caption_html(rst_path: str | os.PathLike) -> str:
    """A caption ``.rst`` file as HTML, rendered the way Snakemake renders report captions."""
    text = Path(rst_path).read_text()
    try:
        from docutils.core import publish_parts
    except ImportError:  # the model envs draw figures only; envs/report.yaml has docutils
        return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    return publish_parts(text, writer="html")["body"]


def page_figures(specs: Sequence[dict]) -> list[PageFigure]:
    """:class:`PageFigure` from ``{"title", "path", "caption"}`` dicts (``path``: a PNG or a
    folder of PNGs; ``caption``: an .rst file or empty)."""
    out = []
    for spec in specs:
        path = Path(spec["path"])
        pngs = sorted(str(p) for p in path.glob("*.png")) if path.is_dir() else [str(path)]
        caption = caption_html(spec["caption"]) if spec.get("caption") else ""
        out.append(PageFigure(spec["title"], tuple(pngs), caption))
    return out


def _fmt(value, digits: int = 3) -> str:
    value = _float(value)
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _seconds(value) -> str:
    s = _float(value)
    if not math.isfinite(s):
        return "n/a"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _training(rows: Sequence[dict] | None) -> tuple[str, str] | None:
    if not rows:
        return None
    best = best_epoch(rows)
    if best is None:
        return "n/a", f"{len(rows)} epochs, no finite validation score"
    return (f"epoch {int(rows[best]['epoch']) + 1} of {len(rows)}",
            f"best validation score {_fmt(rows[best]['score'])} (the bundle keeps it)")


def headline_numbers(summary: dict, imaging_metrics: Sequence[dict] | None = None,
                     genomics_metrics: Sequence[dict] | None = None
                     ) -> list[tuple[str, str, str]]:
    """The results page's headline cards as ``(name, value, detail)``.

    Parameters
    ----------
    summary
        ``summary.json`` content (``imaging`` and/or ``genomics`` blocks, ``stage_seconds``).
    imaging_metrics, genomics_metrics
        Training metrics rows when the model was trained in this cohort (best epoch shown).
    """
    cards = []
    img, gen = summary.get("imaging"), summary.get("genomics")
    if img:
        per = img.get("test_dice_per_label") or {}
        cards.append(("Imaging test Dice", _fmt(img.get("test_dice_mean")),
                      " · ".join(f"{k} {_fmt(v)}" for k, v in per.items()) or "no labelled test"))
        cards.append(("Imaging subjects", str(img.get("n_subjects", "n/a")),
                      f"{img.get('n_labelled', 0)} labelled, "
                      f"{img.get('n_test_labelled', 0)} labelled in test"))
        if (t := _training(imaging_metrics)) is not None:
            cards.append(("Imaging best epoch", *t))
        if img.get("classify_classes"):
            ci = img.get("classify_oof_auroc_ci95") or [None, None]
            cards.append(("Classifier AUROC (out-of-fold)", _fmt(img.get("classify_oof_auroc")),
                          f"95 % CI {_fmt(ci[0])}–{_fmt(ci[1])}; "
                          f"{img.get('classify_n_oof', 0)} subjects; test AUROC "
                          f"{_fmt(img.get('classify_test_auroc'))} "
                          f"({img.get('classify_n_test', 0)} subjects)"))
    if gen:
        cards.append(("Genomics test Pearson", _fmt(gen.get("test_pearson_mean")),
                      f"log1p {_fmt(gen.get('test_pearson_log1p_mean'))}; test contigs "
                      + (", ".join(gen.get("test_contigs") or []) or "none")))
        n_effect = gen.get("vep_n_effect", gen.get("vep_n_motif_breaking", 0)) or 0
        truth = (f"{n_effect} SNVs with an effect vs {gen.get('vep_n_neutral', 0)} neutral"
                 if n_effect or gen.get("vep_n_neutral") else "no variant truth")
        cards.append(("Variant-effect AUROC", _fmt(gen.get("vep_auroc")),
                      f"{truth}; {gen.get('n_variants_scored', 0)} of "
                      f"{gen.get('n_variants', 0)} variants scored"))
        if gen.get("vep_spearman") is not None:
            cards.append(("Variant-effect Spearman", _fmt(gen.get("vep_spearman")),
                          f"signed score vs true effect, {gen.get('vep_n_spearman', 0)} SNVs"))
        if gen.get("motifs_recovered") is not None:
            cards.append(("Planted motifs recovered",
                          f"{gen['motifs_recovered']} of {gen.get('motifs_planted', 0)}",
                          f"{gen.get('motifs_found', 0)} motifs discovered (motifs.meme)"))
        cards.append(("Genomics subjects", str(gen.get("n_subjects", "n/a")),
                      f"{gen.get('n_tracks', 0)} coverage tracks"))
        if (t := _training(genomics_metrics)) is not None:
            cards.append(("Genomics best epoch", *t))
    stages = summary.get("stage_seconds") or {}
    cards.append(("Stage time", _seconds(summary.get("total_stage_seconds")),
                  f"sum over {len(stages)} benchmarked stages"))
    return cards


def _cell(column: str, value) -> str:
    if column.startswith(("dice_", "pearson")) or column == "score":
        return _fmt(value)
    if column.startswith("volume_") and math.isfinite(_float(value)):
        return f"{_float(value):,.0f}"
    return str(value) if value not in (None, "") else "–"


def _header(column: str) -> str:
    if column.startswith("dice_"):
        return f"Dice {column[5:]}"
    if column.startswith("volume_"):
        return f"{column[7:].removesuffix('_mm3')} (mm³)"
    return column.replace("_", " ")


def table_html(rows: Sequence[dict], columns: Sequence[str], max_rows: int | None = None
               ) -> str:
    """An HTML table of ``rows`` (numbers rounded), cut after ``max_rows`` with a note."""
    shown = rows if max_rows is None else rows[:max_rows]
    head = "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, r.get(c)))}</td>"
                                    for c in columns) + "</tr>" for r in shown)
    note = (f'<p class="vx-note">{len(shown)} of {len(rows)} rows shown; the results page '
            "(menu: Cohort summary) has all of them.</p>" if len(shown) < len(rows) else "")
    return f'<table class="vx-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>' \
        + note


def _img(png: str, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _is_wide(png: str, min_width: int = 800) -> bool:
    """A PNG at least ``min_width`` pixels wide (read from its IHDR header)."""
    head = Path(png).read_bytes()[:24]
    return head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") >= min_width


def figure_html(fig: PageFigure) -> str:
    """One figure (or a row of images, e.g. overlays) with its title and caption.

    Wide figures and rows of images span the whole width of the figure grid.
    """
    wide = len(fig.pngs) > 1 or any(_is_wide(p) for p in fig.pngs)
    if len(fig.pngs) == 1:
        images = _img(fig.pngs[0], fig.title)
    else:
        images = '<div class="vx-row">' + "".join(
            f"<div>{_img(p, Path(p).stem)}<div class='vx-note'>{html.escape(Path(p).stem)}"
            "</div></div>" for p in fig.pngs) + "</div>"
    cls = "vx-fig vx-wide" if wide else "vx-fig"
    return (f'<figure class="{cls}"><h3>{html.escape(fig.title)}</h3>{images}'
            f"<figcaption>{fig.caption_html}</figcaption></figure>")


CSS = """
.vx-results{font-family:system-ui,sans-serif;color:#1e293b;font-size:14px;line-height:1.45}
.vx-results h1{font-size:1.6em;font-weight:700;margin:0 0 .2em}
.vx-results h2{font-size:1.2em;font-weight:650;margin:1.4em 0 .5em;border-bottom:1px solid #cbd5e1}
.vx-results h3{font-size:1em;font-weight:650;margin:0 0 .4em}
.vx-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
.vx-card{border:1px solid #cbd5e1;border-radius:8px;padding:8px 12px}
.vx-k{font-size:.8em;text-transform:uppercase;color:#64748b;letter-spacing:.03em}
.vx-v{font-size:1.7em;font-weight:700}
.vx-d{font-size:.85em;color:#475569}
.vx-table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
.vx-table th,.vx-table td{border-bottom:1px solid #e2e8f0;padding:3px 10px;text-align:right}
.vx-table th:first-child,.vx-table td:first-child{text-align:left}
.vx-table th{background:#f1f5f9;font-weight:600}
.vx-note{font-size:.85em;color:#64748b}
.vx-figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:18px}
.vx-wide{grid-column:1/-1}
.vx-fig{margin:0;border:1px solid #e2e8f0;border-radius:8px;padding:10px}
.vx-fig img{max-width:100%;height:auto;display:block;margin:0 auto}
.vx-fig figcaption{font-size:.85em;color:#475569;margin-top:.4em}
.vx-warn{border:1px solid #f59e0b;border-left:5px solid #f59e0b;background:#fffbeb;
border-radius:8px;padding:6px 12px;margin:10px 0}
.vx-warn h3{color:#92400e}.vx-warn ul{margin:.2em 0;padding-left:1.2em}
.vx-row{display:flex;flex-wrap:wrap;gap:8px}.vx-row>div{flex:1;min-width:180px;text-align:center}
"""
LANDING_INTRO = ("The same page with every table row is under Cohort summary in the menu, each "
                 "figure's file under its modality; the rule graph is on the right and run "
                 "times are under Statistics.")
#: Snakemake's report shows the landing text in a narrow column, centred vertically beside the
#: rule graph: widen it, and start at the top so that the page scrolls (Chromium, Firefox 121+).
LANDING_CSS = """
.max-w-lg:has(.vx-results){max-width:min(1150px,calc(100vw - 20rem))}
.overflow-auto:has(.vx-results){align-items:flex-start;justify-content:flex-start}
"""


def warnings_html(summary: dict) -> str:
    """A highlighted box per modality whose ``summary.json`` block has ``warnings`` (splits of a
    handful of windows, near-empty libraries, Pearsons that cannot be computed); empty when
    there is none."""
    out = ""
    for modality in ("imaging", "genomics"):
        warnings = (summary.get(modality) or {}).get("warnings") or []
        if warnings:
            items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
            out += (f'<div class="vx-warn"><h3>{modality.capitalize()}: {len(warnings)} '
                    f"warning{'s' if len(warnings) > 1 else ''} (the numbers above may rest on "
                    f"too little data)</h3><ul>{items}</ul></div>")
    return out


def render_results(summary: dict, tables: Sequence[tuple[str, list[dict], list[str]]] = (),
                   figures: Sequence[PageFigure] = (), *, imaging_metrics=None,
                   genomics_metrics=None, max_rows: int | None = None, intro: str = "") -> str:
    """The results page body (an HTML fragment with its own scoped style).

    Parameters
    ----------
    summary
        ``summary.json`` content.
    tables
        ``(title, rows, columns)`` per cohort table.
    figures
        In page order.
    imaging_metrics, genomics_metrics
        Training metrics rows (for the best-epoch cards), or ``None``.
    max_rows
        Rows shown per table (all when ``None``).
    intro
        A sentence under the title.
    """
    cards = "".join(
        f'<div class="vx-card"><div class="vx-k">{html.escape(k)}</div>'
        f'<div class="vx-v">{html.escape(v)}</div><div class="vx-d">{html.escape(d)}</div></div>'
        for k, v, d in headline_numbers(summary, imaging_metrics, genomics_metrics))
    stages = [{"stage": k, "seconds": _seconds(v)}
              for k, v in (summary.get("stage_seconds") or {}).items()]
    parts = [f"<style>{CSS}</style>",
             f"<h1>Results: cohort {html.escape(str(summary.get('cohort', '')))}</h1>",
             f'<p class="vx-note">Headline numbers from <code>summary.json</code>. {intro}</p>',
             f'<div class="vx-cards">{cards}</div>', warnings_html(summary)]
    for title, rows, columns in tables:
        parts += [f"<h2>{html.escape(title)}</h2>", table_html(rows, columns, max_rows)]
    if figures:
        parts += ["<h2>Figures</h2>",
                  '<div class="vx-figs">' + "".join(figure_html(f) for f in figures) + "</div>"]
    if stages:
        parts += ["<h2>Stage time (benchmarks)</h2>",
                  table_html(stages, ["stage", "seconds"])]
    return '<div class="vx-results not-prose">' + "".join(parts) + "</div>"


def write_results_page(summary_json: str | os.PathLike, landing_html: str | os.PathLike,
                       page_html: str | os.PathLike, *, figures: Sequence[dict] = (),
                       imaging_table: str | None = None, imaging_metrics: str | None = None,
                       genomics_table: str | None = None, genomics_metrics: str | None = None,
                       landing_rows: int = 40) -> str:
    """Write the landing fragment (for the report's first page) and the standalone page.

    Parameters
    ----------
    summary_json
        ``results/<cohort>/summary.json``.
    landing_html, page_html
        Outputs: the fragment ``landing.rst`` includes, and a complete HTML page.
    figures
        ``{"title", "path", "caption"}`` per figure, in page order (see :func:`page_figures`).
    imaging_table, genomics_table
        ``imaging/cohort.tsv`` and ``genomics/infer/test_pearson.tsv``, when the cohort has them.
    imaging_metrics, genomics_metrics
        Training metrics TSVs when the models were trained in this cohort.
    landing_rows
        Rows per table on the first page (the standalone page has all).

    Returns
    -------
    str
        The standalone page.
    """
    summary = json.loads(Path(summary_json).read_text())
    tables = []
    if imaging_table:
        rows = read_tsv(imaging_table)
        cols = [c for c in (rows[0] if rows else {}) if c != "labelled"]
        tables.append(("Imaging cohort: one row per subject (Dice on the original grid)", rows,
                       cols))
    if genomics_table:
        rows = read_tsv(genomics_table)
        tables.append(("Genomics: test Pearson R per track (subject)", rows,
                       ["track", "compared_with", "pearson", "pearson_log1p", "n_bins"]))
    kwargs = {
        "imaging_metrics": read_tsv(imaging_metrics) if imaging_metrics else None,
        "genomics_metrics": read_tsv(genomics_metrics) if genomics_metrics else None,
    }
    figs = page_figures(figures)
    landing = render_results(summary, tables, figs, max_rows=landing_rows, intro=LANDING_INTRO,
                             **kwargs)
    write_text(landing_html, f"<style>{LANDING_CSS}</style>\n{landing}\n")
    body = render_results(summary, tables, figs, **kwargs)
    title = html.escape(f"voxseq results: {summary.get('cohort', '')}")
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
            f"</title><style>body{{margin:24px}}</style></head><body>{body}</body></html>\n")
    write_text(page_html, page)
    return page
