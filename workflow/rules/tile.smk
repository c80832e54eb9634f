# Stage 3, tile: imaging foreground patch centres per subject (patches are read from zarr in
# training); genomics windows over the genome (one-hot + per-bin targets, split by contig; the
# val / test contigs are checked, or chosen when null, against the reference's contigs).


rule imaging_tile:
    input:
        store=f"{RES}/imaging/normalise/{{subject}}.zarr",
    output:
        centres=f"{RES}/imaging/tile/{{subject}}.tsv",
    log:
        f"{LOGS}/imaging/tile/{{subject}}.log",
    benchmark:
        f"{BENCH}/imaging/tile/{{subject}}.tsv"
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


if GENOMICS:

    rule genomics_tile:
        input:
            fasta=get_reference,
            coverage=expand(
                f"{RES}/genomics/coverage/{{subject}}.h5", subject=GENOMICS_SUBJECTS
            ),
        output:
            windows=f"{RES}/genomics/tile/windows.h5",
            table=f"{RES}/genomics/tile/windows.tsv",
        log:
            f"{LOGS}/genomics/tile.log",
        benchmark:
            f"{BENCH}/genomics/tile.tsv"
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            # a block of the genome at a time (voxseq.genomics.windows): bounded, any genome
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            subjects=GENOMICS_SUBJECTS,
            window=config["genomics"]["window"],
            stride=config["genomics"]["stride"],
            max_n_fraction=config["genomics"]["max_n_fraction"],
            val_contigs=config["genomics"]["val_contigs"],
            test_contigs=config["genomics"]["test_contigs"],
            soft_clip=config["genomics"]["soft_clip"],
        script:
            "../../scripts/genomics_tile.py"
