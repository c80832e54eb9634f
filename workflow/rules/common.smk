# Shared tables and logic: config + sample-sheet validation (at DAG-building time), subject
# tables, wildcard constraints and input functions. Rules stay free of lambdas.
import inspect
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

try:  # Snakemake's internals: without it, parameters are looked up per call (slower, same)
    from snakemake.common import overwrite_function_params
except ImportError:

    def overwrite_function_params(func, params):
        return None


sys.path.insert(0, workflow.basedir)  # the voxseq package ships beside the Snakefile

from voxseq import VoxseqError  # noqa: E402
from voxseq.config import check_config, check_devices, validate_config  # noqa: E402
from voxseq.genomics.archs import GENOMICS_ARCHS as KNOWN_ARCHS  # noqa: E402
from voxseq.genomics.archs import genomics_archs  # noqa: E402
from voxseq.io.digest import recorded_sources, same_content  # noqa: E402
from voxseq.io.sheet import SUBJECT_PATTERN, assign_splits, read_sheet  # noqa: E402

try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas")
    check_config(config)
except VoxseqError as exc:
    raise WorkflowError(str(exc)) from None

COHORT = config["cohort"]
RES = f"results/{COHORT}"
LOGS = f"{RES}/logs"
BENCH = f"{RES}/benchmarks"
SHEET = f"{RES}/sheet.tsv"
SHEET_RECORD = f"{RES}/sheet.sources.json"  # what cohort_sheet read (see stable())
REFERENCE_RECORD = (
    f"{RES}/genomics/ingest/reference.json"  # what genomics_reference read
)
DIGEST_CACHE = ".snakemake/voxseq/digests"  # SHA-256 of touched source files, by stat
DEMO = config["demo"]["enabled"]
DEMO_DIR = f"{RES}/demo_input"
QC_TRUTH = f"{DEMO_DIR}/qc_truth.tsv"
IMAGING = config["imaging"]["enabled"]
GENOMICS = config["genomics"]["enabled"]
IMAGING_BUNDLE = config["models"]["imaging"] or f"models/{COHORT}/imaging"
GENOMICS_BUNDLE = config["models"]["genomics"] or f"models/{COHORT}/genomics"
TRAIN_IMAGING = IMAGING and not config["models"]["imaging"]
TRAIN_GENOMICS = GENOMICS and not config["models"]["genomics"]
# genomics.model.compare: each architecture trains as its own job into a candidate bundle under
# GENOMICS_CANDIDATES/<arch>/; the best on validation is copied to GENOMICS_BUNDLE
try:
    GENOMICS_ARCHS = (
        genomics_archs(config["genomics"].get("model") or {}) if TRAIN_GENOMICS else []
    )
except VoxseqError as exc:
    raise WorkflowError(str(exc)) from None
GENOMICS_COMPARE = len(GENOMICS_ARCHS) > 1
GENOMICS_CANDIDATES = f"{RES}/genomics/train"
CLASSIFY_CFG = config["imaging"]["classify"]
CLASSIFY_BUNDLE = (
    config["models"]["imaging_classify"] or f"models/{COHORT}/imaging_classify"
)


def resolve_inputs():
    """The demo writes its own sheet and reference; any other cohort must name both."""
    demo_ref = f"{DEMO_DIR}/reference.fa"
    if DEMO:
        if config.get("samples"):
            raise WorkflowError(
                f"config samples: {config['samples']!r} is set while demo.enabled is true; "
                "the demo writes its own sample sheet. To run your own cohort, set "
                "demo: {enabled: false}"
            )
        config["samples"] = f"{DEMO_DIR}/samples.tsv"
        ref = config["genomics"].get("reference")
        if GENOMICS and ref and ref != demo_ref:
            raise WorkflowError(
                f"config genomics.reference: {ref!r} is set while demo.enabled is true; the "
                f"demo writes and uses its own reference ({demo_ref}). Set "
                "demo: {enabled: false} to use yours"
            )
        config["genomics"]["reference"] = demo_ref
        return
    if not config.get("samples"):
        raise WorkflowError(
            "config samples: not set. With demo.enabled false the config must name the "
            "cohort's sample sheet (a TSV; a relative path is resolved against the working "
            "directory, i.e. where snakemake runs or its --directory)"
        )
    if GENOMICS and not config["genomics"].get("reference"):
        raise WorkflowError(
            "config genomics.reference: not set. With genomics.enabled the config must name "
            "the reference FASTA the BAM/CRAM files were aligned to"
        )


resolve_inputs()


def demo_ids():
    """The demo's subject ids: ``n_subjects`` regular ones, then the QC outliers (if any)."""
    # the demo's generators, imported only for the demo
    from voxseq.demo.cohort import outlier_ids

    regular = [f"{COHORT}{i + 1:03d}" for i in range(config["demo"]["n_subjects"])]
    return regular, outlier_ids(regular) if config["demo"]["outliers"] else []


def demo_rows(imaging, genomics):
    """The rows the demo rule writes (known before it runs, so the DAG is complete). The
    regular subjects' classes are drawn by the demo (every one gets one); the outliers have
    none."""
    from voxseq.demo.cohort import labelled_indices

    from voxseq.demo.imaging import demo_channel_names

    regular, outliers = demo_ids()
    labelled = labelled_indices(
        config["seed"], len(regular), config["demo"]["label_fraction"]
    )
    extra = (
        demo_channel_names(config["demo"]["imaging_channels"])[1:] if imaging else []
    )
    rows = {}
    for i, sid in enumerate(regular + outliers):
        rows[sid] = {
            "subject": sid,
            "image": f"{DEMO_DIR}/imaging/{sid}_image.nii.gz" if imaging else "",
            **{
                f"image_{name}": f"{DEMO_DIR}/imaging/{sid}_{name}.nii.gz"
                for name in extra
            },
            "label": (
                f"{DEMO_DIR}/imaging/{sid}_label.nii.gz"
                if imaging and i in labelled
                else ""
            ),
            "bam": f"{DEMO_DIR}/genomics/{sid}.bam" if genomics else "",
            "vcf": f"{DEMO_DIR}/genomics/{sid}.vcf.gz" if genomics else "",
        }
        if sid in outliers:
            rows[sid]["class"] = ""
    return rows


def load_subjects():
    if DEMO:
        d = config["demo"]
        return demo_rows(d["imaging"], d["genomics"])
    try:
        rows = read_sheet(config["samples"])
    except VoxseqError as exc:
        raise WorkflowError(str(exc)) from None
    return {r["subject"]: r for r in rows}


def load_bundle_meta(modality):
    """bundle.json of the bundle applied to ``modality`` (None when training here)."""
    path = config["models"][modality]
    if not path or not config[modality]["enabled"]:
        return None
    # imports torch: only when a bundle is applied
    from voxseq.bundle import read_bundle_meta

    try:
        return read_bundle_meta(path, modality)
    except VoxseqError as exc:
        raise WorkflowError(f"models.{modality}: {exc}") from None


def imaging_channels():
    """The cohort's channel names (voxseq.imaging.channels.cohort_channels) and the sheet's
    image_<name> columns; an applied segmentation bundle must have the same channels."""
    from voxseq.imaging.channels import check_bundle_channels, cohort_channels
    from voxseq.io.sheet import channel_columns

    columns = channel_columns(next(iter(SUBJECTS.values()))) if SUBJECTS else []
    try:
        channels = cohort_channels(columns, config["imaging"]["channels"])
        if IMAGING_BUNDLE_META:
            check_bundle_channels(
                IMAGING_BUNDLE_META["preprocessing"].get("channels"),
                channels,
                f"models.imaging {config['models']['imaging']}",
            )
    except VoxseqError as exc:
        raise WorkflowError(str(exc)) from None
    return columns, channels


def check_bundle_labels():
    """An applied imaging bundle segments into its own labels; the config must agree."""
    if not IMAGING_BUNDLE_META:
        return
    theirs = list(IMAGING_BUNDLE_META["preprocessing"].get("labels") or [])
    ours = list(config["imaging"]["labels"])
    if theirs != ours:
        raise WorkflowError(
            f"models.imaging {config['models']['imaging']}: bundle labels {theirs}, config "
            f"labels {ours}. A bundle predicts the labels it was trained with: set "
            f"imaging.labels: {theirs} in your config (and label files with those values)"
        )


def load_classify_bundle_meta():
    """bundle.json of the applied classifier (None when it is trained here or off)."""
    path = config["models"]["imaging_classify"]
    if not path or not IMAGING or CLASSIFY_CFG["enabled"] is False:
        return None
    from voxseq.bundle import read_bundle_meta

    try:
        meta = read_bundle_meta(path, "imaging")
    except VoxseqError as exc:
        raise WorkflowError(f"models.imaging_classify: {exc}") from None
    if meta.get("task") != "classify":
        raise WorkflowError(
            f"models.imaging_classify {path}: a {meta.get('task', 'segmentation')} bundle, "
            "not a classifier (task classify)"
        )
    return meta


def classify_enabled():
    """imaging.classify.enabled: auto is on when the sheet has a class column (the demo's
    always has) or a classifier bundle is applied."""
    setting = CLASSIFY_CFG["enabled"]
    if not IMAGING or setting is False:
        return False
    has_class = (DEMO and config["demo"]["imaging"]) or any(
        r.get("class") for r in SUBJECTS.values() if r["image"]
    )
    if config["models"]["imaging_classify"]:
        return True
    if setting is True and not has_class:
        raise WorkflowError(
            f"imaging.classify.enabled is true but the sample sheet {config['samples']} has "
            "no class column (or no imaging subject with a class)"
        )
    return has_class


SUBJECTS = load_subjects()
IMAGING_BUNDLE_META = load_bundle_meta("imaging")
GENOMICS_BUNDLE_META = load_bundle_meta("genomics")
CLASSIFY_BUNDLE_META = load_classify_bundle_meta()
if IMAGING_BUNDLE_META and IMAGING_BUNDLE_META.get("task") == "classify":
    raise WorkflowError(
        f"models.imaging {config['models']['imaging']}: a classifier bundle; set it as "
        "models.imaging_classify (models.imaging takes a segmentation bundle)"
    )
check_bundle_labels()
CHANNEL_COLUMNS, IMAGING_CHANNELS = imaging_channels() if IMAGING else ([], [])
CLASSIFY = classify_enabled()
TRAIN_CLASSIFY = CLASSIFY and not CLASSIFY_BUNDLE_META
# every model comes from a bundle: subjects without a split in the sheet are all test subjects
INFERENCE_ONLY = not (TRAIN_IMAGING or TRAIN_GENOMICS or TRAIN_CLASSIFY)
IMAGING_SUBJECTS = sorted(s for s, r in SUBJECTS.items() if IMAGING and r["image"])
GENOMICS_SUBJECTS = sorted(s for s, r in SUBJECTS.items() if GENOMICS and r["bam"])
if IMAGING and not IMAGING_SUBJECTS:
    raise WorkflowError(
        f"imaging.enabled but no subject in {config['samples']} has an image"
    )
if GENOMICS and not GENOMICS_SUBJECTS:
    raise WorkflowError(
        f"genomics.enabled but no subject in {config['samples']} has a bam"
    )


def genomics_contig_lengths():
    """The reference's contig lengths when known before any job, else None: the demo's from
    its config (its FASTA is written by a rule), another reference's from its ``.fai`` when
    that is present and newer than the FASTA (reading it is O(contigs); no index is built here).
    """
    from voxseq.genomics.reference import read_contigs

    fasta = Path(config["genomics"]["reference"])
    fai = Path(f"{fasta}.fai")
    if (
        fai.is_file()
        and fasta.is_file()
        and fai.stat().st_mtime >= fasta.stat().st_mtime
    ):
        return read_contigs(fasta)
    if DEMO:
        from voxseq.demo.genomics import SMALL, GenomicsDemoConfig

        demo_cfg = SMALL if config["demo"]["small"] else GenomicsDemoConfig()
        return {f"chr{k + 1}": n for k, n in enumerate(demo_cfg.contig_lengths)}
    return None


def check_genomics_contigs():
    """genomics.val_contigs / test_contigs against the reference before any job: unknown
    contigs, or a split left without a window, stop the run here; when the lengths are not
    known yet, the tile rule makes the same check (voxseq.genomics.windows.plan_splits).
    """
    if not GENOMICS:
        return
    from voxseq.genomics.windows import plan_splits

    g = config["genomics"]
    try:
        lengths = GENOMICS_CONTIG_LENGTHS
        if lengths is not None:
            plan_splits(
                lengths,
                g["val_contigs"],
                g["test_contigs"],
                g["window"],
                g["stride"],
                g["reference"],
            )
    except VoxseqError as exc:
        raise WorkflowError(str(exc)) from None


GENOMICS_CONTIG_LENGTHS = genomics_contig_lengths() if GENOMICS else None
check_genomics_contigs()


def coverage_mem_mb():
    """genomics_coverage's memory request (MB, first attempt), from the genome length
    (voxseq.genomics.coverage.coverage_mem_mb: ~40 bytes per bin, whatever the depth): the
    contig lengths when known before any job, else the FASTA's size (bases plus newlines, an
    upper bound), else 4000 (a reference written by a rule of another workflow)."""
    from voxseq.genomics.coverage import coverage_mem_mb as bound

    if GENOMICS_CONTIG_LENGTHS is not None:
        genome = sum(GENOMICS_CONTIG_LENGTHS.values())
    elif Path(config["genomics"]["reference"]).is_file():
        genome = Path(config["genomics"]["reference"]).stat().st_size
    else:
        return 4000
    return bound(genome, config["genomics"]["bin_size"], threads=2)


GENOMICS_COVERAGE_MEM_MB = coverage_mem_mb() if GENOMICS else None


# Genomics tables: subjects with a VCF, in input order;
# the variant truth that gives vep_auroc (genomics.variant_truth, else the demo's, else none).
GENOMICS_VCF_SUBJECTS = [s for s in GENOMICS_SUBJECTS if SUBJECTS[s]["vcf"]]
GENOMICS_BLACKLIST = (config["genomics"].get("blacklist") or []) if GENOMICS else []
if GENOMICS and config["genomics"].get("variant_truth"):
    GENOMICS_TRUTH = config["genomics"]["variant_truth"]
elif DEMO and config["demo"]["genomics"]:
    GENOMICS_TRUTH = f"{DEMO_DIR}/genomics/variant_truth.tsv"
else:
    GENOMICS_TRUTH = []


wildcard_constraints:
    subject=SUBJECT_PATTERN.strip("^$"),
    fold=r"\d+",
    arch="|".join(KNOWN_ARCHS),


# ---- input functions -------------------------------------------------------------------------
def fixed_signature(func):
    """``func``, its parameters recorded once for Snakemake (``overwrite_function_params``).

    Snakemake looks up an input or resource function's parameters (``inspect.signature``) on
    every call, i.e. several times per job; recording them once cuts that from the DAG build
    (about a tenth of a 2,000-subject dry run). The function and its arguments are unchanged.
    """
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


def stable(path, record_file, key):
    """A source file as an input of a job: ``ancient(path)`` while it holds the bytes the job that last
    read it recorded (``sources[key]`` in ``record_file``), else ``path``.

    So a touch, or a copy that kept the bytes, reruns nothing, while an edit reruns the jobs that
    read the file (Snakemake's time rule applies then). The record is written by that job, so the
    first run and a run after ``--forcerun`` behave as plain Snakemake.
    """
    if record_file not in _RECORDS:  # each record is read once per DAG build
        _RECORDS[record_file] = recorded_sources(record_file)
    if same_content(path, _RECORDS[record_file].get(key), DIGEST_CACHE):
        return ancient(path)
    return path


_RECORDS = {}


def get_sample_sheet(wildcards=None):
    return stable(config["samples"], SHEET_RECORD, "sheet")


def get_reference(wildcards=None):
    return stable(config["genomics"]["reference"], REFERENCE_RECORD, "fasta")


def get_split_fractions():
    """Fractions for subjects without a split: the config's, or all test when nothing trains."""
    if INFERENCE_ONLY:
        return {"train": 0.0, "val": 0.0, "test": 1.0}
    return config["splits"]


def dag_splits():
    """Each subject's split, known before any job runs: the sheet's, else the same hash-based
    assignment cohort_sheet writes (so rules can depend on the training subjects alone).
    """
    rows = [{"subject": s, "split": r.get("split", "")} for s, r in SUBJECTS.items()]
    try:
        rows = assign_splits(rows, config["seed"], get_split_fractions())
    except VoxseqError as exc:
        raise WorkflowError(str(exc)) from None
    return {r["subject"]: r["split"] for r in rows}


SPLIT = dag_splits()
# imaging subjects training reads (train and val)
IMAGING_FIT_SUBJECTS = [s for s in IMAGING_SUBJECTS if SPLIT[s] in ("train", "val")]
# the intensity statistics read the train split's foreground samples (ct scheme only)
IMAGING_STATS_SUBJECTS = (
    [s for s in IMAGING_SUBJECTS if SPLIT[s] == "train"]
    if config["imaging"]["normalisation"] == "ct"
    else []
)


# subject classification: the cross-validated subjects (train + val), the folds
# subjects without a class (unannotated) are predicted by the fold ensemble, never trained on
CLASSIFY_FIT_SUBJECTS = (
    [s for s in IMAGING_FIT_SUBJECTS if SUBJECTS[s].get("class", "demo")]
    if TRAIN_CLASSIFY
    else []
)
CLASSIFY_FOLDS = list(range(CLASSIFY_CFG["folds"])) if TRAIN_CLASSIFY else []

# Quality control (qc.smk): trained on the training split, validated on val, every subject scored
QC = config["qc"]["enabled"]
IMAGING_QC = QC and IMAGING
GENOMICS_QC = QC and GENOMICS
IMAGING_QC_BUNDLE = config["models"]["imaging_qc"] or f"models/{COHORT}/imaging_qc"
GENOMICS_QC_BUNDLE = config["models"]["genomics_qc"] or f"models/{COHORT}/genomics_qc"
TRAIN_IMAGING_QC = IMAGING_QC and not config["models"]["imaging_qc"]
TRAIN_GENOMICS_QC = GENOMICS_QC and not config["models"]["genomics_qc"]
if (
    TRAIN_GENOMICS_QC
    and config["qc"]["genomics"]["bin_size"] % config["genomics"]["bin_size"]
):
    raise WorkflowError(
        f"qc.genomics.bin_size {config['qc']['genomics']['bin_size']} must be a multiple of "
        f"genomics.bin_size {config['genomics']['bin_size']} (the coverage bins it sums)"
    )


def qc_split(subjects, split):
    return [s for s in subjects if SPLIT[s] == split]


IMAGING_QC_FIT = qc_split(IMAGING_SUBJECTS, "train") + qc_split(IMAGING_SUBJECTS, "val")
GENOMICS_QC_FIT = qc_split(GENOMICS_SUBJECTS, "train") + qc_split(
    GENOMICS_SUBJECTS, "val"
)


def qc_out_of_fold(modality):
    """The training rule's out-of-fold reconstructions, when the QC model is trained here."""
    trained = TRAIN_IMAGING_QC if modality == "imaging" else TRAIN_GENOMICS_QC
    return [f"{RES}/{modality}/qc/out_of_fold.npz"] if trained else []


def qc_exclusion(modality):
    """qc.exclude_flagged: the modality's qc.tsv, which its training rules read."""
    on = IMAGING_QC if modality == "imaging" else GENOMICS_QC
    return (
        [f"{RES}/{modality}/qc/qc.tsv"]
        if on and config["qc"]["exclude_flagged"]
        else []
    )


def qc_cfg(modality):
    """A modality's qc block with the shared flag threshold (the training's robust round)."""
    return {**config["qc"][modality], "threshold": config["qc"]["threshold"]}


def get_qc_outputs():
    """The QC tables and figures of every modality with QC on (final targets)."""
    out = []
    if IMAGING_QC:
        out += [
            f"{RES}/imaging/qc/qc.json",
            f"{RES}/imaging/report/qc_reconstructions.png",
        ]
    if GENOMICS_QC:
        out += [f"{RES}/genomics/qc/qc.json", f"{RES}/genomics/report/qc_profiles.png"]
    return out


def check_classify():
    """Before any job: the sheet's classes (a user's sheet; the demo's are balanced by
    construction) fit training (two or more, enough per fold) or the applied bundle, and the
    bundle's channels and preprocessing fit this cohort."""
    if not CLASSIFY:
        return
    from voxseq.imaging.classify import check_classes, check_bundle_fits

    classes = {
        s: SUBJECTS[s]["class"] for s in IMAGING_SUBJECTS if SUBJECTS[s].get("class")
    }
    try:
        if TRAIN_CLASSIFY and not DEMO:
            pool = [s for s in CLASSIFY_FIT_SUBJECTS if s in classes]
            check_classes(classes, pool, CLASSIFY_CFG["folds"], config["samples"])
        if CLASSIFY_BUNDLE_META:
            check_bundle_fits(
                CLASSIFY_BUNDLE_META,
                config["models"]["imaging_classify"],
                set(classes.values()),
                IMAGING_CHANNELS,
                get_imaging_plan(),
                config["samples"],
            )
    except VoxseqError as exc:
        raise WorkflowError(str(exc)) from None


def _seg_probs(subjects):
    """The segmentation's label probabilities of ``subjects`` when the classifier takes them
    as channels, else none."""
    if not CLASSIFY_WITH_SEGMENTATION:
        return []
    return [f"{RES}/imaging/infer/{s}_probabilities.npy" for s in subjects]


def get_classify_seg_probs(wildcards=None):
    return _seg_probs(IMAGING_SUBJECTS)


def get_classify_fit_seg_probs(wildcards=None):
    return _seg_probs(CLASSIFY_FIT_SUBJECTS)


def get_infer_extra_outputs():
    """Segmentation inference also leaves the label probabilities on the normalised grid when
    the classifier takes them as channels."""
    if not CLASSIFY_WITH_SEGMENTATION:
        return {}
    return {"probabilities": f"{RES}/imaging/infer/{{subject}}_probabilities.npy"}


def get_imaging_cohort_classify(wildcards):
    if not CLASSIFY:
        return {}
    return {
        "predictions": f"{RES}/imaging/classify/predictions.tsv",
        "classify_metrics": f"{RES}/imaging/classify/metrics.json",
    }


def get_classify_channels():
    """Input channels: the applied bundle's, else the config's (image, then with_segmentation
    one per foreground label)."""
    if CLASSIFY_BUNDLE_META:
        return CLASSIFY_BUNDLE_META["preprocessing"]["channels"]
    seg = [f"seg_{n}" for n in config["imaging"]["labels"][1:]]
    return (
        [*IMAGING_CHANNELS, *seg]
        if CLASSIFY_CFG["with_segmentation"]
        else IMAGING_CHANNELS
    )


CLASSIFY_WITH_SEGMENTATION = CLASSIFY and len(get_classify_channels()) > 1


def get_classify_oof(wildcards=None):
    return [f"{RES}/imaging/classify/fold{k}/oof.tsv" for k in CLASSIFY_FOLDS]


def _source(modality, subject, key):
    """A subject's source file (none: []), checked against what its ingest job recorded."""
    path = SUBJECTS[subject][key]
    if not path:
        return []
    return stable(path, f"{RES}/{modality}/ingest/{subject}.json", key)


def get_label(wildcards):
    return _source("imaging", wildcards.subject, "label")


def _pair(subject, key):
    """The other file of a subject's NIfTI header/data pair (x.hdr <-> x.img), or []."""
    from voxseq.io.nifti import pair_companion

    path = SUBJECTS[subject][key]
    other = pair_companion(path) if path else None
    if other is None:
        return []
    return stable(str(other), f"{RES}/imaging/ingest/{subject}.json", f"{key}_pair")


def get_imaging_sources(wildcards):
    """A subject's imaging source files, named as its ingest reads them (used with ``unpack``).

    image, label; the other file of each header/data pair (x.hdr <-> x.img); the further images
    (image_<name> columns, in order; every imaging subject has every column, the sheet's check)
    and their pairs. One input function a job rather than six: Snakemake's cost per call, times
    the subjects, is a visible part of a large cohort's DAG build (benchmarks/dag_scaling.py).
    """
    subject = wildcards.subject
    return {
        "image": _source("imaging", subject, "image"),
        "label": _source("imaging", subject, "label"),
        "image_pair": _pair(subject, "image"),
        "label_pair": _pair(subject, "label"),
        "channels": [_source("imaging", subject, c) for c in CHANNEL_COLUMNS],
        "channel_pairs": [p for c in CHANNEL_COLUMNS for p in [_pair(subject, c)] if p],
    }


def get_bam(wildcards):
    return _source("genomics", wildcards.subject, "bam")


def get_vcf(wildcards):
    return _source("genomics", wildcards.subject, "vcf")


def get_vcfs(wildcards):
    return [_source("genomics", s, "vcf") for s in GENOMICS_VCF_SUBJECTS]


def bundle_files(folder):
    """What applying a bundle reads: its description and weights."""
    return [f"{folder}/bundle.json", f"{folder}/weights.safetensors"]


def bundle_outputs(folder):
    """Every file training writes into a bundle (so Snakemake clears them before a retrain:
    a failed retrain leaves no export from the previous model beside a missing bundle.json).
    """
    return [*bundle_files(folder), f"{folder}/model.torchscript.pt"]


def get_imaging_stats(wildcards):
    """Training-split statistics, computed here only when the model is trained here."""
    if IMAGING_BUNDLE_META:
        return []
    return f"{RES}/imaging/normalise/intensity_stats.json"


def get_imaging_plan():
    """Preprocessing: the applied bundle's (never recomputed from a new cohort), else the config's.

    Passed as params, so a replaced bundle with the same preprocessing reruns nothing upstream
    of inference.
    """
    if IMAGING_BUNDLE_META:
        pre = IMAGING_BUNDLE_META["preprocessing"]
        keys = (
            "target_spacing",
            "interpolation",
            "normalisation",
            "statistics",
            "labels",
        )
        plan = {k: pre.get(k) for k in keys}
    else:
        c = config["imaging"]
        plan = {
            "target_spacing": c["target_spacing"],
            "interpolation": c["interpolation"],
            "normalisation": c["normalisation"],
            "statistics": None,
            "labels": c["labels"],
        }
    # the channels are the cohort's (equal to an applied bundle's: imaging_channels)
    return {
        **plan,
        "channels": IMAGING_CHANNELS,
        "channel_grid": config["imaging"]["channel_grid"],
    }


def get_imaging_report_inputs():
    return f"{RES}/imaging/train/metrics.tsv" if TRAIN_IMAGING else []


def get_summary_inputs(wildcards):
    out = {}
    if IMAGING:
        out["imaging"] = f"{RES}/imaging/cohort.json"
        out["imaging_report"] = f"{RES}/imaging/report/dice_boxplot.png"
        if TRAIN_IMAGING:
            out["imaging_curves"] = f"{RES}/imaging/report/training_curves.png"
    if GENOMICS:
        out["genomics"] = f"{RES}/genomics/cohort.json"
        out["genomics_motifs"] = f"{RES}/genomics/motifs/motifs.json"
    if GENOMICS_COMPARE:  # the architectures side by side join the genomics block
        out["genomics_compare"] = f"{RES}/genomics/train/compare.json"
        out["genomics_compare_figure"] = (
            f"{RES}/genomics/report/genomics_arch_comparison.png"
        )
    if IMAGING_QC:
        out["imaging_qc"] = f"{RES}/imaging/qc/qc.json"
    if GENOMICS_QC:
        out["genomics_qc"] = f"{RES}/genomics/qc/qc.json"
    return out


def get_demo_outputs():
    files = [f"{DEMO_DIR}/samples.tsv"]
    if config["demo"]["genomics"]:
        files += [f"{DEMO_DIR}/reference.fa", f"{DEMO_DIR}/genomics/variant_truth.tsv"]
    if config["demo"]["outliers"]:
        files.append(QC_TRUTH)
    for row in SUBJECTS.values():
        files += [
            row[c] for c in ("image", *CHANNEL_COLUMNS, "label", "bam", "vcf") if row[c]
        ]
        # indexes too: Snakemake touches declared outputs, which would leave them "older"
        files += [row["bam"] + ".bai"] if row["bam"] else []
        files += [row["vcf"] + ".tbi"] if row["vcf"] else []
    return files


def get_final_output():
    out = [f"{RES}/summary.json"]
    if IMAGING:
        out.append(f"{RES}/imaging/cohort.tsv")
    if GENOMICS:
        out.append(f"{RES}/genomics/cohort.json")
    return out + get_qc_outputs()


# ---- start and end of a run -------------------------------------------------------------------
def print_headline():
    """Where the results are and the headline numbers (after a successful run)."""
    from voxseq.summary import headline

    summary = Path(f"{RES}/summary.json")
    if not summary.is_file():
        return
    models = {}
    if IMAGING:
        models["imaging"] = IMAGING_BUNDLE
    if GENOMICS:
        models["genomics"] = GENOMICS_BUNDLE
    print("\n".join(headline(summary, models)), flush=True)


def on_start():
    """Before the first job: in a local run, a requested CUDA device must exist (on a cluster
    the GPU nodes have it, not the login node); a compact terminal (config ``terminal``).
    """
    from snakemake.logging import logger as snakemake_logger

    from voxseq.terminal import install as install_terminal

    if workflow.local_exec:
        try:
            check_devices(config)
        except VoxseqError as exc:
            raise WorkflowError(str(exc)) from None
    install_terminal(snakemake_logger, config["terminal"])


onstart:
    on_start()


onsuccess:
    print_headline()


# ---- resources -------------------------------------------------------------------------------
def per_attempt(value):
    """Resource callable: ``value`` on the first attempt, doubled on each retry."""

    def _per_attempt(wildcards, attempt):
        return value * 2 ** (attempt - 1)

    return fixed_signature(_per_attempt)


def get_ingest_mem_mb(wildcards, input, attempt):
    """Ingest holds the decompressed image and label: ~30x the .nii.gz size, 3 GB at least.

    The inputs are local source files, summed with a plain stat (``input.size_mb`` goes through
    Snakemake's storage layer, file by file). One not there yet (the demo's, before it is written)
    raises FileNotFoundError, which Snakemake takes as "evaluate when the job runs".
    """
    size_mb = sum(os.path.getsize(f) for f in input) / 2**20
    return max(3000, int(30 * size_mb)) * 2 ** (attempt - 1)


check_classify()


# every input and resource function the rules name: parameters recorded once (fixed_signature)
for _func in (
    get_sample_sheet,
    get_reference,
    get_classify_seg_probs,
    get_classify_fit_seg_probs,
    get_imaging_cohort_classify,
    get_classify_oof,
    get_label,
    get_imaging_sources,
    get_bam,
    get_vcf,
    get_vcfs,
    get_imaging_stats,
    get_summary_inputs,
    get_ingest_mem_mb,
):
    fixed_signature(_func)
