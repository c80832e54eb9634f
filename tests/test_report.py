"""Report figures and the results page, on small synthetic tables (no workflow run)."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
from conftest import REPO, write_nifti

from voxseq.figures import best_epoch, pyplot, training_curves_figure
from voxseq.genomics import plots as gplots
from voxseq.imaging import plots as iplots
from voxseq.io.atomic import write_tsv
from voxseq.metrics import auroc, roc_curve
from voxseq.report import headline_numbers, page_figures, write_results_page

LABELS = ["background", "organ", "lesion"]


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend()
            for t in ax.get_legend().get_texts()]


def _close(fig) -> None:
    pyplot().close(fig)


def _imaging_metrics() -> list[dict]:
    scores = [0.30, 0.55, 0.70, 0.70, 0.62]  # best epoch: the first 0.70 (row 2, epoch 3)
    return [{"epoch": str(i), "train_loss": str(2 - 0.2 * i), "val_loss": str(2 - 0.1 * i),
             "score": str(s), "val_dice_1": str(s + 0.1), "val_dice_2": str(s - 0.1),
             "lr": "0.001", "seconds": "1"} for i, s in enumerate(scores)]


def _png(path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"


# ---- training curves -------------------------------------------------------------------------
def test_best_epoch_is_the_first_highest_score_and_none_without_scores():
    assert best_epoch(_imaging_metrics()) == 2
    assert best_epoch([{"score": ""}, {"score": "nan"}]) is None
    assert best_epoch([{"score": "nan"}, {"score": "0.1"}]) == 1


def test_metric_names_use_label_names():
    cols = ["epoch", "score", "val_dice_1", "val_dice_2", "val_dice_3", "val_dice_x"]
    assert iplots.metric_names(cols, LABELS) == {
        "val_dice_1": "organ", "val_dice_2": "lesion", "val_dice_3": "label 3"}


def test_imaging_training_curves_name_labels_and_mark_best_epoch(tmp_path):
    rows = _imaging_metrics()
    fig = training_curves_figure(rows, iplots.metric_names(list(rows[0]), LABELS), "t", "score")
    texts = _legend_texts(fig)
    assert "organ" in texts and "lesion" in texts
    assert not any(t.startswith("val_dice") for t in texts)
    assert "best epoch 3" in texts and "best: epoch 3, 0.700" in texts
    vlines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert {float(ln.get_xdata()[0]) for ln in vlines if len(ln.get_xdata())} == {3.0}
    _close(fig)
    metrics = tmp_path / "metrics.tsv"
    write_tsv(metrics, rows, list(rows[0]))
    iplots.training_curves(metrics, LABELS, tmp_path / "curves.png")
    assert _png(tmp_path / "curves.png")


def test_training_curves_reject_an_empty_table():
    with pytest.raises(ValueError, match="no rows"):
        training_curves_figure([], {}, "t", "score")


def test_genomics_training_curves_name_tracks_and_group_many(tmp_path):
    tracks = [f"s{i:02d}" for i in range(12)]
    rows = [{"epoch": str(e), "train_loss": "1", "val_loss": "1", "score": str(0.1 * e),
             **{f"pearson_{t}": str(0.05 * e) for t in tracks}} for e in range(3)]
    few = training_curves_figure(rows[:], {f"pearson_{t}": t for t in tracks[:3]}, "g", "score")
    assert {"s00", "s01", "s02"} <= set(_legend_texts(few))
    _close(few)
    many = training_curves_figure(rows, {f"pearson_{t}": t for t in tracks}, "g", "score")
    texts = _legend_texts(many)
    assert "per track (12)" in texts and "s05" not in texts
    _close(many)
    path = tmp_path / "metrics.tsv"
    write_tsv(path, rows, list(rows[0]))
    gplots.training_curves(path, tmp_path / "g.png")
    assert _png(tmp_path / "g.png")


# ---- Dice box plot and overlays --------------------------------------------------------------
def _cohort_rows() -> list[dict]:
    splits = ["train", "train", "train", "val", "test", "test", "test"]
    rows = []
    for i, split in enumerate(splits):
        labelled = i != 6  # the last test subject has no label file
        rows.append({"subject": f"c{i:03d}", "split": split, "class": "x",
                     "labelled": "yes" if labelled else "no",
                     "dice_organ": f"{0.8 + 0.01 * i}" if labelled else "",
                     "dice_lesion": f"{0.5 + 0.02 * i}" if labelled else ""})
    return rows


def test_dice_boxplot_shows_n_per_box_points_and_label_names(tmp_path):
    fig = iplots.dice_boxplot_figure(_cohort_rows(), LABELS)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["train\nn=3", "val\nn=1", "test\nn=2"] * 2
    points = [len(c.get_offsets()) for c in ax.collections]
    assert points == [3, 1, 2] * 2
    assert {"organ", "lesion"} <= {t.get_text() for t in ax.texts}
    _close(fig)
    table = tmp_path / "cohort.tsv"
    write_tsv(table, _cohort_rows(), list(_cohort_rows()[0]))
    iplots.dice_boxplot(table, LABELS, tmp_path / "dice.png")
    assert _png(tmp_path / "dice.png")


def test_dice_boxplot_without_labelled_subjects_says_so():
    rows = [{"subject": "a", "split": "test", "dice_organ": "", "dice_lesion": ""}]
    fig = iplots.dice_boxplot_figure(rows, LABELS)
    assert "no labelled subjects" in [t.get_text() for t in fig.axes[0].texts]
    _close(fig)


def test_overlay_has_legend_and_per_subject_dice_title():
    img = np.random.default_rng(0).random((20, 20))
    seg = np.zeros((20, 20), int)
    seg[5:12, 5:12], seg[8:10, 8:10] = 1, 2
    truth = np.roll(seg, 1, axis=0)
    title = iplots.overlay_title({"subject": "c004", "split": "test", "labelled": "yes",
                                  "dice_organ": "0.8123", "dice_lesion": ""}, LABELS)
    assert title == "c004 (test)\n3D Dice: organ 0.81, lesion n/a"
    fig = iplots.overlay_figure(img, seg, truth, LABELS, title)
    texts = _legend_texts(fig)
    assert texts == ["organ", "lesion", "predicted", "truth"]
    handles = fig.axes[0].get_legend().legend_handles
    assert matplotlib.colors.to_hex(handles[0].get_color()) == iplots.label_colour(1)
    assert handles[3].get_linestyle() == "--"
    assert fig.axes[0].get_title() == title
    _close(fig)
    unlabelled = iplots.overlay_figure(img, seg, None, LABELS, "x")
    assert "truth" not in _legend_texts(unlabelled)
    _close(unlabelled)
    assert iplots.overlay_title({"subject": "c006", "split": "test", "labelled": "no"},
                                LABELS) == "c006 (test): no label file"


def test_write_overlays_draws_test_subjects_first(tmp_path):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    sheet, table = [], []
    for sid, split in (("a001", "train"), ("a002", "test"), ("a003", "test")):
        vol = np.zeros((10, 10, 4), np.float32)
        vol[2:7, 2:7, 1:3] = 1
        image = write_nifti(tmp_path / f"{sid}_image.nii.gz", vol * 100, affine)
        label = write_nifti(tmp_path / f"{sid}_label.nii.gz", vol.astype(np.uint8), affine)
        write_nifti(tmp_path / f"{sid}_seg.nii.gz", vol.astype(np.uint8), affine)
        sheet.append({"subject": sid, "split": split, "image": image, "label": label})
        table.append({"subject": sid, "split": split, "labelled": "yes", "dice_organ": "1",
                      "dice_lesion": ""})
    write_tsv(tmp_path / "sheet.tsv", sheet, ["subject", "split", "image", "label"])
    write_tsv(tmp_path / "cohort.tsv", table, list(table[0]))
    segs = {r["subject"]: str(tmp_path / f"{r['subject']}_seg.nii.gz") for r in sheet}
    drawn = iplots.write_overlays(tmp_path / "sheet.tsv", tmp_path / "cohort.tsv", segs, LABELS,
                                  2, tmp_path / "overlays")
    assert drawn == ["a002", "a003"]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["a002.png", "a003.png"]


# ---- variant effects -------------------------------------------------------------------------
def test_roc_curve_area_equals_auroc_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    fpr, tpr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert math.isclose(area, auroc(scores, labels))
    with pytest.raises(ValueError, match="both classes"):
        roc_curve(scores, np.ones(40, bool))


# ---- results page ----------------------------------------------------------------------------
SUMMARY = {
    "cohort": "synth",
    "imaging": {"n_subjects": 7, "n_labelled": 6, "n_test_labelled": 2,
                "test_dice_mean": 0.81234, "test_dice_per_label": {"organ": 0.90123,
                                                                   "lesion": 0.72345}},
    "genomics": {"n_subjects": 3, "n_tracks": 3, "test_contigs": ["chr4"],
                 "test_pearson_mean": 0.45678, "test_pearson_log1p_mean": 0.41111,
                 "vep_auroc": 0.78901, "vep_n_motif_breaking": 8, "vep_n_neutral": 6,
                 "n_variants": 15, "n_variants_scored": 14},
    "stage_seconds": {"imaging.train": 12.5, "genomics.infer": 300.0},
    "total_stage_seconds": 312.5,
}


def test_headline_numbers():
    cards = {k: (v, d) for k, v, d in headline_numbers(SUMMARY, _imaging_metrics())}
    assert cards["Imaging test Dice"] == ("0.812", "organ 0.901 · lesion 0.723")
    assert cards["Imaging subjects"][0] == "7"
    assert cards["Imaging best epoch"][0] == "epoch 3 of 5"
    assert cards["Genomics test Pearson"][0] == "0.457"
    assert cards["Variant-effect AUROC"] == (
        "0.789", "8 SNVs with an effect vs 6 neutral; 14 of 15 variants scored")
    assert "Variant-effect Spearman" not in cards and "Planted motifs recovered" not in cards
    assert cards["Stage time"][0] == "5.2 min"
    graded = {**SUMMARY, "genomics": {**SUMMARY["genomics"], "vep_n_effect": 12,
                                      "vep_spearman": 0.6512, "vep_n_spearman": 18,
                                      "motifs_recovered": 2, "motifs_planted": 3,
                                      "motifs_found": 5}}
    cards = {k: (v, d) for k, v, d in headline_numbers(graded)}
    assert cards["Variant-effect AUROC"][1].startswith("12 SNVs with an effect vs 6 neutral")
    assert cards["Variant-effect Spearman"] == (
        "0.651", "signed score vs true effect, 18 SNVs")
    assert cards["Planted motifs recovered"][0] == "2 of 3"
    no_truth = {**SUMMARY, "genomics": {**SUMMARY["genomics"], "vep_auroc": None,
                                        "vep_n_motif_breaking": 0, "vep_n_neutral": 0}}
    cards = {k: (v, d) for k, v, d in headline_numbers(no_truth)}
    assert cards["Variant-effect AUROC"][0] == "n/a"
    assert cards["Variant-effect AUROC"][1].startswith("no variant truth")
    assert "Imaging best epoch" not in cards


def _page_inputs(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    rows = _cohort_rows()
    for r in rows:
        r["volume_organ_mm3"] = "66974.4"
    write_tsv(tmp_path / "cohort.tsv", rows, list(rows[0]))
    metrics = _imaging_metrics()
    write_tsv(tmp_path / "metrics.tsv", metrics, list(metrics[0]))
    fig = iplots.dice_boxplot_figure(_cohort_rows(), LABELS)
    fig.savefig(tmp_path / "dice.png")
    _close(fig)
    (tmp_path / "overlays").mkdir()
    for sid in ("b", "a"):
        (tmp_path / "overlays" / f"{sid}.png").write_bytes((tmp_path / "dice.png").read_bytes())
    (tmp_path / "dice.rst").write_text("Dice per label; ``imaging.test_dice_mean`` is a mean.")
    return [{"title": "Dice box plot", "path": str(tmp_path / "dice.png"),
             "caption": str(tmp_path / "dice.rst")},
            {"title": "Overlays", "path": str(tmp_path / "overlays"), "caption": ""}]


def test_page_figures_expand_folders_and_render_captions(tmp_path):
    figs = page_figures(_page_inputs(tmp_path))
    assert figs[0].pngs == (str(tmp_path / "dice.png"),)
    assert "docutils literal" in figs[0].caption_html and "imaging.test_dice_mean" in \
        figs[0].caption_html
    assert [p.rsplit("/", 1)[1] for p in figs[1].pngs] == ["a.png", "b.png"]


def test_results_page_shows_summary_numbers_tables_and_figures(tmp_path):
    figures = _page_inputs(tmp_path)
    write_results_page(tmp_path / "summary.json", tmp_path / "landing.html",
                       tmp_path / "page.html", figures=figures,
                       imaging_table=tmp_path / "cohort.tsv",
                       imaging_metrics=tmp_path / "metrics.tsv", landing_rows=3)
    landing, page = (tmp_path / "landing.html").read_text(), (tmp_path / "page.html").read_text()
    for html in (landing, page):
        for text in ("Results: cohort synth", "0.812", "organ 0.901", "lesion 0.723", "0.457",
                     "0.789", "epoch 3 of 5", "5.2 min", "imaging.train", "12.5 s",
                     "Dice organ", "66,974", "Dice box plot", "docutils literal"):
            assert text in html, text
        assert html.count("data:image/png;base64,") == 3
    assert "c002" in landing and "c003" not in landing and "3 of 7 rows shown" in landing
    assert "c006" in page and "rows shown" not in page
    assert ".max-w-lg:has(.vx-results)" in landing and "max-w-lg" not in page
    assert page.startswith("<!doctype html>")


def test_landing_rst_includes_the_fragment_as_snakemake_renders_it(tmp_path, monkeypatch):
    """Snakemake renders the landing .rst with Jinja2, then docutils, in the working directory."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    fragment = tmp_path / "results/synth/report/landing.html"
    fragment.parent.mkdir(parents=True)
    fragment.write_text('<div class="vx-results">test Dice 0.812</div>')

    class Snakemake:
        config = {"cohort": "synth"}

    text = (REPO / "workflow/report/landing.rst").read_text()
    monkeypatch.chdir(tmp_path)
    rst = Environment(trim_blocks=True, lstrip_blocks=True).from_string(text).render(
        snakemake=Snakemake, categories={}, files=[])
    body = publish_parts(rst, writer="html")["html_body"]
    assert '<div class="vx-results">test Dice 0.812</div>' in body
    from voxseq.plan.layout import Layout

    rules = (REPO / "workflow/rules/report.smk").read_text()
    assert 'landing=L("landing"),' in rules  # the rule writes the fragment the .rst includes
    assert Layout("synth")("landing") == "results/synth/report/landing.html"
