"""Where every file of a run lives: one table of path templates, read by the rules and the plan.

Results go under ``results/<cohort>/``; rule logs and benchmark files mirror the output paths
under ``results/<cohort>/logs/`` and ``results/<cohort>/benchmarks/``. Model bundles live apart,
under ``models/<cohort>/<task>/``, because a bundle trained on one cohort is applied to another.

A template names its wildcards in braces (``{subject}``, ``{fold}``, ``{arch}``): asking for a
path without a value keeps the wildcard (a rule's output pattern); with values, the fields are
filled (a concrete input).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: name -> path under ``results/<cohort>/``
RESULTS = {
    # the run as a whole
    "plan": "plan.json",
    "sheet": "sheet.tsv",
    "sheet_record": "sheet.sources.json",  # what cohort_sheet read (digests; see common.smk)
    "summary": "summary.json",
    "demo_dir": "demo_input",
    "demo_sheet": "demo_input/samples.tsv",
    "demo_reference": "demo_input/reference.fa",
    "demo_variant_truth": "demo_input/genomics/variant_truth.tsv",
    "qc_truth": "demo_input/qc_truth.tsv",
    "landing": "report/landing.html",
    "results_page": "report/results.html",
    # imaging
    "dicom_image": "imaging/dicom/{subject}/{column}.nii.gz",  # a DICOM series, converted
    "dicom_record": "imaging/dicom/{subject}/{column}.json",
    "imaging_ingest": "imaging/ingest/{subject}.json",
    "imaging_fg": "imaging/ingest/{subject}.fg.npy",
    "shared_content": "{modality}/shared_files.json",  # identical files across subjects, allowed
    "imaging_stats": "imaging/normalise/intensity_stats.json",
    "imaging_store": "imaging/normalise/{subject}.zarr",
    "imaging_tiles": "imaging/tile/{subject}.tsv",
    # missing-sequence synthesis: an incomplete subject's store completed with the synthesised
    # channel (what inference, the classifier and QC read), and the channel as NIfTI
    "synthesis_store": "imaging/synthesis/stores/{subject}.zarr",
    "synthesis_nifti": "imaging/synthesis/{subject}_{channel}_synth.nii.gz",
    "synthesis_record": "imaging/synthesis/stores/{subject}.json",
    "synthesis_metrics": "imaging/synthesis/metrics.json",
    "synthesis_metrics_table": "imaging/synthesis/metrics.tsv",
    "synthesis_train_metrics": "imaging/synthesis/train_metrics.tsv",
    "synthesis_checkpoints": "imaging/synthesis/checkpoints",
    "synthesis_volumes": "imaging/synthesis/scored",  # test subjects' synthesised volumes
    "synthesis_dice": "imaging/synthesis/dice.json",
    "synthesis_dice_table": "imaging/synthesis/dice.tsv",
    "imaging_train_metrics": "imaging/train/metrics.tsv",
    "imaging_checkpoints": "imaging/train/checkpoints",
    "imaging_seg": "imaging/infer/{subject}_seg.nii.gz",
    "imaging_probabilities": "imaging/infer/{subject}_probabilities.npy",
    "imaging_result": "imaging/infer/{subject}.json",
    "imaging_table": "imaging/cohort.tsv",
    "imaging_cohort": "imaging/cohort.json",
    "imaging_report": "imaging/report",
    "classify_weights": "imaging/classify/fold{fold}/weights.safetensors",
    "classify_fold": "imaging/classify/fold{fold}/fold.json",
    "classify_oof": "imaging/classify/fold{fold}/oof.tsv",
    "classify_fold_metrics": "imaging/classify/fold{fold}/metrics.tsv",
    "classify_predictions": "imaging/classify/predictions.tsv",
    "classify_metrics": "imaging/classify/metrics.json",
    # genomics
    "reference_contigs": "genomics/ingest/reference_contigs.tsv",
    "reference_record": "genomics/ingest/reference.json",  # what genomics_reference read
    "genomics_ingest": "genomics/ingest/{subject}.json",
    "genomics_coverage": "genomics/coverage/{subject}.h5",
    "genomics_windows": "genomics/tile/windows.h5",
    "genomics_window_table": "genomics/tile/windows.tsv",
    "genomics_candidates": "genomics/train",
    "genomics_candidate_bundle": "genomics/train/{arch}/bundle",
    "genomics_candidate_metrics": "genomics/train/{arch}/metrics.tsv",
    "genomics_candidate_checkpoints": "genomics/train/{arch}/checkpoints",
    "genomics_train_metrics": "genomics/train/metrics.tsv",
    "genomics_checkpoints": "genomics/train/checkpoints",
    "genomics_compare": "genomics/train/compare.json",
    "genomics_compare_table": "genomics/train/compare.tsv",
    "genomics_bigwig": "genomics/infer/bigwig",
    "genomics_pearson": "genomics/infer/test_pearson.tsv",
    "genomics_variants": "genomics/infer/variant_scores.tsv",
    "genomics_cohort": "genomics/cohort.json",
    "genomics_attributions": "genomics/interpret/attributions.h5",
    "genomics_meme": "genomics/motifs/motifs.meme",
    "genomics_motifs": "genomics/motifs/motifs.json",
    "genomics_report": "genomics/report",
    # one row per subject, and imaging genetics
    "subject_table": "subjects.tsv",
    "subject_columns": "subjects.columns.tsv",
    "genotypes": "genetics/genotypes",  # PLINK 1 prefix: .bed/.bim/.fam (+ .dosage.npy)
    "genotype_qc": "genetics/genotype_qc.tsv",  # per variant; per subject: .samples.tsv beside
    "genotype_summary": "genetics/genotypes.json",
    "association": "genetics/association",  # <phenotype>.glm.linear, _manhattan.png, _qq.png
    "association_json": "genetics/association/association.json",
    "demo_qtl_truth": "demo_input/genomics/qtl_truth.tsv",
    "demo_outcome_truth": "demo_input/outcome_truth.tsv",  # the planted outcome (both modalities)
    # the subject model: imaging, genomics and both fused, on the classifier's folds
    "subject_features": "subject_model/genomics_features.tsv",  # raw, one row per subject
    "subject_embeddings": "subject_model/embeddings/fold{fold}.tsv",  # classifier fold k's
    "subject_predictions": "subject_model/predictions.tsv",  # out of fold (applied: the bundle's)
    "subject_metrics": "subject_model/metrics.json",
    "subject_roc": "subject_model/subject_model_roc.png",
    # quality control, per modality
    "qc_train_metrics": "{modality}/qc/train_metrics.tsv",
    "qc_out_of_fold": "{modality}/qc/out_of_fold.npz",
    "qc_checkpoints": "{modality}/qc/checkpoints",
    "qc_table": "{modality}/qc/qc.tsv",
    "qc_latent": "{modality}/qc/latent.tsv",
    "qc_json": "{modality}/qc/qc.json",
    "qc_regions": "{modality}/qc/qc_regions.tsv",
    "qc_error_map": "{modality}/qc/{subject}_qc_error.nii.gz",
}

#: task -> the config key under ``models:`` that applies a bundle, and the bundle's folder name
#: under ``models/<cohort>/`` when the task trains here
BUNDLE_FOLDERS = {
    "segmentation": ("imaging", "imaging"),
    "classifier": ("imaging_classify", "imaging_classify"),
    "synthesis": ("imaging_synthesis", "imaging_synthesis"),
    "sequence_model": ("genomics", "genomics"),
    "imaging_qc": ("imaging_qc", "imaging_qc"),
    "genomics_qc": ("genomics_qc", "genomics_qc"),
    "subject_model": ("subject_model", "subject_model"),
}

_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: object) -> str:
    """``template`` with the named ``{fields}`` filled; fields without a value stay wildcards.

    >>> fill("{modality}/qc/{subject}.tsv", modality="imaging")
    'imaging/qc/{subject}.tsv'
    """
    return _FIELD.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


@dataclass(frozen=True)
class Layout:
    """Every results, log, benchmark and model path of one cohort's run.

    Parameters
    ----------
    cohort
        The config's ``cohort``: results go under ``results/<cohort>/``.
    """

    cohort: str

    @property
    def res(self) -> str:
        return f"results/{self.cohort}"

    def __call__(self, name: str, **values: object) -> str:
        """The path called ``name`` in :data:`RESULTS`, wildcards filled from ``values``."""
        return f"{self.res}/{fill(RESULTS[name], **values)}"

    def each(self, name: str, subjects: Iterable[str], **values: object) -> list[str]:
        """The path ``name`` for every subject (an ``expand`` over subjects)."""
        return [self(name, subject=s, **values) for s in subjects]

    def log(self, step: str) -> str:
        """A rule's log file: ``results/<cohort>/logs/<step>.log`` (``step`` may hold wildcards,
        mirroring the rule's output path)."""
        return f"{self.res}/logs/{step}.log"

    def bench(self, step: str) -> str:
        """A rule's ``benchmark:`` file, beside its log under ``benchmarks/``."""
        return f"{self.res}/benchmarks/{step}.tsv"

    @property
    def benchmarks(self) -> str:
        return f"{self.res}/benchmarks"

    def bundle(self, task: str) -> str:
        """Where ``task`` writes the bundle it trains: ``models/<cohort>/<folder>``."""
        return f"models/{self.cohort}/{BUNDLE_FOLDERS[task][1]}"
