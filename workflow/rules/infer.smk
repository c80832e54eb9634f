# Stage 5, infer: every subject of the cohort (imaging: back on its original grid, then the cohort
# table; genomics: predicted tracks, held-out-contig metrics, variant effects).


rule imaging_infer:
    input:
        store=L("imaging_store"),
        bundle=bundle_files(SEG.bundle),
        label=IN.label,
    output:
        **IN.infer_extra_outputs(),
        seg=L("imaging_seg"),
        result=L("imaging_result"),
    log:
        L.log("imaging/infer/{subject}"),
    benchmark:
        L.bench("imaging/infer/{subject}")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(30),
        gpu=1,
    params:
        device=config["imaging"]["train"]["device"],
    script:
        "../../scripts/imaging_infer.py"


if CLS.enabled:

    rule imaging_classify:
        input:
            sheet=L("sheet"),
            bundle=bundle_files(CLS.bundle),
            stores=L.each("imaging_store", PLAN.imaging_subjects),
            seg_probs=IN.classify_seg_probs,
            oof=IN.classify_oof,
        output:
            predictions=L("classify_predictions"),
            metrics=L("classify_metrics"),
            roc=report(
                f"{L('imaging_report')}/classify_roc.png",
                caption="../report/classify_roc.rst",
                category="Imaging classification",
                labels={"figure": "ROC curves"},
            ),
            confusion=report(
                f"{L('imaging_report')}/classify_confusion.png",
                caption="../report/classify_confusion.rst",
                category="Imaging classification",
                labels={"figure": "confusion matrix"},
            ),
            grid=report(
                f"{L('imaging_report')}/classify_grid.png",
                caption="../report/classify_grid.rst",
                category="Imaging classification",
                labels={"figure": "test subjects and Grad-CAM"},
            ),
        log:
            L.log("imaging/classify/predict"),
        benchmark:
            L.bench("imaging/classify_predict")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
            gpu=1,
        params:
            subjects=list(PLAN.imaging_subjects),
            device=config["imaging"]["classify"]["train"]["device"],
            bootstrap=config["imaging"]["classify"]["bootstrap"],
            report_subjects=config["imaging"]["classify"]["report_subjects"],
            seed=config["seed"],
        script:
            "../../scripts/imaging_classify.py"


rule imaging_cohort:
    input:
        unpack(IN.imaging_cohort_classify),
        sheet=L("sheet"),
        results=L.each("imaging_result", PLAN.imaging_subjects),
    output:
        table=L("imaging_table"),
        metrics=L("imaging_cohort"),
    log:
        L.log("imaging/cohort"),
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        subjects=list(PLAN.imaging_subjects),
        labels=config["imaging"]["labels"],
    script:
        "../../scripts/imaging_cohort.py"


if PLAN.genomics:

    rule genomics_infer:
        input:
            bundle=bundle_files(SEQ.bundle),
            fasta=IN.reference,
            windows=L("genomics_windows"),
            vcfs=IN.vcfs,
            truth=PLAN.variant_truth or [],
        output:
            bigwig=directory(L("genomics_bigwig")),
            pearson=L("genomics_pearson"),
            variants=L("genomics_variants"),
            track_plot=report(
                f"{L('genomics_report')}/observed_vs_predicted.png",
                caption="../report/observed_vs_predicted.rst",
                category="Genomics",
                labels={"figure": "observed vs predicted"},
            ),
            pearson_plot=report(
                f"{L('genomics_report')}/pearson_per_track.png",
                caption="../report/pearson_per_track.rst",
                category="Genomics",
                labels={"figure": "Pearson per track"},
            ),
            cohort=L("genomics_cohort"),
        log:
            L.log("genomics/infer"),
        benchmark:
            L.bench("genomics/infer")
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(120),
            gpu=1,
        params:
            subjects=list(PLAN.genomics_subjects),
            vcf_subjects=list(PLAN.vcf_subjects),
            genome_wide=config["genomics"]["infer"]["genome_wide"],
            variant_bins=config["genomics"]["infer"]["variant_bins"],
            batch_size=config["genomics"]["infer"]["batch_size"],
            device=config["genomics"]["train"]["device"],
        script:
            "../../scripts/genomics_infer.py"

    rule genomics_interpret:
        input:
            bundle=bundle_files(SEQ.bundle),
            windows=L("genomics_windows"),
            fasta=IN.reference,
        output:
            attributions=L("genomics_attributions"),
            meme=L("genomics_meme"),
            motifs=L("genomics_motifs"),
            motif_logos=report(
                f"{L('genomics_report')}/motif_logos.png",
                caption="../report/motif_logos.rst",
                category="Genomics",
                labels={"figure": "discovered motifs"},
            ),
            attribution_logos=report(
                f"{L('genomics_report')}/attribution_logos.png",
                caption="../report/attribution_logos.rst",
                category="Genomics",
                labels={"figure": "attributions and ISM"},
            ),
        log:
            L.log("genomics/interpret"),
        benchmark:
            L.bench("genomics/interpret")
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
            gpu=1,
        params:
            demo=PLAN.demo and config["demo"]["genomics"],
            n_windows=config["genomics"]["interpret"]["n_windows"],
            center_bins=None,
            n_ism=config["genomics"]["interpret"]["ism_windows"],
            ism_width=config["genomics"]["interpret"]["ism_width"],
            batch_size=config["genomics"]["infer"]["batch_size"],
            device=config["genomics"]["train"]["device"],
            modisco={},
        script:
            "../../scripts/genomics_interpret.py"
