# Wiring: the run plan (voxseq.plan, built once: every check and decision made before any job),
# wildcard constraints, input functions that look things up in the plan, resources, and the
# start and end of a run. Rules stay free of lambdas.
import inspect
import os
import sys

from snakemake.exceptions import WorkflowError

try:  # Snakemake's internals: without it, parameters are looked up per call (slower, same)
    from snakemake.common import overwrite_function_params
except ImportError:

    def overwrite_function_params(func, params):
        return None


sys.path.insert(0, workflow.basedir)  # the voxseq package ships beside the Snakefile

from voxseq import VoxseqError  # noqa: E402
from voxseq.config import user_splits  # noqa: E402
from voxseq.genomics.archs import GENOMICS_ARCHS as KNOWN_ARCHS  # noqa: E402
from voxseq.io.digest import recorded_sources, same_content  # noqa: E402
from voxseq.io.sheet import SUBJECT_PATTERN  # noqa: E402
from voxseq.plan import build_plan  # noqa: E402
from voxseq.plan.targets import (  # noqa: E402
    association_outputs,
    demo_outputs,
    dicom_conversions,
    final_outputs,
    sequence_training,
    subject_table_inputs,
    summary_inputs,
)

try:
    # the splits block as the user wrote it, not completed from the default config key by key
    config["splits"] = (
        user_splits(
            config,
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
        )
        or config["splits"]
    )
    PLAN = build_plan(config, os.getcwd())
except VoxseqError as exc:
    raise WorkflowError(str(exc)) from None
# the resolved config: the demo's sheet and reference filled in
config.update(PLAN.config)
for _note in PLAN.notes:  # e.g. settings an applied bundle replaces: said once
    print(f"voxseq: {_note}", file=sys.stderr)

L = PLAN.layout  # every path: L("name", subject=...), L.each, L.log, L.bench
COHORT = PLAN.cohort
SEG = PLAN.task("segmentation")
CLS = PLAN.task("classifier")
SEQ = PLAN.task("sequence_model")
IQC = PLAN.task("imaging_qc")
GQC = PLAN.task("genomics_qc")
QC_TASKS = {"imaging": IQC, "genomics": GQC}
GEN = PLAN.genetics
DIGEST_CACHE = ".snakemake/voxseq/digests"  # SHA-256 of touched source files, by stat


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


def keep_time_if_unchanged(path, record_file, key):
    """A source file as an input of a job: ``ancient(path)`` while it holds the bytes the job
    that last read it recorded (``sources[key]`` in ``record_file``), else ``path``.

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
    return keep_time_if_unchanged(PLAN.samples, L("sheet_record"), "sheet")


def get_reference(wildcards=None):
    return keep_time_if_unchanged(PLAN.reference, L("reference_record"), "fasta")


def _source(modality, subject, key):
    """A subject's source file (none: []), checked against what its ingest job recorded; a
    DICOM series folder's NIfTI conversion (rule imaging_dicom)."""
    path = PLAN.subjects[subject][key]
    if not path:
        return []
    if (subject, key) in PLAN.dicom:
        return L("dicom_image", subject=subject, column=key)
    return keep_time_if_unchanged(path, L(f"{modality}_ingest", subject=subject), key)


def _pair(subject, key):
    """The other file of a subject's NIfTI header/data pair (x.hdr <-> x.img), or []."""
    from voxseq.io.nifti import pair_companion

    path = PLAN.subjects[subject][key]
    other = pair_companion(path) if path and (subject, key) not in PLAN.dicom else None
    if other is None:
        return []
    return keep_time_if_unchanged(
        str(other), L("imaging_ingest", subject=subject), f"{key}_pair"
    )


def get_label(wildcards):
    return _source("imaging", wildcards.subject, "label")


def get_imaging_sources(wildcards):
    """A subject's imaging source files, named as its ingest reads them (used with ``unpack``).

    image, label; the other file of each header/data pair (x.hdr <-> x.img); the further images
    (image_<name> columns, in order) and their pairs. One input function a job rather than six:
    Snakemake's cost per call, times the subjects, is a visible part of a large cohort's DAG
    build (benchmarks/dag_scaling.py).
    """
    subject = wildcards.subject
    columns = PLAN.channel_columns
    return {
        "image": _source("imaging", subject, "image"),
        "label": _source("imaging", subject, "label"),
        "image_pair": _pair(subject, "image"),
        "label_pair": _pair(subject, "label"),
        "channels": [p for c in columns for p in [_source("imaging", subject, c)] if p],
        "channel_pairs": [p for c in columns for p in [_pair(subject, c)] if p],
    }


def get_present_channels(wildcards):  # a subject's image columns and channel names
    return PLAN.present_channels(wildcards.subject)


def get_store(
    wildcards,
):  # the store inference reads: completed by synthesis if need be
    return PLAN.store(wildcards.subject)


def get_dicom_folder(wildcards):
    """The DICOM series (or study) folder a subject's image cell names."""
    return PLAN.dicom[(wildcards.subject, wildcards.column)]


def get_dicom_series(wildcards):
    """The series pattern (imaging.dicom.series) for a sheet column, or None."""
    return config["imaging"]["dicom"]["series"].get(wildcards.column)


def converted_dicom():
    return dicom_conversions(PLAN)


def get_bam(wildcards):
    return _source("genomics", wildcards.subject, "bam")


def get_vcf(wildcards):
    return _source("genomics", wildcards.subject, "vcf")


def get_vcfs(wildcards):
    return [_source("genomics", s, "vcf") for s in PLAN.vcf_subjects]


def bundle_files(folder):
    """What applying a bundle reads: its description and weights."""
    return [f"{folder}/bundle.json", f"{folder}/weights.safetensors"]


def bundle_outputs(folder, torchscript=True):
    """Every file training writes into a bundle, its model card (README.md) and TorchScript
    export included (so Snakemake clears them before a retrain: a failed retrain leaves no
    export from the previous model beside a missing bundle.json)."""
    out = [*bundle_files(folder), f"{folder}/README.md"]
    return out + [f"{folder}/model.torchscript.pt"] if torchscript else out


def get_imaging_stats(wildcards):
    """Training-split statistics, computed here only when the model is trained here."""
    return [] if SEG.applied else L("imaging_stats")


def get_ingest_records(wildcards):
    """Every ingest record of a modality (shared_content compares their digests)."""
    subjects = {"imaging": PLAN.imaging_subjects, "genomics": PLAN.genomics_subjects}
    return L.each(f"{wildcards.modality}_ingest", subjects[wildcards.modality])


def no_shared_content(modality):
    """What the training rules read so that no model trains on files shared across subjects;
    the check runs before training; ``ancient``, so its rerun after a test subject's edit
    retrains nothing (a new shared file still stops the run)."""
    return ancient(L("shared_content", modality=modality))


def qc_exclusion(modality):
    """qc.exclude_flagged: the modality's qc.tsv, which its training rules read."""
    on = QC_TASKS[modality].enabled and config["qc"]["exclude_flagged"]
    return [L("qc_table", modality=modality)] if on else []


def qc_out_of_fold(modality):
    """The training rule's out-of-fold reconstructions, when the QC model is trained here."""
    return [L("qc_out_of_fold", modality=modality)] if QC_TASKS[modality].train else []


def qc_cfg(modality):
    """A modality's qc block with the shared flag threshold (the training's robust round)."""
    return {**config["qc"][modality], "threshold": config["qc"]["threshold"]}


SEQ_TRAIN = sequence_training(PLAN)
CLASSIFY_WITH_SEGMENTATION = len(CLS.channels) > 1


def _seg_probs(subjects):
    """The segmentation's label probabilities of ``subjects`` when the classifier takes them
    as channels, else none."""
    if not CLASSIFY_WITH_SEGMENTATION:
        return []
    return L.each("imaging_probabilities", subjects)


def get_classify_seg_probs(wildcards=None):
    return _seg_probs(PLAN.imaging_subjects)


def get_classify_fit_seg_probs(wildcards=None):
    return _seg_probs(CLS.fit_subjects)


def get_infer_extra_outputs():
    """Segmentation inference also leaves the label probabilities on the normalised grid when
    the classifier takes them as channels."""
    if not CLASSIFY_WITH_SEGMENTATION:
        return {}
    return {"probabilities": L("imaging_probabilities")}


def get_imaging_cohort_classify(wildcards):
    if not CLS.enabled:
        return {}
    return {
        "predictions": L("classify_predictions"),
        "classify_metrics": L("classify_metrics"),
    }


def get_classify_oof(wildcards=None):
    return [L("classify_oof", fold=k) for k in CLS.folds]


def get_subject_table_inputs(wildcards):
    return subject_table_inputs(PLAN)


def get_genetics_vcf_subjects():
    """The subjects whose VCFs the genotypes read (none with genetics.cohort_vcf)."""
    return [] if GEN.cohort_vcf else list(GEN.vcfs)


def get_genetics_vcfs(wildcards):
    """The genotypes' VCFs: the cohort VCF, else each subject's (checked against ingest)."""
    if GEN.cohort_vcf:
        return [GEN.cohort_vcf]
    return [_source("genomics", s, "vcf") for s in GEN.vcfs]


def get_association_outputs(suffix):
    return association_outputs(PLAN, suffix)


def get_summary_inputs(wildcards):
    return summary_inputs(PLAN)


def get_demo_outputs():
    return demo_outputs(PLAN)


def get_final_output():
    return final_outputs(PLAN)


# ---- start and end of a run -------------------------------------------------------------------
def print_headline():
    """Where the results are and the headline numbers (after a successful run)."""
    from pathlib import Path

    from voxseq.summary import headline

    summary = Path(L("summary"))
    if not summary.is_file():
        return
    models = {}
    if PLAN.imaging:
        models["imaging"] = SEG.bundle
    if PLAN.genomics:
        models["genomics"] = SEQ.bundle
    print("\n".join(headline(summary, models)), flush=True)


def on_start():
    """Before the first job: in a local run, a requested CUDA device must exist (on a cluster
    the GPU nodes have it, not the login node); a compact terminal (config ``terminal``).
    """
    from snakemake.logging import logger as snakemake_logger

    from voxseq.config import check_devices
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
    get_dicom_folder,
    get_dicom_series,
    get_bam,
    get_vcf,
    get_vcfs,
    get_imaging_stats,
    get_ingest_records,
    get_summary_inputs,
    get_subject_table_inputs,
    get_genetics_vcfs,
    get_ingest_mem_mb,
):
    fixed_signature(_func)
