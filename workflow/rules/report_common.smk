# Inputs and targets of the report rules (report.smk): functions only, so that
# `snakemake --lint` finds no rules mixed with functions.


REPORT_CAPTIONS = f"{workflow.basedir}/workflow/report"
CLASSIFY_FIGURES = {
    "roc": "ROC curves",
    "confusion": "confusion matrices",
    "grid": "test subjects with Grad-CAM",
}
GENOMICS_INTERPRET_FIGURES = {
    "motif_logos": "discovered motifs",
    "attribution_logos": "attributions and ISM (test contig)",
}


def get_report_figures():
    """Every report figure of this cohort (targets of `rule all`, so a plain run makes them)."""
    out = [f"{RES}/report/landing.html", f"{RES}/report/results.html"]
    if IMAGING:
        out.append(f"{RES}/imaging/report/dice_boxplot.png")
        if TRAIN_IMAGING:
            out.append(f"{RES}/imaging/report/training_curves.png")
    if CLASSIFY:
        out += [f"{RES}/imaging/report/classify_{n}.png" for n in CLASSIFY_FIGURES]
    if GENOMICS:
        out.append(f"{RES}/genomics/report/variant_effects.png")
        out += [f"{RES}/genomics/report/{n}.png" for n in GENOMICS_INTERPRET_FIGURES]
        if TRAIN_GENOMICS:
            out.append(f"{RES}/genomics/report/genomics_training_curves.png")
        if GENOMICS_COMPARE:
            out.append(f"{RES}/genomics/report/genomics_arch_comparison.png")
    return out


def get_results_page_figures():
    """The results page's figures in page order: title, PNG (or folder of PNGs), caption."""
    figs = []
    if IMAGING:
        rep = f"{RES}/imaging/report"
        figs.append(("Imaging: Dice per label and split", rep, "dice_boxplot"))
        if TRAIN_IMAGING:
            figs.append(("Imaging: training curves", rep, "training_curves"))
        figs.append(("Imaging: overlays (first test subjects)", rep, "overlays"))
    if CLASSIFY:
        for name, title in CLASSIFY_FIGURES.items():
            figs.append((f"Imaging classification: {title}", rep, f"classify_{name}"))
    if GENOMICS:
        rep = f"{RES}/genomics/report"
        figs.append(("Genomics: variant effects", rep, "variant_effects"))
        if TRAIN_GENOMICS:
            figs.append(("Genomics: training curves", rep, "genomics_training_curves"))
        if GENOMICS_COMPARE:
            figs.append(
                ("Genomics: architectures compared", rep, "genomics_arch_comparison")
            )
        figs.append(("Genomics: observed vs predicted", rep, "observed_vs_predicted"))
        figs.append(("Genomics: test Pearson R per track", rep, "pearson_per_track"))
        for name, title in GENOMICS_INTERPRET_FIGURES.items():
            figs.append((f"Genomics: {title}", rep, name))
    return [
        {
            "title": title,
            "path": f"{rep}/{name}" + ("" if name == "overlays" else ".png"),
            "caption": f"{REPORT_CAPTIONS}/{name}.rst",
        }
        for title, rep, name in figs
    ]


def get_results_page_inputs(wildcards):
    figures = get_results_page_figures()
    out = {
        "summary": f"{RES}/summary.json",
        "figures": [f["path"] for f in figures],
        "captions": [f["caption"] for f in figures],
    }
    if IMAGING:
        out["imaging_table"] = f"{RES}/imaging/cohort.tsv"
    if TRAIN_IMAGING:
        out["imaging_metrics"] = f"{RES}/imaging/train/metrics.tsv"
    if GENOMICS:
        out["genomics_table"] = f"{RES}/genomics/infer/test_pearson.tsv"
    if TRAIN_GENOMICS:
        out["genomics_metrics"] = f"{RES}/genomics/train/metrics.tsv"
    return out
