# Missing sequences: a subject whose sheet leaves an image_<name> cell empty is ingested and
# normalised with the channels it has; its store is then completed with the channel synthesised
# from them (a conditional GAN trained here on the complete subjects, or an applied bundle), and
# inference, the classifier and QC read the completed store. The methods are scored on the test
# subjects that have the channel (hidden from them): BraSyn scores, then segmentation Dice.
from voxseq.plan.synthesis import synthesis_settings

SYN = PLAN.task("synthesis")
SYN_SET = synthesis_settings(PLAN)


if SYN.train:

    # the GAN and the L1-only generator; the GAN is kept unless it validates worse
    rule synthesis_train:
        input:
            samples=IN.sample_sheet,
            stores=L.each("imaging_store", [*SYN.fit_subjects, *SYN_SET["scored"]]),
            tiles=L.each("imaging_tiles", SYN.fit_subjects),
            shared=IN.no_shared_content("imaging"),
        output:
            bundle=bundle_outputs(SYN.bundle),
            history=L("synthesis_train_metrics"),
            metrics=L("synthesis_metrics"),
            table=L("synthesis_metrics_table"),
            volumes=directory(L("synthesis_volumes")),
        log:
            L.log("imaging/synthesis/train"),
        benchmark:
            L.bench("imaging/synthesis/train")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(6000),
            runtime=per_attempt(120),
            gpu=SYN.gpus,
        params:
            fit_subjects=list(SYN.fit_subjects),
            scored=SYN_SET["scored"],
            split={s: PLAN.split[s] for s in [*SYN.fit_subjects, *SYN_SET["scored"]]},
            target=SYN_SET["target"],
            cfg=SYN_SET["cfg"],
            seed=config["seed"],
            cohort=COHORT,
            workdir=L("synthesis_checkpoints"),
        script:
            "../../scripts/synthesis_train.py"


if SYN.apply:

    # an applied bundle: scored on the subjects that have its channel, no training
    rule synthesis_score:
        input:
            bundle=bundle_files(SYN.bundle),
            stores=L.each("imaging_store", SYN_SET["scored"]),
        output:
            metrics=L("synthesis_metrics"),
            table=L("synthesis_metrics_table"),
            volumes=directory(L("synthesis_volumes")),
        log:
            L.log("imaging/synthesis/score"),
        benchmark:
            L.bench("imaging/synthesis/score")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
        params:
            scored=SYN_SET["scored"],
            cfg=SYN_SET["cfg"],
        script:
            "../../scripts/synthesis_score.py"


if SYN.enabled:

    rule synthesis_apply:
        input:
            store=L("imaging_store"),
            bundle=bundle_files(SYN.bundle),
        output:
            store=directory(L("synthesis_store")),
            nifti=L("synthesis_nifti", channel=SYN_SET["target"]),
            record=L("synthesis_record"),
        log:
            L.log("imaging/synthesis/{subject}"),
        benchmark:
            L.bench("imaging/synthesis/{subject}")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(20),
        params:
            device=config["imaging"]["synthesis"]["train"]["device"],
        script:
            "../../scripts/synthesis_apply.py"


if SYN_SET["dice"]:

    # segmentation with each method's channel in place, on the scored test subjects
    rule synthesis_dice:
        input:
            bundle=bundle_files(SEG.bundle),
            stores=L.each("imaging_store", SYN_SET["dice"]),
            volumes=L("synthesis_volumes"),
        output:
            dice=L("synthesis_dice"),
            table=L("synthesis_dice_table"),
        log:
            L.log("imaging/synthesis/dice"),
        benchmark:
            L.bench("imaging/synthesis/dice")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(6000),
            runtime=per_attempt(30),
        params:
            subjects=SYN_SET["dice"],
            target=SYN_SET["target"],
            labels=config["imaging"]["labels"],
            device=config["imaging"]["train"]["device"],
        script:
            "../../scripts/synthesis_dice.py"


if SYN_SET["scored"]:

    rule synthesis_report:
        input:
            metrics=L("synthesis_metrics"),
            stores=L.each("imaging_store", SYN_SET["scored"][:4]),
            volumes=L("synthesis_volumes"),
            history=[L("synthesis_train_metrics")] if SYN.train else [],
        output:
            **(
                {
                    "curves": report(
                        f"{L('imaging_report')}/synthesis_curves.png",
                        caption="../report/synthesis_curves.rst",
                        category="Imaging synthesis",
                        labels={"figure": "training curves"},
                    )
                }
                if SYN.train
                else {}
            ),
            grid=report(
                f"{L('imaging_report')}/synthesis_grid.png",
                caption="../report/synthesis_grid.rst",
                category="Imaging synthesis",
                labels={"figure": "test subjects"},
            ),
        log:
            L.log("imaging/synthesis/report"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(10),
        params:
            subjects=SYN_SET["scored"][:4],
            target=SYN_SET["target"],
        script:
            "../../scripts/synthesis_report.py"
