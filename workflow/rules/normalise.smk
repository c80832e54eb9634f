# Stage 2, normalise: intensity statistics (training split, or the applied bundle's) and the
# per-subject resampled, normalised zarr store.


rule imaging_stats:
    input:
        sheet=SHEET,
        samples=expand(f"{RES}/imaging/ingest/{{subject}}.fg.npy", subject=IMAGING_SUBJECTS),
        bundle=get_imaging_stats_bundle(),
    output:
        stats=f"{RES}/imaging/normalise/intensity_stats.json",
    log:
        f"{LOGS}/imaging/normalise/intensity_stats.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/imaging.yaml"
    params:
        subjects=IMAGING_SUBJECTS,
        scheme=config["imaging"]["normalisation"],
        bundle=config["models"]["imaging"],
    script:
        "../../scripts/imaging_stats.py"


rule imaging_normalise:
    input:
        meta=f"{RES}/imaging/ingest/{{subject}}.json",
        stats=f"{RES}/imaging/normalise/intensity_stats.json",
    output:
        store=directory(f"{RES}/imaging/normalise/{{subject}}.zarr"),
    log:
        f"{LOGS}/imaging/normalise/{{subject}}.log",
    benchmark:
        f"{BENCH}/imaging/normalise/{{subject}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    group:
        "imaging_prepare"
    conda:
        "../../envs/imaging.yaml"
    params:
        target_spacing=config["imaging"]["target_spacing"],
        interpolation=config["imaging"]["interpolation"],
        n_labels=len(config["imaging"]["labels"]),
        max_voxels=config["imaging"]["max_voxels"],
    script:
        "../../scripts/imaging_normalise.py"
