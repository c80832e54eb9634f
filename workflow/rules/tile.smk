# Stage 3, tile: imaging foreground patch centres per subject (patches are read from zarr in
# training); genomics windows over the genome (one-hot + per-bin targets, split by contig; the
# val / test contigs are checked, or chosen when null, against the reference's contigs).


rule imaging_tile:
    input:
        store=L("imaging_store"),
    output:
        centres=L("imaging_tiles"),
    log:
        L.log("imaging/tile/{subject}"),
    benchmark:
        L.bench("imaging/tile/{subject}")
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    params:
        n_labels=len(config["imaging"]["labels"]),
        per_class=config["imaging"]["centres_per_class"],
        seed=config["seed"],
    script:
        "../../scripts/imaging_tile.py"


if PLAN.genomics:

    rule genomics_tile:
        input:
            fasta=IN.reference,
            coverage=L.each("genomics_coverage", PLAN.genomics_subjects),
        output:
            windows=L("genomics_windows"),
            table=L("genomics_window_table"),
        log:
            L.log("genomics/tile"),
        benchmark:
            L.bench("genomics/tile")
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            # a block of the genome at a time (voxseq.genomics.windows): bounded, any genome
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            subjects=list(PLAN.genomics_subjects),
            window=config["genomics"]["window"],
            stride=config["genomics"]["stride"],
            max_n_fraction=config["genomics"]["max_n_fraction"],
            val_contigs=config["genomics"]["val_contigs"],
            test_contigs=config["genomics"]["test_contigs"],
            soft_clip=config["genomics"]["soft_clip"],
        script:
            "../../scripts/genomics_tile.py"
