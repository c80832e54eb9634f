# Stage 2, normalise: imaging intensity statistics (training split, or the applied bundle's) and
# the per-subject resampled, normalised zarr store; genomics filtered, binned, normalised coverage.


rule imaging_stats:
    input:
        samples=expand(
            f"{RES}/imaging/ingest/{{subject}}.fg.npy", subject=IMAGING_STATS_SUBJECTS
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
        subjects=IMAGING_STATS_SUBJECTS,
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


if GENOMICS:

    rule genomics_coverage:
        input:
            bam=get_bam,
            fasta=get_reference,
            report=f"{RES}/genomics/ingest/{{subject}}.json",
            blacklist=GENOMICS_BLACKLIST,
        output:
            coverage=f"{RES}/genomics/coverage/{{subject}}.h5",
        log:
            f"{LOGS}/genomics/coverage/{{subject}}.log",
        benchmark:
            f"{BENCH}/genomics/coverage/{{subject}}.tsv"
        conda:
            "../../envs/genomics.yaml"
        threads: 2
        resources:
            # 400 MB + ~40 bytes per bin of the genome, whatever the depth or contig length
            # (a 3.1 Gb genome at bin_size 32: 4.3 GB); see coverage_mem_mb in common.smk
            mem_mb=per_attempt(GENOMICS_COVERAGE_MEM_MB),
            runtime=per_attempt(120),
        params:
            bin_size=config["genomics"]["bin_size"],
            min_mapq=config["genomics"]["min_mapq"],
            exclude_flags=config["genomics"]["exclude_flags"],
            normalisation=config["genomics"]["normalisation"],
            count_deletions=config["genomics"]["count_deletions"],
        script:
            "../../scripts/genomics_coverage.py"
