# Report: the results page the report opens on, the figures (shown by `snakemake --report`) and
# the cohort summary.


report: "../report/landing.rst"


include: "report_common.smk"


rule report_results:
    input:
        unpack(get_results_page_inputs),
    output:
        landing=L("landing"),
        page=report(
            L("results_page"),
            caption="../report/results.rst",
            category="Cohort summary",
            labels={"page": "results"},
        ),
    log:
        L.log("report/results"),
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


if SEG.train:

    rule imaging_report_training:
        input:
            metrics=L("imaging_train_metrics"),
        output:
            curves=report(
                f"{L('imaging_report')}/training_curves.png",
                caption="../report/training_curves.rst",
                category="Imaging",
                labels={"figure": "training curves"},
            ),
        log:
            L.log("imaging/report_training"),
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
        sheet=L("sheet"),
        table=L("imaging_table"),
        segs=L.each("imaging_seg", PLAN.imaging_subjects),
    output:
        dice=report(
            f"{L('imaging_report')}/dice_boxplot.png",
            caption="../report/dice_boxplot.rst",
            category="Imaging",
            labels={"figure": "Dice box plot"},
        ),
        overlays=report(
            directory(f"{L('imaging_report')}/overlays"),
            patterns=["{name}.png"],
            caption="../report/overlays.rst",
            category="Imaging",
            labels={"figure": "overlay {name}"},
        ),
    log:
        L.log("imaging/report"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    params:
        subjects=list(PLAN.imaging_subjects),
        labels=config["imaging"]["labels"],
        n=config["imaging"]["report_subjects"],
    script:
        "../../scripts/imaging_report.py"


if SEQ.train:

    rule genomics_report_training:
        input:
            metrics=L("genomics_train_metrics"),
        output:
            curves=report(
                f"{L('genomics_report')}/genomics_training_curves.png",
                caption="../report/genomics_training_curves.rst",
                category="Genomics",
                labels={"figure": "training curves"},
            ),
        log:
            L.log("genomics/report_training"),
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/genomics_report_training.py"


if len(SEQ.archs) > 1:

    rule genomics_report_compare:
        input:
            compare=L("genomics_compare"),
        output:
            figure=report(
                f"{L('genomics_report')}/genomics_arch_comparison.png",
                caption="../report/genomics_arch_comparison.rst",
                category="Genomics",
                labels={"figure": "architectures compared"},
            ),
        log:
            L.log("genomics/report_compare"),
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        script:
            "../../scripts/genomics_report_compare.py"


if PLAN.genomics:

    rule genomics_report_variants:
        input:
            variants=L("genomics_variants"),
            truth=PLAN.variant_truth or [],
        output:
            effects=report(
                f"{L('genomics_report')}/variant_effects.png",
                caption="../report/variant_effects.rst",
                category="Genomics",
                labels={"figure": "variant effects"},
            ),
        log:
            L.log("genomics/report_variants"),
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
        unpack(IN.summary_inputs),
    output:
        summary=L("summary"),
    log:
        L.log("summary"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
    params:
        cohort=COHORT,
        benchmarks=L.benchmarks,
    script:
        "../../scripts/summary.py"


localrules:
    run_plan,
    cohort_sheet,
    imaging_stats,
    imaging_cohort,
    imaging_report,
    report_results,
    summary,
