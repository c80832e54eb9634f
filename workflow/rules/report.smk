# Report: the results page the report opens on, the figures (shown by `snakemake --report`) and
# the cohort summary.


report: "../report/landing.rst"


include: "report_common.smk"


rule report_results:
    input:
        unpack(get_results_page_inputs),
    output:
        landing=f"{RES}/report/landing.html",
        page=report(
            f"{RES}/report/results.html",
            caption="../report/results.rst",
            category="Cohort summary",
            labels={"page": "results"},
        ),
    log:
        f"{LOGS}/report/results.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        figures=get_results_page_figures(),
        landing_rows=40,
    script:
        "../../scripts/report_results.py"


if TRAIN_IMAGING:

    rule imaging_report_training:
        input:
            metrics=f"{RES}/imaging/train/metrics.tsv",
        output:
            curves=report(
                f"{RES}/imaging/report/training_curves.png",
                caption="../report/training_curves.rst",
                category="Imaging",
                labels={"figure": "training curves"},
            ),
        log:
            f"{LOGS}/imaging/report_training.log",
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        params:
            labels=config["imaging"]["labels"],
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
            labels={"figure": "Dice box plot"},
        ),
        overlays=report(
            directory(f"{RES}/imaging/report/overlays"),
            patterns=["{name}.png"],
            caption="../report/overlays.rst",
            category="Imaging",
            labels={"figure": "overlay {name}"},
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


if TRAIN_GENOMICS:

    rule genomics_report_training:
        input:
            metrics=f"{RES}/genomics/train/metrics.tsv",
        output:
            curves=report(
                f"{RES}/genomics/report/genomics_training_curves.png",
                caption="../report/genomics_training_curves.rst",
                category="Genomics",
                labels={"figure": "training curves"},
            ),
        log:
            f"{LOGS}/genomics/report_training.log",
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/genomics_report_training.py"


if GENOMICS_COMPARE:

    rule genomics_report_compare:
        input:
            compare=f"{RES}/genomics/train/compare.json",
        output:
            figure=report(
                f"{RES}/genomics/report/genomics_arch_comparison.png",
                caption="../report/genomics_arch_comparison.rst",
                category="Genomics",
                labels={"figure": "architectures compared"},
            ),
        log:
            f"{LOGS}/genomics/report_compare.log",
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/genomics_report_compare.py"


if GENOMICS:

    rule genomics_report_variants:
        input:
            variants=f"{RES}/genomics/infer/variant_scores.tsv",
            truth=GENOMICS_TRUTH,
        output:
            effects=report(
                f"{RES}/genomics/report/variant_effects.png",
                caption="../report/variant_effects.rst",
                category="Genomics",
                labels={"figure": "variant effects"},
            ),
        log:
            f"{LOGS}/genomics/report_variants.log",
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/genomics_report_variants.py"


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
    report_results,
    summary,
