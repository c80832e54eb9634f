# Stage 5, infer: every subject of the cohort (imaging: back on its original grid, then the cohort
# table; genomics: predicted tracks, held-out-contig metrics, variant effects).


rule imaging_infer:
    input:
        store=f"{RES}/imaging/normalise/{{subject}}.zarr",
        bundle=bundle_files(IMAGING_BUNDLE),
        label=get_label,
    output:
        **get_infer_extra_outputs(),
        seg=f"{RES}/imaging/infer/{{subject}}_seg.nii.gz",
        result=f"{RES}/imaging/infer/{{subject}}.json",
    log:
        f"{LOGS}/imaging/infer/{{subject}}.log",
    benchmark:
        f"{BENCH}/imaging/infer/{{subject}}.tsv"
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


if CLASSIFY:

    rule imaging_classify:
        input:
            sheet=SHEET,
            bundle=bundle_files(CLASSIFY_BUNDLE),
            stores=expand(
                f"{RES}/imaging/normalise/{{subject}}.zarr", subject=IMAGING_SUBJECTS
            ),
            seg_probs=get_classify_seg_probs,
            oof=get_classify_oof,
        output:
            predictions=f"{RES}/imaging/classify/predictions.tsv",
            metrics=f"{RES}/imaging/classify/metrics.json",
            roc=report(
                f"{RES}/imaging/report/classify_roc.png",
                caption="../report/classify_roc.rst",
                category="Imaging classification",
                labels={"figure": "ROC curves"},
            ),
            confusion=report(
                f"{RES}/imaging/report/classify_confusion.png",
                caption="../report/classify_confusion.rst",
                category="Imaging classification",
                labels={"figure": "confusion matrix"},
            ),
            grid=report(
                f"{RES}/imaging/report/classify_grid.png",
                caption="../report/classify_grid.rst",
                category="Imaging classification",
                labels={"figure": "test subjects and Grad-CAM"},
            ),
        log:
            f"{LOGS}/imaging/classify/predict.log",
        benchmark:
            f"{BENCH}/imaging/classify_predict.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
            gpu=1,
        params:
            subjects=IMAGING_SUBJECTS,
            device=CLASSIFY_CFG["train"]["device"],
            bootstrap=CLASSIFY_CFG["bootstrap"],
            report_subjects=CLASSIFY_CFG["report_subjects"],
            seed=config["seed"],
        script:
            "../../scripts/imaging_classify.py"


rule imaging_cohort:
    input:
        unpack(get_imaging_cohort_classify),
        sheet=SHEET,
        results=expand(
            f"{RES}/imaging/infer/{{subject}}.json", subject=IMAGING_SUBJECTS
        ),
    output:
        table=f"{RES}/imaging/cohort.tsv",
        metrics=f"{RES}/imaging/cohort.json",
    log:
        f"{LOGS}/imaging/cohort.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        subjects=IMAGING_SUBJECTS,
        labels=config["imaging"]["labels"],
    script:
        "../../scripts/imaging_cohort.py"


if GENOMICS:

    rule genomics_infer:
        input:
            bundle=bundle_files(GENOMICS_BUNDLE),
            fasta=get_reference,
            windows=f"{RES}/genomics/tile/windows.h5",
            vcfs=get_vcfs,
            truth=GENOMICS_TRUTH,
        output:
            bigwig=directory(f"{RES}/genomics/infer/bigwig"),
            pearson=f"{RES}/genomics/infer/test_pearson.tsv",
            variants=f"{RES}/genomics/infer/variant_scores.tsv",
            track_plot=report(
                f"{RES}/genomics/report/observed_vs_predicted.png",
                caption="../report/observed_vs_predicted.rst",
                category="Genomics",
                labels={"figure": "observed vs predicted"},
            ),
            pearson_plot=report(
                f"{RES}/genomics/report/pearson_per_track.png",
                caption="../report/pearson_per_track.rst",
                category="Genomics",
                labels={"figure": "Pearson per track"},
            ),
            cohort=f"{RES}/genomics/cohort.json",
        log:
            f"{LOGS}/genomics/infer.log",
        benchmark:
            f"{BENCH}/genomics/infer.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(120),
            gpu=1,
        params:
            subjects=GENOMICS_SUBJECTS,
            vcf_subjects=GENOMICS_VCF_SUBJECTS,
            genome_wide=config["genomics"]["infer"]["genome_wide"],
            variant_bins=config["genomics"]["infer"]["variant_bins"],
            batch_size=config["genomics"]["infer"]["batch_size"],
            device=config["genomics"]["train"]["device"],
        script:
            "../../scripts/genomics_infer.py"

    rule genomics_interpret:
        input:
            bundle=bundle_files(GENOMICS_BUNDLE),
            windows=f"{RES}/genomics/tile/windows.h5",
            fasta=get_reference,
        output:
            attributions=f"{RES}/genomics/interpret/attributions.h5",
            meme=f"{RES}/genomics/motifs/motifs.meme",
            motifs=f"{RES}/genomics/motifs/motifs.json",
            motif_logos=report(
                f"{RES}/genomics/report/motif_logos.png",
                caption="../report/motif_logos.rst",
                category="Genomics",
                labels={"figure": "discovered motifs"},
            ),
            attribution_logos=report(
                f"{RES}/genomics/report/attribution_logos.png",
                caption="../report/attribution_logos.rst",
                category="Genomics",
                labels={"figure": "attributions and ISM"},
            ),
        log:
            f"{LOGS}/genomics/interpret.log",
        benchmark:
            f"{BENCH}/genomics/interpret.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
            gpu=1,
        params:
            demo=DEMO and config["demo"]["genomics"],
            n_windows=config["genomics"]["interpret"]["n_windows"],
            center_bins=None,
            n_ism=config["genomics"]["interpret"]["ism_windows"],
            ism_width=config["genomics"]["interpret"]["ism_width"],
            batch_size=config["genomics"]["infer"]["batch_size"],
            device=config["genomics"]["train"]["device"],
            modisco={},
        script:
            "../../scripts/genomics_interpret.py"
