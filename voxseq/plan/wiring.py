"""The rules' input and resource functions, read off the run plan.

Every function here only looks things up in a :class:`~voxseq.plan.model.RunPlan`: which source
file a subject's job reads, which optional inputs a rule takes, how much memory a retry gets.
``workflow/rules/common.smk`` builds one :class:`RuleInputs` per DAG and the rules name its
methods (``IN.label``, ``IN.imaging_sources``, ...). The one Snakemake-specific piece, marking a
source file ``ancient`` while its bytes are unchanged, is handed in as a function, so these are
unit-tested with a stand-in (``tests/test_plan_wiring.py``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from voxseq.io.digest import recorded_sources, same_content
from voxseq.plan import targets
from voxseq.plan.model import RunPlan

try:  # Snakemake's internals: without it, parameters are looked up per call (slower, same)
    from snakemake.common import overwrite_function_params
except ImportError:  # pragma: no cover - Snakemake is a dependency

    def overwrite_function_params(func, params):
        return None


#: SHA-256 of touched source files, by stat (relative to the working directory)
DIGEST_CACHE = ".snakemake/voxseq/digests"


def fixed_signature(func: Callable) -> Callable:
    """``func``, its parameters recorded once for Snakemake (``overwrite_function_params``).

    Snakemake looks up an input or resource function's parameters (``inspect.signature``) on
    every call, i.e. several times per job; recording them once cuts that from the DAG build
    (about a tenth of a 2,000-subject dry run). The function and its arguments are unchanged; a
    bound method's parameters are recorded on its function (without ``self``).
    """
    overwrite_function_params(getattr(func, "__func__", func), inspect.signature(func).parameters)
    return func


def per_attempt(value: int) -> Callable:
    """Resource callable: ``value`` on the first attempt, doubled on each retry."""

    def _per_attempt(wildcards, attempt):
        return value * 2 ** (attempt - 1)

    return fixed_signature(_per_attempt)


def ingest_mem_mb(wildcards, input, attempt) -> int:
    """Ingest holds the decompressed image and label: ~30x the .nii.gz size, 3 GB at least.

    The inputs are local source files, summed with a plain stat (``input.size_mb`` goes through
    Snakemake's storage layer, file by file). One not there yet (the demo's, before it is written)
    raises FileNotFoundError, which Snakemake takes as "evaluate when the job runs".
    """
    size_mb = sum(os.path.getsize(f) for f in input) / 2**20
    return max(3000, int(30 * size_mb)) * 2 ** (attempt - 1)


fixed_signature(ingest_mem_mb)


def bundle_files(folder: str) -> list[str]:
    """What applying a bundle reads: its description and weights."""
    return [f"{folder}/bundle.json", f"{folder}/weights.safetensors"]


def bundle_outputs(folder: str, torchscript: bool = True) -> list[str]:
    """Every file training writes into a bundle, its model card (README.md) and TorchScript
    export included (so Snakemake clears them before a retrain: a failed retrain leaves no
    export from the previous model beside a missing bundle.json)."""
    out = [*bundle_files(folder), f"{folder}/README.md"]
    return out + [f"{folder}/model.torchscript.pt"] if torchscript else out


class RuleInputs:
    """The input functions of one DAG: lookups in ``plan``.

    Parameters
    ----------
    plan
        The run plan (``build_plan``).
    ancient
        Snakemake's ``ancient`` (a source file whose bytes did not change keeps its time); any
        function of a path in tests.
    """

    def __init__(self, plan: RunPlan, ancient: Callable[[str], object]):
        self.plan = plan
        self.L = plan.layout
        self.ancient = ancient
        self._records: dict[str, dict] = {}  # each ingest record read once per DAG build
        self.with_segmentation = len(plan.task("classifier").channels) > 1
        for name, member in inspect.getmembers(self, inspect.ismethod):
            if not name.startswith("_"):
                fixed_signature(member)

    # ---- source files ------------------------------------------------------------------------
    def keep_time_if_unchanged(self, path: str, record_file: str, key: str):
        """A source file as an input of a job: ``ancient(path)`` while it holds the bytes the job
        that last read it recorded (``sources[key]`` in ``record_file``), else ``path``.

        So a touch, or a copy that kept the bytes, reruns nothing, while an edit reruns the jobs
        that read the file (Snakemake's time rule applies then). The record is written by that
        job, so the first run and a run after ``--forcerun`` behave as plain Snakemake.
        """
        if record_file not in self._records:
            self._records[record_file] = recorded_sources(record_file)
        if same_content(path, self._records[record_file].get(key), DIGEST_CACHE):
            return self.ancient(path)
        return path

    def sample_sheet(self, wildcards=None):
        return self.keep_time_if_unchanged(self.plan.samples, self.L("sheet_record"), "sheet")

    def reference(self, wildcards=None):
        return self.keep_time_if_unchanged(self.plan.reference, self.L("reference_record"),
                                           "fasta")

    def source(self, modality: str, subject: str, key: str):
        """A subject's source file (none: []), checked against what its ingest job recorded; a
        DICOM series folder's NIfTI conversion (rule imaging_dicom)."""
        path = self.plan.subjects[subject][key]
        if not path:
            return []
        if (subject, key) in self.plan.dicom:
            return self.L("dicom_image", subject=subject, column=key)
        return self.keep_time_if_unchanged(path, self.L(f"{modality}_ingest", subject=subject),
                                           key)

    def _pair(self, subject: str, key: str):
        """The other file of a subject's NIfTI header/data pair (x.hdr <-> x.img), or []."""
        from voxseq.io.nifti import pair_companion

        path = self.plan.subjects[subject][key]
        other = pair_companion(path) if path and (subject, key) not in self.plan.dicom else None
        if other is None:
            return []
        return self.keep_time_if_unchanged(
            str(other), self.L("imaging_ingest", subject=subject), f"{key}_pair")

    def label(self, wildcards):
        return self.source("imaging", wildcards.subject, "label")

    def imaging_sources(self, wildcards) -> dict:
        """A subject's imaging source files, named as its ingest reads them (``unpack``).

        image, label; the other file of each header/data pair (x.hdr <-> x.img); the further
        images (image_<name> columns, in order) and their pairs. One input function a job rather
        than six: Snakemake's cost per call, times the subjects, is a visible part of a large
        cohort's DAG build (benchmarks/dag_scaling.py).
        """
        subject, columns = wildcards.subject, self.plan.channel_columns
        return {
            "image": self.source("imaging", subject, "image"),
            "label": self.source("imaging", subject, "label"),
            "image_pair": self._pair(subject, "image"),
            "label_pair": self._pair(subject, "label"),
            "channels": [self.source("imaging", subject, c) for c in columns],
            "channel_pairs": [p for c in columns for p in [self._pair(subject, c)] if p],
        }

    def dicom_folder(self, wildcards):
        """The DICOM series (or study) folder a subject's image cell names."""
        return self.plan.dicom[(wildcards.subject, wildcards.column)]

    def dicom_series(self, wildcards):
        """The series pattern (imaging.dicom.series) for a sheet column, or None."""
        return self.plan.config["imaging"]["dicom"]["series"].get(wildcards.column)

    def bam(self, wildcards):
        return self.source("genomics", wildcards.subject, "bam")

    def vcf(self, wildcards):
        return self.source("genomics", wildcards.subject, "vcf")

    def vcfs(self, wildcards):
        return [self.source("genomics", s, "vcf") for s in self.plan.vcf_subjects]

    def ingest_records(self, wildcards):
        """Every ingest record of a modality (shared_content compares their digests)."""
        subjects = {"imaging": self.plan.imaging_subjects,
                    "genomics": self.plan.genomics_subjects}
        return self.L.each(f"{wildcards.modality}_ingest", subjects[wildcards.modality])

    # ---- what a task's rules read ------------------------------------------------------------
    def imaging_stats(self, wildcards):
        """Training-split statistics, computed here only when the model is trained here."""
        return [] if self.plan.task("segmentation").applied else self.L("imaging_stats")

    def no_shared_content(self, modality: str):
        """What the training rules read so that no model trains on files shared across
        subjects; the check runs before training; ``ancient``, so its rerun after a test
        subject's edit retrains nothing (a new shared file still stops the run)."""
        return self.ancient(self.L("shared_content", modality=modality))

    def qc_exclusion(self, modality: str) -> list[str]:
        """qc.exclude_flagged: the modality's qc.tsv, which its training rules read."""
        on = (self.plan.task(f"{modality}_qc").enabled
              and self.plan.config["qc"]["exclude_flagged"])
        return [self.L("qc_table", modality=modality)] if on else []

    def qc_out_of_fold(self, modality: str) -> list[str]:
        """The training rule's out-of-fold reconstructions, when the QC model is trained here."""
        return ([self.L("qc_out_of_fold", modality=modality)]
                if self.plan.task(f"{modality}_qc").train else [])

    def qc_config(self, modality: str) -> dict:
        """A modality's qc block with the shared flag threshold (the training's robust round)."""
        qc = self.plan.config["qc"]
        return {**qc[modality], "threshold": qc["threshold"]}

    def _seg_probs(self, subjects) -> list[str]:
        """The segmentation's label probabilities of ``subjects`` when the classifier takes them
        as channels, else none."""
        return self.L.each("imaging_probabilities", subjects) if self.with_segmentation else []

    def classify_seg_probs(self, wildcards=None):
        return self._seg_probs(self.plan.imaging_subjects)

    def classify_fit_seg_probs(self, wildcards=None):
        return self._seg_probs(self.plan.task("classifier").fit_subjects)

    def infer_extra_outputs(self) -> dict:
        """Segmentation inference also leaves the label probabilities on the normalised grid
        when the classifier takes them as channels."""
        return {"probabilities": self.L("imaging_probabilities")} if self.with_segmentation else {}

    def imaging_cohort_classify(self, wildcards):
        if not self.plan.task("classifier").enabled:
            return {}
        return {"predictions": self.L("classify_predictions"),
                "classify_metrics": self.L("classify_metrics")}

    def classify_oof(self, wildcards=None):
        return [self.L("classify_oof", fold=k) for k in self.plan.task("classifier").folds]

    def sequence_training(self):
        return targets.sequence_training(self.plan)

    def converted_dicom(self):
        return targets.dicom_conversions(self.plan)

    # ---- subjects, genetics, summary, final targets ------------------------------------------
    def subject_table_inputs(self, wildcards):
        return targets.subject_table_inputs(self.plan)

    def genetics_vcf_subjects(self):
        """The subjects whose VCFs the genotypes read (none with genetics.cohort_vcf)."""
        genetics = self.plan.genetics
        return [] if genetics.cohort_vcf else list(genetics.vcfs)

    def genetics_vcfs(self, wildcards):
        """The genotypes' VCFs: the cohort VCF, else each subject's (checked against ingest)."""
        genetics = self.plan.genetics
        if genetics.cohort_vcf:
            return [genetics.cohort_vcf]
        return [self.source("genomics", s, "vcf") for s in genetics.vcfs]

    def association_outputs(self, suffix: str):
        return targets.association_outputs(self.plan, suffix)

    def summary_inputs(self, wildcards):
        return targets.summary_inputs(self.plan)

    def demo_outputs(self):
        return targets.demo_outputs(self.plan)

    def final_outputs(self):
        return targets.final_outputs(self.plan)

    # ---- the end of a run --------------------------------------------------------------------
    def headline(self) -> list[str]:
        """The lines printed after a successful run: where the results and models are and the
        headline numbers (``voxseq.summary.headline``); none without a summary."""
        from voxseq.summary import headline

        summary = self.L("summary")
        if not os.path.isfile(summary):
            return []
        models = {}
        if self.plan.imaging:
            models["imaging"] = self.plan.task("segmentation").bundle
        if self.plan.genomics:
            models["genomics"] = self.plan.task("sequence_model").bundle
        return headline(summary, models)
