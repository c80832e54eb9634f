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
from voxseq.plan.layout import BUNDLE_FOLDERS, Layout
from voxseq.plan.model import RunPlan, TaskPlan

SPLITS = ("train", "val", "test")
SCHEMAS = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


def _at(workdir: Path, path: str) -> Path:
    """``path`` as the workflow sees it: relative to the working directory (kept as written
    when that is the current directory, so messages name the path the user wrote)."""
    p = Path(path)
    if p.is_absolute() or workdir.resolve() == Path.cwd():
        return p
    return workdir / p


# ---- inputs ---------------------------------------------------------------------------------
def resolve_inputs(config: dict, layout: Layout, workdir: Path) -> tuple[str, str | None]:
    """The sample sheet and reference this run reads: the demo writes its own; any other cohort
    must name both (a relative path is resolved against the working directory)."""
    demo, genomics = config["demo"]["enabled"], config["genomics"]["enabled"]
    ref = config["genomics"].get("reference")
    if demo:
        if config.get("samples"):
            raise VoxseqError(
                f"config samples: {config['samples']!r} is set while demo.enabled is true; "
                "the demo writes its own sample sheet. To run your own cohort, set "
                "demo: {enabled: false}"
            )
        demo_ref = layout("demo_reference")
        if genomics and ref and ref != demo_ref:
            raise VoxseqError(
                f"config genomics.reference: {ref!r} is set while demo.enabled is true; the "
                f"demo writes and uses its own reference ({demo_ref}). Set "
                "demo: {enabled: false} to use yours"
            )
        return layout("demo_sheet"), demo_ref if genomics else None
    sheet = config.get("samples")
    if not sheet:
        raise VoxseqError(
            "config samples: not set. With demo.enabled false the config must name the "
            "cohort's sample sheet (a TSV; a relative path is resolved against the working "
            "directory, i.e. where snakemake runs or its --directory)"
        )
    if not _at(workdir, sheet).is_file():
        raise VoxseqError(
            f"config samples: sample sheet {sheet}: file not found (looked for "
            f"{_at(workdir, sheet).resolve()}; a relative path is resolved against the working "
            f"directory {workdir.resolve()}, i.e. where snakemake runs or its --directory)"
        )
    if genomics and not ref:
        raise VoxseqError(
            "config genomics.reference: not set. With genomics.enabled the config must name "
            "the reference FASTA the BAM/CRAM files were aligned to"
        )
    return sheet, ref if genomics else None


def demo_ids(config: dict) -> tuple[list[str], list[str]]:
    """The demo's subject ids: ``n_subjects`` regular ones, then the QC outliers (if any)."""
    from voxseq.demo.cohort import outlier_ids

    regular = [f"{config['cohort']}{i + 1:03d}" for i in range(config["demo"]["n_subjects"])]
    return regular, outlier_ids(regular) if config["demo"]["outliers"] else []


def demo_rows(config: dict, layout: Layout) -> dict[str, dict[str, str]]:
    """The rows the demo rule writes (known before it runs, so the DAG is complete). The
    regular subjects' classes are drawn by the demo (every one gets one); the outliers have
    none."""
    from voxseq.demo.cohort import labelled_indices
    from voxseq.demo.imaging import demo_channel_names
    from voxseq.demo.layout import genomics_files, imaging_files
    from voxseq.demo.qtl import demo_covariates

    d = config["demo"]
    regular, outliers = demo_ids(config)
    labelled = labelled_indices(config["seed"], len(regular), d["label_fraction"])
    extra = demo_channel_names(d["imaging_channels"])[1:] if d["imaging"] else []
    base = layout("demo_dir")
    rows = {}
    for i, sid in enumerate(regular + outliers):
        row = {"subject": sid, "image": "", "label": "", "bam": "", "vcf": ""}
        if d["imaging"]:
            files = imaging_files(sid, extra)
            row.update({k: f"{base}/{v}" for k, v in files.items()})
            if i not in labelled:
                row["label"] = ""
        if d["genomics"]:
            row.update({k: f"{base}/{v}" for k, v in genomics_files(sid).items()})
        if sid in outliers:
            row["class"] = ""
        row.update(demo_covariates(config["seed"], i))  # as the demo writes them
        rows[sid] = row
    return rows


def load_subjects(config: dict, layout: Layout, sheet: str, workdir: Path) -> dict[str, dict]:
    """subject -> sheet row (the demo's planned rows, or the validated sample sheet)."""
    if config["demo"]["enabled"]:
        return demo_rows(config, layout)
    from voxseq.io.sheet import read_sheet

    return {r["subject"]: r for r in read_sheet(_at(workdir, sheet))}


def dag_splits(
    subjects: Mapping[str, Mapping[str, str]], seed: int, fractions: Mapping[str, float]
) -> dict[str, str]:
    """Each subject's split, known before any job runs: the sheet's, else the same hash-based
    assignment cohort_sheet writes (so rules can depend on the training subjects alone)."""
    from voxseq.io.sheet import assign_splits

    rows = [{"subject": s, "split": r.get("split", "")} for s, r in subjects.items()]
    return {r["subject"]: r["split"] for r in assign_splits(rows, seed, dict(fractions))}


# ---- bundles --------------------------------------------------------------------------------
def read_bundle(config: dict, key: str, modality: str, workdir: Path) -> dict | None:
    """bundle.json of the bundle ``models.<key>`` applies (None when none is applied)."""
    path = config["models"][key]
    if not path:
        return None
    from voxseq.bundle import read_bundle_meta

    try:
        meta = read_bundle_meta(_at(workdir, path), modality)
    except VoxseqError as exc:
        raise VoxseqError(f"models.{key}: {exc}") from None
    return meta


def imaging_preprocessing(config: dict, bundle: dict | None, channels: list[str]) -> dict:
    """Preprocessing: the applied segmentation bundle's (never recomputed from a new cohort),
    else the config's. Passed to the rules as params, so a replaced bundle with the same
    preprocessing reruns nothing upstream of inference."""
    c = config["imaging"]
    if bundle:
        pre = bundle["preprocessing"]
        keys = ("target_spacing", "interpolation", "normalisation", "statistics", "labels")
        plan = {k: pre.get(k) for k in keys}
    else:
        plan = {
            "target_spacing": c["target_spacing"],
            "interpolation": c["interpolation"],
            "normalisation": c["normalisation"],
            "statistics": None,
            "labels": c["labels"],
        }
    # the channels are the cohort's (equal to an applied bundle's: checked by the plan)
    return {**plan, "channels": channels, "channel_grid": c["channel_grid"]}


def bundle_overrides(config: dict, bundle: dict | None) -> list[str]:
    """The config's preprocessing settings an applied segmentation bundle replaces, one line
    each (said once when the plan is built)."""
    if not bundle:
        return []
    pre, c = bundle["preprocessing"], config["imaging"]
    return [
        f"imaging.{k}: the config says {c[k]!r}, the applied bundle {config['models']['imaging']} "
        f"was trained with {pre.get(k)!r}; the bundle's is used"
        for k in ("target_spacing", "interpolation", "normalisation")
        if k in pre and list_or(pre.get(k)) != list_or(c.get(k))
    ]


def list_or(value):
    return list(value) if isinstance(value, list | tuple) else value


# ---- genomics -------------------------------------------------------------------------------
def genomics_contig_lengths(config: dict, reference: str, workdir: Path) -> dict[str, int] | None:
    """The reference's contig lengths when known before any job: the demo's from its config (its
    FASTA is written by a rule), another reference's from its ``.fai`` when that is present and
    newer than the FASTA (reading it is O(contigs); no index is built here)."""
    from voxseq.genomics.reference import read_contigs

    fasta = _at(workdir, reference)
    fai = Path(f"{fasta}.fai")
    if fai.is_file() and fasta.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime:
        return read_contigs(fasta)
    if config["demo"]["enabled"]:
        from voxseq.demo.genomics import SMALL, GenomicsDemoConfig

        demo_cfg = SMALL if config["demo"]["small"] else GenomicsDemoConfig()
        return {f"chr{k + 1}": n for k, n in enumerate(demo_cfg.contig_lengths)}
    return None


def coverage_mem_mb(config: dict, lengths: dict | None, reference: str, workdir: Path) -> int:
    """genomics_coverage's memory request (MB, first attempt), from the genome length
    (:func:`voxseq.genomics.coverage.coverage_mem_mb`: ~40 bytes per bin, whatever the depth):
    the contig lengths when known before any job, else the FASTA's size (bases plus newlines, an
    upper bound), else 4000 (a reference written by a rule of another workflow)."""
    from voxseq.genomics.coverage import coverage_mem_mb as bound

    fasta = _at(workdir, reference)
    if lengths is not None:
        genome = sum(lengths.values())
    elif fasta.is_file():
        genome = fasta.stat().st_size
    else:
        return 4000
    return bound(genome, config["genomics"]["bin_size"], threads=2)


def check_genomics_contigs(config: dict, lengths: dict | None, reference: str) -> None:
    """genomics.val_contigs / test_contigs against the reference before any job: unknown
    contigs, or a split left without a window, stop the run here; when the lengths are not
    known yet, the tile rule makes the same check (voxseq.genomics.windows.plan_splits)."""
    if lengths is None:
        return
    from voxseq.genomics.windows import plan_splits

    g = config["genomics"]
    plan_splits(lengths, g["val_contigs"], g["test_contigs"], g["window"], g["stride"], reference)


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

    # tasks applied from bundles: their metadata, read once
    seg_meta = read_bundle(config, "imaging", "imaging", workdir) if imaging else None
    seq_meta = read_bundle(config, "genomics", "genomics", workdir) if genomics else None
    cls_cfg = config["imaging"]["classify"]
    cls_meta = None
    if imaging and cls_cfg["enabled"] is not False:
        cls_meta = read_bundle(config, "imaging_classify", "imaging", workdir)
        if cls_meta and cls_meta.get("task") != "classify":
            raise VoxseqError(
                f"models.imaging_classify {config['models']['imaging_classify']}: a "
                f"{cls_meta.get('task', 'segmentation')} bundle, not a classifier (task classify)"
            )
    if seg_meta and seg_meta.get("task") == "classify":
        raise VoxseqError(
            f"models.imaging {config['models']['imaging']}: a classifier bundle; set it as "
            "models.imaging_classify (models.imaging takes a segmentation bundle)"
        )
    if seg_meta:
        theirs = list(seg_meta["preprocessing"].get("labels") or [])
        ours = list(config["imaging"]["labels"])
        if theirs != ours:
            raise VoxseqError(
                f"models.imaging {config['models']['imaging']}: bundle labels {theirs}, config "
                f"labels {ours}. A bundle predicts the labels it was trained with: set "
                f"imaging.labels: {theirs} in your config (and label files with those values)"
            )

    # imaging channels, and the cells that name a DICOM series folder (converted before ingest)
    channel_columns, channels, dicom = [], [], {}
    if imaging:
        from voxseq.imaging.channels import check_bundle_channels, cohort_channels
        from voxseq.io.sheet import channel_columns as sheet_channel_columns

        channel_columns = sheet_channel_columns(next(iter(subjects.values()))) if subjects else []
        channels = cohort_channels(channel_columns, config["imaging"]["channels"])
        dicom = {
            (s, c): r[c]
            for s, r in subjects.items()
            for c in ("image", *channel_columns)
            if r.get(c) and _at(workdir, r[c]).is_dir()
        }
        if seg_meta:
            check_bundle_channels(
                seg_meta["preprocessing"].get("channels"),
                channels,
                f"models.imaging {config['models']['imaging']}",
                channel_columns,
            )

    # the subject classifier: on with a class column (the demo's always has) or a bundle
    classify = False
    if imaging and cls_cfg["enabled"] is not False:
        has_class = (demo and config["demo"]["imaging"]) or any(
            r.get("class") for r in subjects.values() if r["image"]
        )
        if cls_cfg["enabled"] is True and not has_class and not cls_meta:
            raise VoxseqError(
                f"imaging.classify.enabled is true but the sample sheet {sheet_desc} has "
                "no class column (or no imaging subject with a class)"
            )
        classify = bool(config["models"]["imaging_classify"]) or bool(has_class)

    train_seg = imaging and not config["models"]["imaging"]
    train_seq = genomics and not config["models"]["genomics"]
    train_cls = classify and not cls_meta
    from voxseq.genomics.archs import genomics_archs

    archs = genomics_archs(config["genomics"].get("model") or {}) if train_seq else []
    inference_only = not (train_seg or train_seq or train_cls)

    imaging_subjects = sorted(s for s, r in subjects.items() if imaging and r["image"])
    genomics_subjects = sorted(s for s, r in subjects.items() if genomics and r["bam"])
    if imaging and not imaging_subjects:
        raise VoxseqError(f"imaging.enabled but no subject in {sheet_desc} has an image")
    if genomics and not genomics_subjects:
        raise VoxseqError(f"genomics.enabled but no subject in {sheet_desc} has a bam")

    # genomics: contigs, coverage memory, VCFs, truth
    lengths, cov_mem, truth = None, None, None
    if genomics:
        lengths = genomics_contig_lengths(config, reference, workdir)
        check_genomics_contigs(config, lengths, reference)
        cov_mem = coverage_mem_mb(config, lengths, reference, workdir)
        if config["genomics"].get("variant_truth"):
            truth = config["genomics"]["variant_truth"]
        elif demo and config["demo"]["genomics"]:
            truth = layout("demo_variant_truth")

    # splits: every subject without one in the sheet is assigned from the seed
    fractions = (
        {"train": 0.0, "val": 0.0, "test": 1.0} if inference_only else dict(config["splits"])
    )
    split = dag_splits(subjects, config["seed"], fractions)

    def in_splits(pool, *names):
        return tuple(s for s in pool if split[s] in names)

    imaging_fit = in_splits(imaging_subjects, "train", "val")
    stats_subjects = (
        in_splits(imaging_subjects, "train")
        if config["imaging"]["normalisation"] == "ct" and imaging
        else ()
    )
    cls_fit = (
        tuple(s for s in imaging_fit if subjects[s].get("class", "demo")) if train_cls else ()
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
    if genetics.cohort_vcf and not _at(workdir, genetics.cohort_vcf).is_file():
        raise VoxseqError(
            f"config genetics.cohort_vcf: {genetics.cohort_vcf}: file not found (a relative path "
            f"is resolved against the working directory {workdir.resolve()})"
        )

    def task(name, modality, enabled, train, meta, fit=(), **extra):
        key = BUNDLE_FOLDERS[name][0]
        return TaskPlan(
            name=name,
            modality=modality,
            enabled=bool(enabled),
            train=bool(enabled and train),
            bundle=config["models"][key] or layout.bundle(name),
            bundle_key=f"models.{key}",
            applied=meta,
            fit_subjects=tuple(fit) if enabled and train else (),
            **extra,
        )

    tasks = {
        "segmentation": task(
            "segmentation", "imaging", imaging, train_seg, seg_meta, imaging_fit,
            gpus=config["imaging"]["train"]["gpus"],
        ),
        "classifier": task(
            "classifier", "imaging", classify, train_cls, cls_meta, cls_fit,
            folds=tuple(range(cls_cfg["folds"])) if train_cls else (),
            channels=tuple(cls_channels),
            gpus=cls_cfg["train"]["gpus"],
        ),
        "sequence_model": task(
            "sequence_model", "genomics", genomics, train_seq, seq_meta, (),
            archs=tuple(archs), gpus=config["genomics"]["train"]["gpus"],
        ),
        # the QC autoencoders learn the training split's subjects, then the validation split's
        "imaging_qc": task(
            "imaging_qc", "imaging", qc["enabled"] and imaging,
            not config["models"]["imaging_qc"], None,
            in_splits(imaging_subjects, "train") + in_splits(imaging_subjects, "val"),
        ),
        "genomics_qc": task(
            "genomics_qc", "genomics", qc["enabled"] and genomics,
            not config["models"]["genomics_qc"], None,
            in_splits(genomics_subjects, "train") + in_splits(genomics_subjects, "val"),
        ),
    }
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
        demo_subjects=tuple(demo_ids(config)[0]) if demo else (),
        notes=tuple(bundle_overrides(config, seg_meta))
        + (genetics.notes if genetics.enabled else ()),
        genetics=genetics,
    )


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
