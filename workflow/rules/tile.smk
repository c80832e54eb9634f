# Stage 3, tile: per-subject foreground patch centres (patches are read from zarr in training).


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
