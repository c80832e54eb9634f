# Stage qc: per modality, a denoising autoencoder learns the training split's subjects; every
# subject gets a robust score of its reconstruction error, a flag, and its place in a map of
# latent codes (README, "Quality control"). The QC models are bundles: models.imaging_qc /
# models.genomics_qc score a new cohort without training.


if TRAIN_IMAGING_QC:

    rule imaging_qc_train:
        input:
            stores=expand(
                f"{RES}/imaging/normalise/{{subject}}.zarr", subject=IMAGING_QC_FIT
            ),
        output:
            bundle=bundle_outputs(IMAGING_QC_BUNDLE),
            metrics=f"{RES}/imaging/qc/train_metrics.tsv",
            out_of_fold=f"{RES}/imaging/qc/out_of_fold.npz",
        log:
            f"{LOGS}/imaging/qc_train.log",
        benchmark:
            f"{BENCH}/imaging/qc_train.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            subjects=IMAGING_QC_FIT,
            train=qc_split(IMAGING_SUBJECTS, "train"),
            val=qc_split(IMAGING_SUBJECTS, "val"),
            cfg=qc_cfg("imaging"),
            plan=get_imaging_plan(),
            seed=config["seed"],
            workdir=f"{RES}/imaging/qc/checkpoints",
        script:
            "../../scripts/imaging_qc_train.py"


if IMAGING_QC:

    rule imaging_qc:
        input:
            sheet=SHEET,
            bundle=bundle_files(IMAGING_QC_BUNDLE),
            out_of_fold=qc_out_of_fold("imaging"),
            stores=expand(
                f"{RES}/imaging/normalise/{{subject}}.zarr", subject=IMAGING_SUBJECTS
            ),
        output:
            table=f"{RES}/imaging/qc/qc.tsv",
            latent=f"{RES}/imaging/qc/latent.tsv",
            json=f"{RES}/imaging/qc/qc.json",
            errors=expand(
                f"{RES}/imaging/qc/{{subject}}_qc_error.nii.gz",
                subject=IMAGING_SUBJECTS,
            ),
            scores_png=report(
                f"{RES}/imaging/report/qc_scores.png",
                caption="../report/qc_scores.rst",
                category="Quality control",
            ),
            latent_png=report(
                f"{RES}/imaging/report/qc_latent.png",
                caption="../report/qc_latent.rst",
                category="Quality control",
            ),
            grid_png=report(
                f"{RES}/imaging/report/qc_reconstructions.png",
                caption="../report/qc_reconstructions.rst",
                category="Quality control",
            ),
        log:
            f"{LOGS}/imaging/qc.log",
        benchmark:
            f"{BENCH}/imaging/qc.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
        params:
            subjects=IMAGING_SUBJECTS,
            threshold=config["qc"]["threshold"],
            colour_by=config["qc"]["colour_by"],
            truth=QC_TRUTH if DEMO and config["demo"]["outliers"] else None,
        script:
            "../../scripts/imaging_qc.py"


if TRAIN_GENOMICS_QC:

    rule genomics_qc_train:
        input:
            coverage=expand(
                f"{RES}/genomics/coverage/{{subject}}.h5", subject=GENOMICS_QC_FIT
            ),
        output:
            bundle=bundle_outputs(GENOMICS_QC_BUNDLE),
            metrics=f"{RES}/genomics/qc/train_metrics.tsv",
            out_of_fold=f"{RES}/genomics/qc/out_of_fold.npz",
        log:
            f"{LOGS}/genomics/qc_train.log",
        benchmark:
            f"{BENCH}/genomics/qc_train.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(30),
        params:
            subjects=GENOMICS_QC_FIT,
            train=qc_split(GENOMICS_SUBJECTS, "train"),
            val=qc_split(GENOMICS_SUBJECTS, "val"),
            cfg=qc_cfg("genomics"),
            seed=config["seed"],
            workdir=f"{RES}/genomics/qc/checkpoints",
        script:
            "../../scripts/genomics_qc_train.py"


if GENOMICS_QC:

    rule genomics_qc:
        input:
            sheet=SHEET,
            bundle=bundle_files(GENOMICS_QC_BUNDLE),
            out_of_fold=qc_out_of_fold("genomics"),
            coverage=expand(
                f"{RES}/genomics/coverage/{{subject}}.h5", subject=GENOMICS_SUBJECTS
            ),
        output:
            table=f"{RES}/genomics/qc/qc.tsv",
            regions=f"{RES}/genomics/qc/qc_regions.tsv",
            latent=f"{RES}/genomics/qc/latent.tsv",
            json=f"{RES}/genomics/qc/qc.json",
            scores_png=report(
                f"{RES}/genomics/report/qc_scores.png",
                caption="../report/qc_scores.rst",
                category="Quality control",
            ),
            latent_png=report(
                f"{RES}/genomics/report/qc_latent.png",
                caption="../report/qc_latent.rst",
                category="Quality control",
            ),
            grid_png=report(
                f"{RES}/genomics/report/qc_profiles.png",
                caption="../report/qc_profiles.rst",
                category="Quality control",
            ),
        log:
            f"{LOGS}/genomics/qc.log",
        benchmark:
            f"{BENCH}/genomics/qc.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(20),
        params:
            subjects=GENOMICS_SUBJECTS,
            threshold=config["qc"]["threshold"],
            colour_by=config["qc"]["colour_by"],
            z_threshold=config["qc"]["genomics"]["z_threshold"],
            min_bins=config["qc"]["genomics"]["min_bins"],
            truth=QC_TRUTH if DEMO and config["demo"]["outliers"] else None,
        script:
            "../../scripts/genomics_qc.py"
