# Stage 4, train: one model per task; writes a self-describing bundle under models/ (the
# subject classifier: one job per cross-validation fold, then the folds as one ensemble bundle).
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
            qc=qc_exclusion("imaging"),
        output:
            bundle=bundle_outputs(IMAGING_BUNDLE),
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


if TRAIN_CLASSIFY:

    rule imaging_classify_train:
        input:
            sheet=SHEET,
            stores=expand(
                f"{RES}/imaging/normalise/{{subject}}.zarr",
                subject=CLASSIFY_FIT_SUBJECTS,
            ),
            seg_probs=get_classify_fit_seg_probs,
            qc=qc_exclusion("imaging"),
        output:
            weights=f"{RES}/imaging/classify/fold{{fold}}/weights.safetensors",
            fold=f"{RES}/imaging/classify/fold{{fold}}/fold.json",
            oof=f"{RES}/imaging/classify/fold{{fold}}/oof.tsv",
            metrics=f"{RES}/imaging/classify/fold{{fold}}/metrics.tsv",
        log:
            f"{LOGS}/imaging/classify/train_fold{{fold}}.log",
        benchmark:
            f"{BENCH}/imaging/classify_train/fold{{fold}}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(120),
            gpu=CLASSIFY_CFG["train"]["gpus"],
        params:
            subjects=CLASSIFY_FIT_SUBJECTS,
            cfg=CLASSIFY_CFG,
            labels=config["imaging"]["labels"],
            seed=config["seed"],
        script:
            "../../scripts/imaging_classify_train.py"

    rule imaging_classify_bundle:
        input:
            folds=expand(
                f"{RES}/imaging/classify/fold{{fold}}/fold.json", fold=CLASSIFY_FOLDS
            ),
            weights=expand(
                f"{RES}/imaging/classify/fold{{fold}}/weights.safetensors",
                fold=CLASSIFY_FOLDS,
            ),
            stats=get_imaging_stats,
            samples=get_sample_sheet,
        output:
            bundle=bundle_outputs(CLASSIFY_BUNDLE),
        log:
            f"{LOGS}/imaging/classify/bundle.log",
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(10),
        params:
            cfg=CLASSIFY_CFG,
            plan=get_imaging_plan(),
            seed=config["seed"],
            cohort=COHORT,
        script:
            "../../scripts/imaging_classify_bundle.py"


if TRAIN_GENOMICS and not GENOMICS_COMPARE:

    rule genomics_train:
        input:
            windows=f"{RES}/genomics/tile/windows.h5",
            sheet=SHEET,
            qc=qc_exclusion("genomics"),
        output:
            bundle=bundle_files(GENOMICS_BUNDLE),
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
            arch=GENOMICS_ARCHS[0],
            workdir=f"{RES}/genomics/train/checkpoints",
            model=config["genomics"]["model"],
            train=config["genomics"]["train"],
            augment_shift=config["genomics"]["augment_shift"],
            seed=config["seed"],
            cohort=COHORT,
            cfg=config["genomics"],
        script:
            "../../scripts/genomics_train.py"


if TRAIN_GENOMICS and GENOMICS_COMPARE:

    # genomics.model.compare: one job per architecture, each into its own candidate bundle
    rule genomics_train:
        input:
            windows=f"{RES}/genomics/tile/windows.h5",
            sheet=SHEET,
            qc=qc_exclusion("genomics"),
        output:
            bundle=bundle_files(f"{GENOMICS_CANDIDATES}/{{arch}}/bundle"),
            metrics=f"{GENOMICS_CANDIDATES}/{{arch}}/metrics.tsv",
        log:
            f"{LOGS}/genomics/train/{{arch}}.log",
        benchmark:
            f"{BENCH}/genomics/train/{{arch}}.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(240),
            gpu=config["genomics"]["train"]["gpus"],
        params:
            arch="{arch}",
            workdir=f"{GENOMICS_CANDIDATES}/{{arch}}/checkpoints",
            model=config["genomics"]["model"],
            train=config["genomics"]["train"],
            augment_shift=config["genomics"]["augment_shift"],
            seed=config["seed"],
            cohort=COHORT,
            cfg=config["genomics"],
        script:
            "../../scripts/genomics_train.py"

    # the best candidate on validation becomes the cohort's bundle
    rule genomics_select:
        input:
            bundles=expand(
                f"{GENOMICS_CANDIDATES}/{{arch}}/bundle/bundle.json",
                arch=GENOMICS_ARCHS,
            ),
            weights=expand(
                f"{GENOMICS_CANDIDATES}/{{arch}}/bundle/weights.safetensors",
                arch=GENOMICS_ARCHS,
            ),
            metrics=expand(
                f"{GENOMICS_CANDIDATES}/{{arch}}/metrics.tsv", arch=GENOMICS_ARCHS
            ),
        output:
            bundle=bundle_files(GENOMICS_BUNDLE),
            metrics=f"{RES}/genomics/train/metrics.tsv",
            compare=f"{RES}/genomics/train/compare.json",
            table=f"{RES}/genomics/train/compare.tsv",
        log:
            f"{LOGS}/genomics/select.log",
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        params:
            archs=GENOMICS_ARCHS,
        script:
            "../../scripts/genomics_select.py"
