# Subject model: one prediction per subject of a sheet column (subject_model.target) from
# imaging (the classifier's out-of-fold probabilities), genomics (a vector from coverage over
# regions and the QC latent code) and both fused, cross-validated on the classifier's folds and
# judged on the same subjects (paired bootstrap); the fused model as a bundle, applied to a new
# cohort without training. One training job for all folds: its models are logistic regressions
# and a 16-unit MLP on a few dozen numbers per subject, seconds for all folds together, so a job
# per fold would spend more on starting Python and torch than on fitting.

SM = PLAN.task("subject_model")


if SM.enabled:

    rule subject_model_features:
        input:
            **IN.subject_features(),
        output:
            table=L("subject_features"),
        log:
            L.log("subject_model/features"),
        benchmark:
            L.bench("subject_model/features")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(20),
        params:
            subjects=list(PLAN.genomics_subjects),
            recipe=PLAN.subject_model.recipe,
            demo_small=config["demo"]["small"],
        script:
            "../../scripts/subject_model_features.py"


if SM.train:

    rule subject_model_train:
        input:
            **IN.subject_model(),
        output:
            predictions=L("subject_predictions"),
            metrics=L("subject_metrics"),
            roc=report(
                L("subject_roc"),
                caption="../report/subject_model_roc.rst",
                category="Subject model",
                labels={"figure": "ROC curves of the four models"},
            ),
            bundle=bundle_outputs(SM.bundle, torchscript=False),
        log:
            L.log("subject_model/train"),
        benchmark:
            L.bench("subject_model/train")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(30),
        params:
            target=PLAN.subject_model.target,
            recipe=PLAN.subject_model.recipe,
            fit=dict(PLAN.subject_model.fit),
            bootstrap=PLAN.subject_model.bootstrap,
            folds=len(SM.folds),
            imaging_subjects=list(PLAN.imaging_subjects),
            input_size=config["imaging"]["classify"]["input_size"],
            crop=config["imaging"]["classify"]["crop"],
            seed=config["seed"],
            cohort=COHORT,
        script:
            "../../scripts/subject_model_train.py"


if SM.apply:

    rule subject_model_apply:
        input:
            **IN.subject_model(),
        output:
            predictions=L("subject_predictions"),
        log:
            L.log("subject_model/apply"),
        benchmark:
            L.bench("subject_model/apply")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(20),
        params:
            imaging_subjects=list(PLAN.imaging_subjects),
        script:
            "../../scripts/subject_model_apply.py"
