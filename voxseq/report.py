"""The results page.

The results page is what ``snakemake --report`` opens on: headline numbers of ``summary.json``,
the cohort tables and every report figure with its caption, as one HTML fragment (included by
``workflow/report/landing.rst``) and as a standalone page (a report item of its own).
The figures are drawn elsewhere (:mod:`voxseq.figures` holds the shared plotting helpers).
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

from voxseq.figures import as_float, best_epoch
from voxseq.io.atomic import read_tsv, write_text
from voxseq.summary import headline_values


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
    value = as_float(value)
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _seconds(value) -> str:
    s = as_float(value)
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


def _count(value) -> str:
    return str(0 if value is None else value)


def headline_numbers(summary: dict, imaging_metrics: Sequence[dict] | None = None,
                     genomics_metrics: Sequence[dict] | None = None
                     ) -> list[tuple[str, str, str]]:
    """The results page's headline cards as ``(name, value, detail)``: the numbers of
    :func:`voxseq.summary.headline_values`.

    Parameters
    ----------
    summary
        ``summary.json`` content (``imaging`` and/or ``genomics`` blocks, ``stage_seconds``).
    imaging_metrics, genomics_metrics
        Training metrics rows when the model was trained in this cohort (best epoch shown).
    """
    h = headline_values(summary)
    cards = []
    if (img := h["imaging"]) is not None:
        cards.append(("Imaging test Dice", _fmt(img["test_dice_mean"]),
                      " · ".join(f"{k} {_fmt(v)}" for k, v in img["test_dice_per_label"].items())
                      or "no labelled test"))
        cards.append(("Imaging subjects", "n/a" if img["n_subjects"] is None
                      else str(img["n_subjects"]),
                      f"{img['n_labelled']} labelled, "
                      f"{_count(img['n_test_labelled'])} labelled in test"))
        if (t := _training(imaging_metrics)) is not None:
            cards.append(("Imaging best epoch", *t))
        if (cls := h["classifier"]) is not None:
            ci = cls["oof_auroc_ci95"]
            cards.append(("Classifier AUROC (out-of-fold)", _fmt(cls["oof_auroc"]),
                          f"95 % CI {_fmt(ci[0])}–{_fmt(ci[1])}; "
                          f"{cls['n_oof']} subjects; test AUROC {_fmt(cls['test_auroc'])} "
                          f"({cls['n_test']} subjects)"))
    if (syn := h["synthesis"]) is not None:
        kept = syn["ssim"].get(syn["kept"], {})
        cards.append((f"Synthesised {syn['channel']}: lesion SSIM", _fmt(kept.get("lesion")),
                      f"kept {syn['kept']}; {syn.get('n_synthetic') or 0} subjects filled; "
                      f"{syn['n_scored']} test subjects scored"))
    if (gen := h["genomics"]) is not None:
        cards.append(("Genomics test Pearson", _fmt(gen["test_pearson_mean"]),
                      f"log1p {_fmt(gen['test_pearson_log1p_mean'])}; test contigs "
                      + (", ".join(gen["test_contigs"]) or "none")))
        truth = (f"{gen['vep_n_effect']} SNVs with an effect vs {gen['vep_n_neutral']} neutral"
                 if gen["vep_n_effect"] or gen["vep_n_neutral"] else "no variant truth")
        cards.append(("Variant-effect AUROC", _fmt(gen["vep_auroc"]),
                      f"{truth}; {gen['n_variants_scored']} of {gen['n_variants']} variants "
                      "scored"))
        if gen["vep_spearman"] is not None:
            cards.append(("Variant-effect Spearman", _fmt(gen["vep_spearman"]),
                          f"signed score vs true effect, {gen['vep_n_spearman']} SNVs"))
        if (motifs := h["motifs"]) is not None:
            cards.append(("Planted motifs recovered",
                          f"{motifs['recovered']} of {_count(motifs['planted'])}",
                          f"{_count(motifs['found'])} motifs discovered (motifs.meme)"))
        cards.append(("Genomics subjects", "n/a" if gen["n_subjects"] is None
                      else str(gen["n_subjects"]), f"{gen['n_tracks']} coverage tracks"))
        if (t := _training(genomics_metrics)) is not None:
            cards.append(("Genomics best epoch", *t))
    if (sm := h["subject_model"]) is not None:
        g = sm.get("fusion_gain")
        aucs = " · ".join(f"{k} {_fmt(v)}" for k, v in sm["oof_auroc"].items())
        cards.append((f"Subject model ({sm['target']}): fused AUROC gain",
                      f"{g['difference']:+.3f}" if g else "n/a",
                      (f"{sm['fusion']} − {g['versus']}, paired 95 % CI {g['ci95'][0]:+.3f} to "
                       f"{g['ci95'][1]:+.3f}; " if g else "")
                      + f"out-of-fold AUROC {aucs} ({sm['n_both']} subjects)"))
    cards.append(("Stage time", _seconds(h["total_stage_seconds"]),
                  f"sum over {len(h['stage_seconds'])} benchmarked stages"))
    return cards


def _cell(column: str, value) -> str:
    if column.startswith(("dice_", "pearson")) or column == "score":
        return _fmt(value)
    if column.startswith("volume_") and math.isfinite(as_float(value)):
        return f"{as_float(value):,.0f}"
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
    for modality, warnings in headline_values(summary)["warnings"].items():
        if warnings:
            items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
            out += (f'<div class="vx-warn"><h3>{modality.capitalize()}: {len(warnings)} '
                    f"warning{'s' if len(warnings) > 1 else ''} (the numbers above may rest on "
                    f"too little data)</h3><ul>{items}</ul></div>")
    return out


SYNTHESIS_COLUMNS = ("method", "ssim_lesion", "ssim_outside", "psnr", "mae", "dice",
                     "drop_from_real", "lesion_free_voxels")


def synthesis_rows(summary: dict) -> list[dict]:
    """The missing-sequence synthesis's method table (:data:`SYNTHESIS_COLUMNS`): each method's
    mean test scores, the segmentation Dice of the last label (the lesion) with its channel in
    place and its drop from the real channel's, voxels segmented as lesion on lesion-free
    subjects (the planted check)."""
    syn = headline_values(summary)["synthesis"]
    if syn is None:
        return []
    dice, drop = syn.get("dice") or {}, syn.get("dice_drop") or {}
    label = next(reversed(dice["real"])) if dice.get("real") else None
    free = syn.get("lesion_free_voxels") or {}
    rows = [{"method": "real", "dice": _fmt(dice["real"][label]),
             "lesion_free_voxels": free.get("real", "")}] if label else []
    for m, s in syn["ssim"].items():
        rows.append({
            "method": m + (" (kept)" if m == syn["kept"] else ""),
            "ssim_lesion": _fmt(s["lesion"]), "ssim_outside": _fmt(s["outside"]),
            "psnr": _fmt(syn["psnr"].get(m), 2), "mae": _fmt(syn["mae"].get(m)),
            "dice": _fmt(dice[m][label]) if label and m in dice else "",
            "drop_from_real": _fmt(drop[m][label]) if label and m in drop else "",
            "lesion_free_voxels": free.get(m, ""),
        })
    return rows


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
    if syn_rows := synthesis_rows(summary):
        channel = summary["imaging"]["synthesis_channel"]
        tables.append((f"Missing-sequence synthesis of {channel}: test subjects with the channel "
                       "hidden (BraSyn SSIM, PSNR, MAE; segmentation Dice with it in place)",
                       syn_rows, list(SYNTHESIS_COLUMNS)))
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
