# Stage 5, infer: every subject of the cohort, back on its original grid; the cohort table.


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
