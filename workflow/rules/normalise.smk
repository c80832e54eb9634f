# Stage 2, normalise: intensity statistics (training split, or the applied bundle's) and the
# per-subject resampled, normalised zarr store.


rule imaging_stats:
    input:
        sheet=SHEET,
        samples=expand(
            f"{RES}/imaging/ingest/{{subject}}.fg.npy", subject=IMAGING_SUBJECTS
        ),
    output:
        stats=f"{RES}/imaging/normalise/intensity_stats.json",
    log:
        f"{LOGS}/imaging/normalise/intensity_stats.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(10),
    params:
        subjects=IMAGING_SUBJECTS,
        scheme=config["imaging"]["normalisation"],
    script:
        "../../scripts/imaging_stats.py"


rule imaging_normalise:
    input:
        meta=f"{RES}/imaging/ingest/{{subject}}.json",
        stats=get_imaging_stats,
    output:
        store=directory(f"{RES}/imaging/normalise/{{subject}}.zarr"),
    log:
        f"{LOGS}/imaging/normalise/{{subject}}.log",
    benchmark:
        f"{BENCH}/imaging/normalise/{{subject}}.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    params:
        plan=get_imaging_plan(),
        max_voxels=config["imaging"]["max_voxels"],
    script:
        "../../scripts/imaging_normalise.py"
