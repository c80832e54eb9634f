# Stage 5, infer: every subject of the cohort (imaging: back on its original grid, then the cohort
# table; genomics: predicted tracks, held-out-contig metrics, variant effects).


rule imaging_infer:
    input:
        store=f"{RES}/imaging/normalise/{{subject}}.zarr",
        bundle=get_imaging_bundle_files(),
        label=get_label,
    output:
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


rule imaging_cohort:
    input:
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
            bundle=get_genomics_bundle_files(),
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
