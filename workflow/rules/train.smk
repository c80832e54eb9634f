# Stage 4, train: one model per task; writes a self-describing bundle under models/ (the
# subject classifier: one job per cross-validation fold, then the folds as one ensemble bundle).
# Checkpoints live beside the metrics (not declared as outputs), so a rerun resumes.


if SEG.train:

    rule imaging_train:
        input:
            sheet=L("sheet"),
            samples=IN.sample_sheet,
            stats=IN.imaging_stats,
            stores=L.each("imaging_store", SEG.fit_subjects),
            tiles=L.each("imaging_tiles", SEG.fit_subjects),
            qc=IN.qc_exclusion("imaging"),
            shared=IN.no_shared_content("imaging"),
        output:
            bundle=bundle_outputs(SEG.bundle),
            metrics=L("imaging_train_metrics"),
        log:
            L.log("imaging/train"),
        benchmark:
            L.bench("imaging/train")
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(240),
            gpu=SEG.gpus,
        params:
            subjects=list(SEG.fit_subjects),
            cfg=config["imaging"],
            seed=config["seed"],
            cohort=COHORT,
            workdir=L("imaging_checkpoints"),
        script:
            "../../scripts/imaging_train.py"


if CLS.train:

    rule imaging_classify_train:
        input:
            sheet=L("sheet"),
            stores=L.each("imaging_store", CLS.fit_subjects),
            seg_probs=IN.classify_fit_seg_probs,
            qc=IN.qc_exclusion("imaging"),
            shared=IN.no_shared_content("imaging"),
        output:
            weights=L("classify_weights"),
            fold=L("classify_fold"),
            oof=L("classify_oof"),
            metrics=L("classify_fold_metrics"),
        log:
            L.log("imaging/classify/train_fold{fold}"),
        benchmark:
            L.bench("imaging/classify_train/fold{fold}")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(120),
            gpu=CLS.gpus,
        params:
            subjects=list(CLS.fit_subjects),
            cfg=config["imaging"]["classify"],
            labels=config["imaging"]["labels"],
            seed=config["seed"],
        script:
            "../../scripts/imaging_classify_train.py"

    rule imaging_classify_bundle:
        input:
            folds=[L("classify_fold", fold=k) for k in CLS.folds],
            weights=[L("classify_weights", fold=k) for k in CLS.folds],
            stats=IN.imaging_stats,
            samples=IN.sample_sheet,
        output:
            bundle=bundle_outputs(CLS.bundle),
        log:
            L.log("imaging/classify/bundle"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(10),
        params:
            cfg=config["imaging"]["classify"],
            plan=PLAN.imaging_preprocessing,
            seed=config["seed"],
            cohort=COHORT,
        script:
            "../../scripts/imaging_classify_bundle.py"


if SEQ.train:

    # one job into the cohort's bundle, or (genomics.model.compare) one per architecture into a
    # candidate bundle, the best of which genomics_select copies to the cohort's bundle
    rule genomics_train:
        input:
            windows=L("genomics_windows"),
            sheet=L("sheet"),
            qc=IN.qc_exclusion("genomics"),
            shared=IN.no_shared_content("genomics"),
        output:
            bundle=bundle_outputs(SEQ_TRAIN["bundle"], torchscript=False),
            metrics=SEQ_TRAIN["metrics"],
        log:
            L.log(SEQ_TRAIN["step"]),
        benchmark:
            L.bench(SEQ_TRAIN["step"])
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(240),
            gpu=SEQ.gpus,
        params:
            arch=SEQ_TRAIN["arch"],
            workdir=SEQ_TRAIN["workdir"],
            model=config["genomics"]["model"],
            train=config["genomics"]["train"],
            augment_shift=config["genomics"]["augment_shift"],
            seed=config["seed"],
            cohort=COHORT,
            cfg=config["genomics"],
        script:
            "../../scripts/genomics_train.py"


if SEQ.train and len(SEQ.archs) > 1:

    # the best candidate on validation becomes the cohort's bundle
    rule genomics_select:
        input:
            bundles=[
                f"{L('genomics_candidate_bundle', arch=a)}/bundle.json"
                for a in SEQ.archs
            ],
            weights=[
                f"{L('genomics_candidate_bundle', arch=a)}/weights.safetensors"
                for a in SEQ.archs
            ],
            metrics=[L("genomics_candidate_metrics", arch=a) for a in SEQ.archs],
        output:
            bundle=bundle_outputs(SEQ.bundle, torchscript=False),
            metrics=L("genomics_train_metrics"),
            compare=L("genomics_compare"),
            table=L("genomics_compare_table"),
        log:
            L.log("genomics/select"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(10),
        params:
            archs=list(SEQ.archs),
        script:
            "../../scripts/genomics_select.py"
