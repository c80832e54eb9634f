# Stage 2, normalise: imaging intensity statistics (training split, or the applied bundle's) and
# the per-subject resampled, normalised zarr store; genomics filtered, binned, normalised coverage.


rule imaging_stats:
    input:
        samples=L.each("imaging_fg", PLAN.stats_subjects),
    output:
        stats=L("imaging_stats"),
    log:
        L.log("imaging/normalise/intensity_stats"),
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(10),
    params:
        subjects=list(PLAN.stats_subjects),
        scheme=config["imaging"]["normalisation"],
    script:
        "../../scripts/imaging_stats.py"


rule imaging_normalise:
    input:
        meta=L("imaging_ingest"),
        stats=IN.imaging_stats,
    output:
        store=directory(L("imaging_store")),
    log:
        L.log("imaging/normalise/{subject}"),
    benchmark:
        L.bench("imaging/normalise/{subject}")
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    params:
        plan=PLAN.imaging_preprocessing,
        max_voxels=config["imaging"]["max_voxels"],
    script:
        "../../scripts/imaging_normalise.py"


if PLAN.genomics:

    rule genomics_coverage:
        input:
            bam=IN.bam,
            fasta=IN.reference,
            report=L("genomics_ingest"),
            blacklist=list(PLAN.blacklist),
        output:
            coverage=L("genomics_coverage"),
        log:
            L.log("genomics/coverage/{subject}"),
        benchmark:
            L.bench("genomics/coverage/{subject}")
        conda:
            "../../envs/genomics.yaml"
        threads: 2
        resources:
            # 400 MB + ~40 bytes per bin of the genome, whatever the depth or contig length
            # (a 3.1 Gb genome at bin_size 32: 4.3 GB); see voxseq.plan.build.coverage_mem_mb
            mem_mb=per_attempt(PLAN.coverage_mem_mb),
            runtime=per_attempt(120),
        params:
            bin_size=config["genomics"]["bin_size"],
            min_mapq=config["genomics"]["min_mapq"],
            exclude_flags=config["genomics"]["exclude_flags"],
            normalisation=config["genomics"]["normalisation"],
            count_deletions=config["genomics"]["count_deletions"],
        script:
            "../../scripts/genomics_coverage.py"
