"""Build the run plan: every decision the workflow makes before any job, made once, here.

:func:`build_plan` reads the config and the sample sheet (or the demo's planned rows), checks them
(raising :class:`voxseq.VoxseqError` naming the key, subject, file and problem), and returns a
frozen :class:`~voxseq.plan.model.RunPlan`. ``workflow/rules/common.smk`` only looks things up in
it. Kept free of torch: bundles are read as JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from voxseq import VoxseqError
from voxseq.config import check_config, validate_config
from voxseq.plan.bundles import (
    applied_bundles,
    bundle_overrides,
    imaging_preprocessing,
    read_bundle,
)
from voxseq.plan.genomics import genomics_inputs
from voxseq.plan.inputs import (
    at_workdir,
    dag_splits,
    demo_gaps,
    demo_ids,
    load_subjects,
    resolve_inputs,
)
from voxseq.plan.layout import BUNDLE_FOLDERS, Layout
from voxseq.plan.model import RunPlan, TaskPlan

SCHEMAS = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


# ---- the plan's parts --------------------------------------------------------------------------
def imaging_inputs(
    config: dict, subjects: Mapping[str, Mapping[str, str]], seg_meta: dict | None, workdir: Path
) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """The sheet's image_<name> columns, the cohort's channel names (equal to an applied
    segmentation bundle's), and the cells that name a DICOM series folder (converted before
    ingest)."""
    from voxseq.imaging.channels import check_bundle_channels, cohort_channels
    from voxseq.io.sheet import channel_columns as sheet_channel_columns

    columns = sheet_channel_columns(next(iter(subjects.values()))) if subjects else []
    channels = cohort_channels(columns, config["imaging"]["channels"])
    dicom = {
        (s, c): r[c]
        for s, r in subjects.items()
        for c in ("image", *columns)
        if r.get(c) and at_workdir(workdir, r[c]).is_dir()
    }
    if seg_meta:
        check_bundle_channels(
            seg_meta["preprocessing"].get("channels"),
            channels,
            f"models.imaging {config['models']['imaging']}",
            columns,
        )
    return columns, channels, dicom


def classifier_enabled(
    config: dict, subjects: Mapping[str, Mapping[str, str]], cls_meta: dict | None, sheet: str
) -> bool:
    """imaging.classify.enabled: auto is on when the sheet has a class column (the demo's always
    has) or a classifier bundle is applied; true without either is refused."""
    setting = config["imaging"]["classify"]["enabled"]
    if setting is False:
        return False
    has_class = (config["demo"]["enabled"] and config["demo"]["imaging"]) or any(
        r.get("class") for r in subjects.values() if r["image"]
    )
    if setting is True and not has_class and not cls_meta:
        raise VoxseqError(
            f"imaging.classify.enabled is true but the sample sheet {sheet} has "
            "no class column (or no imaging subject with a class)"
        )
    return bool(config["models"]["imaging_classify"]) or bool(has_class)


# ---- the plan -------------------------------------------------------------------------------
def build_plan(
    config: Mapping, workdir: str | Path = ".", schema_dir: str | Path = SCHEMAS
) -> RunPlan:
    """Check ``config`` and its inputs and decide what this run does.

    Parameters
    ----------
    config
        The loaded config (the default ``config/config.yaml`` updated with any ``--configfile``);
        not modified.
    workdir
        The working directory the workflow runs in: relative paths of the config (sample sheet,
        reference, bundles) are resolved against it.
    schema_dir
        The folder of the config's JSON schemas.

    Returns
    -------
    RunPlan
        Frozen; ``RunPlan.to_dict()`` is what ``plan.json`` holds.

    Raises
    ------
    VoxseqError
        For the first problem found, naming the key, subject, file and problem.
    """
    config = copy.deepcopy(dict(config))
    workdir = Path(workdir)
    validate_config(config, schema_dir)
    check_config(config)
    layout = Layout(config["cohort"])
    sheet, reference = resolve_inputs(config, layout, workdir)
    if config["demo"]["enabled"]:  # the rules read the demo's sheet and reference as any other
        config["samples"] = sheet
        config["genomics"]["reference"] = layout("demo_reference")
    demo = config["demo"]["enabled"]
    imaging, genomics = config["imaging"]["enabled"], config["genomics"]["enabled"]
    subjects = load_subjects(config, layout, sheet, workdir)
    sheet_desc = sheet  # how the sheet is named in messages

    seg_meta, seq_meta, cls_meta = applied_bundles(config, workdir)
    cls_cfg = config["imaging"]["classify"]

    channel_columns, channels, dicom = (
        imaging_inputs(config, subjects, seg_meta, workdir) if imaging else ([], [], {})
    )

    classify = classifier_enabled(config, subjects, cls_meta, sheet_desc) if imaging else False
    synth_on = imaging and config["imaging"]["synthesis"]["enabled"] is not False
    syn_meta = read_bundle(config, "imaging_synthesis", "synthesis", workdir) if synth_on else None

    train_seg = imaging and not config["models"]["imaging"]
    train_seq = genomics and not config["models"]["genomics"]
    train_cls = classify and not cls_meta
    from voxseq.genomics.archs import genomics_archs

    archs = genomics_archs(config["genomics"].get("model") or {}) if train_seq else []
    imaging_subjects = sorted(s for s, r in subjects.items() if imaging and r["image"])
    from voxseq.plan.synthesis import missing_channels, plan_synthesis

    # synthesis trains here when a channel is missing and no bundle is applied (checked below)
    syn_train = synth_on and not syn_meta and bool(
        missing_channels(subjects, imaging_subjects, channel_columns, channels))
    inference_only = not (train_seg or train_seq or train_cls or syn_train)

    genomics_subjects = sorted(s for s, r in subjects.items() if genomics and r["bam"])
    if imaging and not imaging_subjects:
        raise VoxseqError(f"imaging.enabled but no subject in {sheet_desc} has an image")
    if genomics and not genomics_subjects:
        raise VoxseqError(f"genomics.enabled but no subject in {sheet_desc} has a bam")

    lengths, cov_mem, truth = (
        genomics_inputs(config, layout, reference, workdir) if genomics else (None, None, None)
    )

    # splits: every subject without one in the sheet is assigned from the seed
    fractions = (
        {"train": 0.0, "val": 0.0, "test": 1.0} if inference_only else dict(config["splits"])
    )
    split = dag_splits(subjects, config["seed"], fractions)

    def in_splits(pool, *names):
        return tuple(s for s in pool if split[s] in names)

    missing, synth_target = (
        plan_synthesis(
            config, subjects, imaging_subjects, channel_columns, channels, split, syn_meta,
            sheet_desc,
        )
        if imaging
        else ({}, None)
    )
    complete = [s for s in imaging_subjects if s not in missing]  # segmentation trains on these
    imaging_fit = in_splits(complete, "train", "val")
    stats_subjects = (
        in_splits(complete, "train")
        if config["imaging"]["normalisation"] == "ct" and imaging
        else ()
    )
    cls_fit = (  # every subject: an incomplete one's store is completed by synthesis
        tuple(
            s for s in in_splits(imaging_subjects, "train", "val")
            if subjects[s].get("class", "demo")
        )
        if train_cls
        else ()
    )
    preprocessing = imaging_preprocessing(config, seg_meta, channels) if imaging else {}

    # classifier input channels: the applied bundle's, else the image channels and, with
    # with_segmentation, one per foreground label
    cls_channels: list[str] = []
    if classify:
        from voxseq.imaging.classify import channel_names

        if cls_meta:
            cls_channels = list(cls_meta["preprocessing"]["channels"])
        else:
            cls_channels = channel_names(cls_cfg, config["imaging"]["labels"], channels)
        check_classifier(
            config, subjects, imaging_subjects, cls_fit, cls_meta, channels, preprocessing,
            train_cls and not demo, sheet_desc,
        )

    # quality control
    qc = config["qc"]
    train_gqc = qc["enabled"] and genomics and not config["models"]["genomics_qc"]
    if train_gqc and qc["genomics"]["bin_size"] % config["genomics"]["bin_size"]:
        raise VoxseqError(
            f"qc.genomics.bin_size {qc['genomics']['bin_size']} must be a multiple of "
            f"genomics.bin_size {config['genomics']['bin_size']} (the coverage bins it sums)"
        )

    from voxseq.plan.genetics import plan_genetics

    vcf_subjects = tuple(s for s in genomics_subjects if subjects[s]["vcf"])
    genetics = plan_genetics(
        config, subjects, imaging_subjects, vcf_subjects, channels,
        qc["enabled"] and imaging, qc["enabled"] and genomics, sheet_desc,
    )
    if genetics.cohort_vcf and not at_workdir(workdir, genetics.cohort_vcf).is_file():
        raise VoxseqError(
            f"config genetics.cohort_vcf: {genetics.cohort_vcf}: file not found (a relative path "
            f"is resolved against the working directory {workdir.resolve()})"
        )

    from voxseq.plan.subject_model import plan_subject_model

    sm_meta = (read_bundle(config, "subject_model", "subject", workdir)
               if config["subject_model"]["enabled"] is not False else None)
    subject_model = plan_subject_model(
        config, subjects, classify, genomics_subjects, qc["enabled"] and genomics, sm_meta,
        cls_meta["preprocessing"]["classes"] if cls_meta else None, workdir, sheet_desc,
    )
    tasks = task_plans(
        config, layout, split, imaging_subjects, genomics_subjects,
        metas={"segmentation": seg_meta, "classifier": cls_meta, "sequence_model": seq_meta,
               "synthesis": syn_meta, "subject_model": sm_meta},
        enabled={"segmentation": imaging, "classifier": classify, "sequence_model": genomics,
                 "synthesis": synth_target is not None,
                 "subject_model": subject_model.enabled},
        fit={"segmentation": imaging_fit, "classifier": cls_fit,
             # labelled: foreground-centred patches, lesion scores on validation
             "synthesis": tuple(s for s in imaging_fit if subjects[s]["label"])},
        synthesis_target=synth_target,
        archs=archs, classifier_channels=cls_channels,
    )
    return RunPlan(
        config=config,
        layout=layout,
        workdir=str(workdir),
        demo=demo,
        samples=sheet,
        reference=reference,
        imaging=imaging,
        genomics=genomics,
        subjects=subjects,
        split=split,
        split_fractions=fractions,
        imaging_subjects=tuple(imaging_subjects),
        genomics_subjects=tuple(genomics_subjects),
        vcf_subjects=vcf_subjects,
        channel_columns=tuple(channel_columns),
        channels=tuple(channels),
        imaging_preprocessing=preprocessing,
        stats_subjects=stats_subjects,
        contig_lengths=lengths,
        coverage_mem_mb=cov_mem,
        variant_truth=truth,
        blacklist=tuple(config["genomics"].get("blacklist") or []) if genomics else (),
        qc_truth=layout("qc_truth") if demo and config["demo"]["outliers"] else None,
        tasks=tasks,
        dicom=dicom,
        missing_channels=missing,
        demo_subjects=tuple(demo_ids(config)[0]) if demo else (),
        demo_gaps=(
            demo_gaps(config, demo_ids(config)[0])
            if demo and config["demo"]["imaging"]
            else ({}, [])
        ),
        notes=tuple(bundle_overrides(config, seg_meta))
        + (genetics.notes if genetics.enabled else ())
        + (subject_model.notes if subject_model.enabled else ()),
        genetics=genetics,
        subject_model=subject_model,
    )


def task_plans(
    config: dict,
    layout: Layout,
    split: Mapping[str, str],
    imaging_subjects: list[str],
    genomics_subjects: list[str],
    metas: Mapping[str, dict | None],
    enabled: Mapping[str, bool],
    fit: Mapping[str, tuple[str, ...]],
    archs: list[str],
    classifier_channels: list[str],
    synthesis_target: str | None = None,
) -> dict[str, TaskPlan]:
    """One :class:`TaskPlan` per task: on or off, trained here (no bundle applied) or applied,
    the subjects it fits on, folds, candidate architectures, input channels, GPUs."""
    qc, cls_cfg = config["qc"], config["imaging"]["classify"]

    def train_then_val(pool):  # the QC autoencoders learn train, then val, in that order
        return tuple(s for s in pool if split[s] == "train") + tuple(
            s for s in pool if split[s] == "val")

    def task(name, modality, on, meta, subjects=(), **extra):
        key = BUNDLE_FOLDERS[name][0]
        train = bool(on) and not config["models"][key]
        return TaskPlan(
            name=name, modality=modality, enabled=bool(on), train=train,
            bundle=config["models"][key] or layout.bundle(name), bundle_key=f"models.{key}",
            applied=meta, fit_subjects=tuple(subjects) if train else (), **extra,
        )

    train_cls = enabled["classifier"] and not metas["classifier"]
    return {
        "segmentation": task(
            "segmentation", "imaging", enabled["segmentation"], metas["segmentation"],
            fit["segmentation"], gpus=config["imaging"]["train"]["gpus"],
        ),
        "classifier": task(
            "classifier", "imaging", enabled["classifier"], metas["classifier"],
            fit["classifier"], folds=tuple(range(cls_cfg["folds"])) if train_cls else (),
            channels=tuple(classifier_channels), gpus=cls_cfg["train"]["gpus"],
        ),
        "sequence_model": task(
            "sequence_model", "genomics", enabled["sequence_model"], metas["sequence_model"],
            archs=tuple(archs), gpus=config["genomics"]["train"]["gpus"],
        ),
        "synthesis": task(
            "synthesis", "imaging", enabled["synthesis"], metas["synthesis"], fit["synthesis"],
            channels=(synthesis_target,) if synthesis_target else (),
            gpus=config["imaging"]["synthesis"]["train"]["gpus"],
        ),
        "imaging_qc": task(
            "imaging_qc", "imaging", qc["enabled"] and config["imaging"]["enabled"], None,
            train_then_val(imaging_subjects),
        ),
        "genomics_qc": task(
            "genomics_qc", "genomics", qc["enabled"] and config["genomics"]["enabled"], None,
            train_then_val(genomics_subjects),
        ),
        # trained on the classifier's folds (one job: its models are tiny)
        "subject_model": task(
            "subject_model", "subject", enabled["subject_model"], metas["subject_model"],
            folds=tuple(range(cls_cfg["folds"]))
            if enabled["subject_model"] and not metas["subject_model"] else (),
        ),
    }


def check_classifier(
    config: dict,
    subjects: Mapping[str, Mapping[str, str]],
    imaging_subjects: list[str],
    fit: tuple[str, ...],
    meta: dict | None,
    channels: list[str],
    preprocessing: dict,
    check_training: bool,
    sheet: str,
) -> None:
    """Before any job: the sheet's classes (a user's sheet; the demo's are balanced by
    construction) fit training (two or more, enough per fold) or the applied bundle, and the
    bundle's channels and preprocessing fit this cohort."""
    from voxseq.imaging.classify import check_bundle_fits, check_classes

    classes = {s: subjects[s]["class"] for s in imaging_subjects if subjects[s].get("class")}
    if check_training:
        pool = [s for s in fit if s in classes]
        unseen = sorted(set(classes.values()) - {classes[s] for s in pool})
        if unseen:
            held = sorted(s for s in classes if classes[s] in unseen)
            raise VoxseqError(
                f"imaging.classify: class(es) {unseen} in the sample sheet {sheet} are held only "
                f"by subject(s) {held}, none of them in the train or val split: the classifier "
                f"would never learn them (it learns {sorted({classes[s] for s in pool})}). Move "
                "some of those subjects to train or val, or give them a known class"
            )
        check_classes(classes, pool, config["imaging"]["classify"]["folds"], sheet)
    if meta:
        check_bundle_fits(
            meta,
            config["models"]["imaging_classify"],
            set(classes.values()),
            channels,
            preprocessing,
            sheet,
        )
