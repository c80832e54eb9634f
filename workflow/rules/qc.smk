# Stage qc: per modality, a denoising autoencoder learns the training split's subjects; every
# subject gets a robust score of its reconstruction error, a flag, and its place in a map of
# latent codes (docs/methods/qc.md). The QC models are bundles: models.imaging_qc /
# models.genomics_qc score a new cohort without training.


if IQC.train:

    rule imaging_qc_train:
        input:
            stores=L.each("imaging_store", IQC.fit_subjects),
            shared=IN.no_shared_content("imaging"),
        output:
            bundle=bundle_outputs(IQC.bundle),
            metrics=L("qc_train_metrics", modality="imaging"),
            out_of_fold=L("qc_out_of_fold", modality="imaging"),
        log:
            L.log("imaging/qc_train"),
        benchmark:
            L.bench("imaging/qc_train")
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            subjects=list(IQC.fit_subjects),
            train=list(PLAN.in_split(PLAN.imaging_subjects, "train")),
            val=list(PLAN.in_split(PLAN.imaging_subjects, "val")),
            cfg=IN.qc_config("imaging"),
            plan=PLAN.imaging_preprocessing,
            seed=config["seed"],
            workdir=L("qc_checkpoints", modality="imaging"),
        script:
            "../../scripts/imaging_qc_train.py"


if IQC.enabled:

    rule imaging_qc:
        input:
            sheet=L("sheet"),
            bundle=bundle_files(IQC.bundle),
            out_of_fold=IN.qc_out_of_fold("imaging"),
            stores=L.each("imaging_store", PLAN.imaging_subjects),
        output:
            table=L("qc_table", modality="imaging"),
            latent=L("qc_latent", modality="imaging"),
            json=L("qc_json", modality="imaging"),
            errors=L.each("qc_error_map", PLAN.imaging_subjects, modality="imaging"),
            scores_png=report(
                f"{L('imaging_report')}/qc_scores.png",
                caption="../report/qc_scores.rst",
                category="Quality control",
            ),
            latent_png=report(
                f"{L('imaging_report')}/qc_latent.png",
                caption="../report/qc_latent.rst",
                category="Quality control",
            ),
            grid_png=report(
                f"{L('imaging_report')}/qc_reconstructions.png",
                caption="../report/qc_reconstructions.rst",
                category="Quality control",
            ),
        log:
            L.log("imaging/qc"),
        benchmark:
            L.bench("imaging/qc")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
        params:
            subjects=list(PLAN.imaging_subjects),
            threshold=config["qc"]["threshold"],
            colour_by=config["qc"]["colour_by"],
            truth=PLAN.qc_truth,
        script:
            "../../scripts/imaging_qc.py"


if GQC.train:

    rule genomics_qc_train:
        input:
            coverage=L.each("genomics_coverage", GQC.fit_subjects),
            shared=IN.no_shared_content("genomics"),
        output:
            bundle=bundle_outputs(GQC.bundle),
            metrics=L("qc_train_metrics", modality="genomics"),
            out_of_fold=L("qc_out_of_fold", modality="genomics"),
        log:
            L.log("genomics/qc_train"),
        benchmark:
            L.bench("genomics/qc_train")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(30),
        params:
            subjects=list(GQC.fit_subjects),
            train=list(PLAN.in_split(PLAN.genomics_subjects, "train")),
            val=list(PLAN.in_split(PLAN.genomics_subjects, "val")),
            cfg=IN.qc_config("genomics"),
            seed=config["seed"],
            workdir=L("qc_checkpoints", modality="genomics"),
        script:
            "../../scripts/genomics_qc_train.py"


if GQC.enabled:

    rule genomics_qc:
        input:
            sheet=L("sheet"),
            bundle=bundle_files(GQC.bundle),
            out_of_fold=IN.qc_out_of_fold("genomics"),
            coverage=L.each("genomics_coverage", PLAN.genomics_subjects),
        output:
            table=L("qc_table", modality="genomics"),
            regions=L("qc_regions", modality="genomics"),
            latent=L("qc_latent", modality="genomics"),
            json=L("qc_json", modality="genomics"),
            scores_png=report(
                f"{L('genomics_report')}/qc_scores.png",
                caption="../report/qc_scores.rst",
                category="Quality control",
            ),
            latent_png=report(
                f"{L('genomics_report')}/qc_latent.png",
                caption="../report/qc_latent.rst",
                category="Quality control",
            ),
            grid_png=report(
                f"{L('genomics_report')}/qc_profiles.png",
                caption="../report/qc_profiles.rst",
                category="Quality control",
            ),
        log:
            L.log("genomics/qc"),
        benchmark:
            L.bench("genomics/qc")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(20),
        params:
            subjects=list(PLAN.genomics_subjects),
            threshold=config["qc"]["threshold"],
            colour_by=config["qc"]["colour_by"],
            z_threshold=config["qc"]["genomics"]["z_threshold"],
            min_bins=config["qc"]["genomics"]["min_bins"],
            truth=PLAN.qc_truth,
        script:
            "../../scripts/genomics_qc.py"
