# Report figures (shown by `snakemake --report`) and the cohort summary.


def get_report_figures():
    """Every report figure of this cohort (targets of `rule all`, so a plain run makes them)."""
    out = []
    if IMAGING:
        out.append(f"{RES}/imaging/report/dice_boxplot.png")
        if TRAIN_IMAGING:
            out.append(f"{RES}/imaging/report/training_curves.png")
    return out


if TRAIN_IMAGING:

    rule imaging_report_training:
        input:
            metrics=f"{RES}/imaging/train/metrics.tsv",
        output:
            curves=report(
                f"{RES}/imaging/report/training_curves.png",
                caption="../report/training_curves.rst",
                category="Imaging",
            ),
        log:
            f"{LOGS}/imaging/report_training.log",
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/report_training.py"


rule imaging_report:
    input:
        sheet=SHEET,
        table=f"{RES}/imaging/cohort.tsv",
        segs=expand(
            f"{RES}/imaging/infer/{{subject}}_seg.nii.gz", subject=IMAGING_SUBJECTS
        ),
    output:
        dice=report(
            f"{RES}/imaging/report/dice_boxplot.png",
            caption="../report/dice_boxplot.rst",
            category="Imaging",
        ),
        overlays=report(
            directory(f"{RES}/imaging/report/overlays"),
            patterns=["{name}.png"],
            caption="../report/overlays.rst",
            category="Imaging",
        ),
    log:
        f"{LOGS}/imaging/report.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    params:
        subjects=IMAGING_SUBJECTS,
        labels=config["imaging"]["labels"],
        n=config["imaging"]["report_subjects"],
    script:
        "../../scripts/imaging_report.py"


rule summary:
    input:
        unpack(get_summary_inputs),
    output:
        summary=f"{RES}/summary.json",
    log:
        f"{LOGS}/summary.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
    params:
        cohort=COHORT,
        benchmarks=BENCH,
    script:
        "../../scripts/summary.py"


localrules:
    cohort_sheet,
    imaging_stats,
    imaging_cohort,
    imaging_report,
    summary,
