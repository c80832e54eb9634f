# Stage 4, train: one model per modality; writes a self-describing bundle under models/.
# Checkpoints live beside the metrics (not declared as outputs), so a rerun resumes.


if TRAIN_IMAGING:

    rule imaging_train:
        input:
            sheet=SHEET,
            samples=get_sample_sheet,
            stats=get_imaging_stats,
            stores=expand(
                f"{RES}/imaging/normalise/{{subject}}.zarr",
                subject=IMAGING_FIT_SUBJECTS,
            ),
            tiles=expand(
                f"{RES}/imaging/tile/{{subject}}.tsv", subject=IMAGING_FIT_SUBJECTS
            ),
        output:
            bundle=get_imaging_bundle_outputs(),
            metrics=f"{RES}/imaging/train/metrics.tsv",
        log:
            f"{LOGS}/imaging/train.log",
        benchmark:
            f"{BENCH}/imaging/train.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(240),
            gpu=config["imaging"]["train"]["gpus"],
        params:
            subjects=IMAGING_FIT_SUBJECTS,
            cfg=config["imaging"],
            seed=config["seed"],
            cohort=COHORT,
            workdir=f"{RES}/imaging/train/checkpoints",
        script:
            "../../scripts/imaging_train.py"


if TRAIN_GENOMICS:

    rule genomics_train:
        input:
            windows=f"{RES}/genomics/tile/windows.h5",
            sheet=SHEET,
        output:
            bundle=get_genomics_bundle_files(),
            metrics=f"{RES}/genomics/train/metrics.tsv",
        log:
            f"{LOGS}/genomics/train.log",
        benchmark:
            f"{BENCH}/genomics/train.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(240),
            gpu=config["genomics"]["train"]["gpus"],
        params:
            workdir=f"{RES}/genomics/train/checkpoints",
            model=config["genomics"]["model"],
            train=config["genomics"]["train"],
            augment_shift=config["genomics"]["augment_shift"],
            seed=config["seed"],
            cohort=COHORT,
            cfg=config["genomics"],
        script:
            "../../scripts/genomics_train.py"
