# Inputs and targets of the report rules (report.smk): functions only, so that
# `snakemake --lint` finds no rules mixed with functions.


from voxseq.plan.targets import synthesis_figures

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
    out = [L("landing"), L("results_page")]
    img, gen = L("imaging_report"), L("genomics_report")
    if PLAN.imaging:
        out.append(f"{img}/dice_boxplot.png")
        if SEG.train:
            out.append(f"{img}/training_curves.png")
    if CLS.enabled:
        out += [f"{img}/classify_{n}.png" for n in CLASSIFY_FIGURES]
    out += [f"{img}/synthesis_{n}.png" for n in synthesis_figures(PLAN)]
    if PLAN.genomics:
        out.append(f"{gen}/variant_effects.png")
        out += [f"{gen}/{n}.png" for n in GENOMICS_INTERPRET_FIGURES]
        if SEQ.train:
            out.append(f"{gen}/genomics_training_curves.png")
        if len(SEQ.archs) > 1:
            out.append(f"{gen}/genomics_arch_comparison.png")
    if PLAN.task("subject_model").train:
        out.append(L("subject_roc"))
    return out


def get_results_page_figures():
    """The results page's figures in page order: title, PNG (or folder of PNGs), caption."""
    figs = []
    if PLAN.imaging:
        rep = L("imaging_report")
        figs.append(("Imaging: Dice per label and split", rep, "dice_boxplot"))
        if SEG.train:
            figs.append(("Imaging: training curves", rep, "training_curves"))
        figs.append(("Imaging: overlays (first test subjects)", rep, "overlays"))
    if CLS.enabled:
        for name, title in CLASSIFY_FIGURES.items():
            figs.append((f"Imaging classification: {title}", rep, f"classify_{name}"))
    for name, title in synthesis_figures(PLAN).items():
        figs.append(
            (f"Imaging synthesis: {title}", L("imaging_report"), f"synthesis_{name}")
        )
    if PLAN.genomics:
        rep = L("genomics_report")
        figs.append(("Genomics: variant effects", rep, "variant_effects"))
        if SEQ.train:
            figs.append(("Genomics: training curves", rep, "genomics_training_curves"))
        if len(SEQ.archs) > 1:
            figs.append(
                ("Genomics: architectures compared", rep, "genomics_arch_comparison")
            )
        figs.append(("Genomics: observed vs predicted", rep, "observed_vs_predicted"))
        figs.append(("Genomics: test Pearson R per track", rep, "pearson_per_track"))
        for name, title in GENOMICS_INTERPRET_FIGURES.items():
            figs.append((f"Genomics: {title}", rep, name))
    if PLAN.task("subject_model").train:  # the four models' ROC curves and the interval
        figs.append(
            ("Subject model: ROC curves", *L("subject_roc")[:-4].rsplit("/", 1))
        )
    captions = {}  # figure -> its caption's name, where the two differ
    for pheno in GEN.phenotypes if GEN.enabled else ():
        for kind, title in (
            ("manhattan", "Manhattan plot"),
            ("qq", "QQ plot, lambda GC"),
        ):
            figs.append(
                (f"Genetics: {pheno}, {title}", L("association"), f"{pheno}_{kind}")
            )
            captions[f"{pheno}_{kind}"] = f"association_{kind}"
    return [
        {
            "title": title,
            "path": f"{rep}/{name}" + ("" if name == "overlays" else ".png"),
            "caption": f"{REPORT_CAPTIONS}/{captions.get(name, name)}.rst",
        }
        for title, rep, name in figs
    ]


def get_results_page_inputs(wildcards):
    figures = get_results_page_figures()
    out = {
        "summary": L("summary"),
        "figures": [f["path"] for f in figures],
        "captions": [f["caption"] for f in figures],
    }
    if PLAN.imaging:
        out["imaging_table"] = L("imaging_table")
    if SEG.train:
        out["imaging_metrics"] = L("imaging_train_metrics")
    if PLAN.genomics:
        out["genomics_table"] = L("genomics_pearson")
    if SEQ.train:
        out["genomics_metrics"] = L("genomics_train_metrics")
    return out
