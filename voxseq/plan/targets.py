"""The files a run must make, read off the plan: final targets, the summary's inputs, the demo's
outputs, and the sequence model's training jobs. The rules' input functions return these."""

from __future__ import annotations

import os

from voxseq.plan.model import RunPlan

QC_FIGURES = {"imaging": "qc_reconstructions.png", "genomics": "qc_profiles.png"}


def qc_outputs(plan: RunPlan) -> list[str]:
    """The QC tables and figures of every modality with QC on (final targets)."""
    L = plan.layout
    out = []
    for modality in ("imaging", "genomics"):
        if plan.task(f"{modality}_qc").enabled:
            out.append(L("qc_json", modality=modality))
            out.append(f"{L(f'{modality}_report')}/{QC_FIGURES[modality]}")
    return out


def genetics_outputs(plan: RunPlan) -> list[str]:
    """The association's files, one Manhattan and one QQ plot per phenotype (with lambda GC)."""
    if not plan.genetics.enabled:
        return []
    folder = plan.layout("association")
    return [plan.layout("association_json"), plan.layout("genotype_summary"),
            *(f"{folder}/{p}_{kind}.png" for p in plan.genetics.phenotypes
              for kind in ("manhattan", "qq"))]


def synthesis_outputs(plan: RunPlan) -> dict[str, str | list[str]]:
    """The synthesis's files: scores (when any subject is scored), downstream Dice, and each
    incomplete subject's synthesised channel (NIfTI)."""
    if not plan.task("synthesis").enabled:
        return {}
    from voxseq.plan.synthesis import synthesis_settings

    L, syn = plan.layout, synthesis_settings(plan)
    out: dict[str, str | list[str]] = {
        "synthesis_nifti": [
            L("synthesis_nifti", subject=s, channel=syn["target"]) for s in syn["incomplete"]
        ]
    }
    if syn["scored"]:
        out["synthesis"] = L("synthesis_metrics")
    if syn["dice"]:
        out["synthesis_dice"] = L("synthesis_dice")
    return out


def final_outputs(plan: RunPlan) -> list[str]:
    """What ``rule all`` asks for besides the report figures."""
    L = plan.layout
    out = [L("summary"), L("plan"), L("subject_table"), L("subject_columns")]
    if plan.imaging:
        out.append(L("imaging_table"))
    if plan.genomics:
        out.append(L("genomics_cohort"))
    for v in synthesis_outputs(plan).values():
        out += v if isinstance(v, list) else [v]
    return out + qc_outputs(plan) + genetics_outputs(plan) + subject_model_outputs(plan)


def summary_inputs(plan: RunPlan) -> dict[str, str]:
    """The summary rule's inputs, by the name its script reads them under."""
    L = plan.layout
    out = {}
    if plan.imaging:
        out["imaging"] = L("imaging_cohort")
        out["imaging_report"] = f"{L('imaging_report')}/dice_boxplot.png"
        if plan.task("segmentation").train:
            out["imaging_curves"] = f"{L('imaging_report')}/training_curves.png"
    if plan.genomics:
        out["genomics"] = L("genomics_cohort")
        out["genomics_motifs"] = L("genomics_motifs")
    if len(plan.task("sequence_model").archs) > 1:  # the architectures side by side
        out["genomics_compare"] = L("genomics_compare")
        out["genomics_compare_figure"] = f"{L('genomics_report')}/genomics_arch_comparison.png"
    for modality in ("imaging", "genomics"):
        if plan.task(f"{modality}_qc").enabled:
            out[f"{modality}_qc"] = L("qc_json", modality=modality)
    out.update({k: v for k, v in synthesis_outputs(plan).items() if k != "synthesis_nifti"})
    if plan.genetics.enabled:
        out["association"] = L("association_json")
        out["genotypes"] = L("genotype_summary")
        if plan.demo and plan.config["demo"]["imaging"]:  # the planted QTL, recovered or not
            out["qtl_truth"] = L("demo_qtl_truth")
    if plan.task("subject_model").train:
        out["subject_model"] = L("subject_metrics")
    return out


def demo_outputs(plan: RunPlan) -> list[str]:
    """Every file the demo writes besides its sheet; indexes too, as Snakemake touches declared
    outputs, which would leave them older than the files they index."""
    L, demo = plan.layout, plan.config["demo"]
    files = [L("demo_reference"), L("demo_variant_truth")] if demo["genomics"] else []
    files += ([L("demo_qtl_truth"), L("demo_outcome_truth")]
              if demo["genomics"] and demo["imaging"] else [])
    if plan.qc_truth:
        files.append(plan.qc_truth)
    for row in plan.subjects.values():
        files += [row[c] for c in ("image", *plan.channel_columns, "label", "bam", "vcf") if row[c]]
        files += [row["bam"] + ".bai"] if row["bam"] else []
        files += [row["vcf"] + ".tbi"] if row["vcf"] else []
    return files


def sequence_training(plan: RunPlan) -> dict[str, str | None]:
    """The sequence model's training job(s): one into the cohort's bundle, or (with several
    architectures, ``genomics.model.compare``) one per architecture into a candidate bundle, the
    best of which ``genomics_select`` copies to the cohort's bundle."""
    L, seq = plan.layout, plan.task("sequence_model")
    if len(seq.archs) > 1:
        return {
            "bundle": L("genomics_candidate_bundle"),
            "metrics": L("genomics_candidate_metrics"),
            "workdir": L("genomics_candidate_checkpoints"),
            "step": "genomics/train/{arch}",
            "arch": "{arch}",
        }
    return {
        "bundle": seq.bundle,
        "metrics": L("genomics_train_metrics"),
        "workdir": L("genomics_checkpoints"),
        "step": "genomics/train",
        "arch": seq.archs[0] if seq.archs else None,
    }


def subject_table_inputs(plan: RunPlan) -> dict[str, str | list[str]]:
    """What the subject table joins: every modality's cohort outputs this run makes."""
    L, out = plan.layout, {}
    if plan.imaging:
        out["imaging_table"] = L("imaging_table")
        out["segs"] = L.each("imaging_seg", plan.imaging_subjects)
    if plan.task("imaging_qc").enabled:
        out["imaging_qc"] = L("qc_table", modality="imaging")
    if plan.task("classifier").enabled:
        out["predictions"] = L("classify_predictions")
    if plan.genomics:
        out["coverage"] = L.each("genomics_coverage", plan.genomics_subjects)
    if plan.task("genomics_qc").enabled:
        out["genomics_qc"] = L("qc_table", modality="genomics")
        out["genomics_regions"] = L("qc_regions", modality="genomics")
    return out


def association_outputs(plan: RunPlan, suffix: str) -> list[str]:
    """One file per phenotype in the association folder: ``<phenotype>_<suffix>`` (figures) or
    ``<phenotype>.<suffix>`` (the glm.linear tables)."""
    sep = "." if suffix == "glm.linear" else "_"
    return [f"{plan.layout('association')}/{p}{sep}{suffix}" for p in plan.genetics.phenotypes]


def dicom_conversions(plan: RunPlan) -> dict[str, dict[str, str]]:
    """subject -> {column: the NIfTI its DICOM folder converts to, absolute}: the resolved sheet
    names the NIfTI, so every rule after ingest reads it as it reads any image."""
    out: dict[str, dict[str, str]] = {}
    for subject, column in plan.dicom:
        path = plan.layout("dicom_image", subject=subject, column=column)
        out.setdefault(subject, {})[column] = os.path.abspath(os.path.join(plan.workdir, path))
    return out


def synthesis_figures(plan: RunPlan) -> dict[str, str]:
    """The synthesis's report figures (``imaging/report/synthesis_<name>.png``) -> title."""
    syn = plan.task("synthesis")
    if not (syn.enabled and plan.synthesis_scored):
        return {}
    out = {"grid": "test subjects (inputs, real, synthesised, error)"}
    if syn.train:
        out["curves"] = "generators' training curves"
    return out


def subject_feature_inputs(plan: RunPlan) -> dict[str, str | list[str]]:
    """What the genomics subject features read: every genomics subject's coverage store, the
    genomics QC bundle (its latent code), the demo reference (its motif sites) or a BED file."""
    L, sm = plan.layout, plan.subject_model
    out: dict[str, str | list[str]] = {"stores": L.each("genomics_coverage",
                                                       plan.genomics_subjects)}
    if sm.qc_latent:
        qc = plan.task("genomics_qc").bundle
        out["qc_bundle"] = [f"{qc}/bundle.json", f"{qc}/weights.safetensors"]
    if sm.regions == "demo":
        out["reference"] = plan.reference
    elif sm.regions:
        out["regions"] = sm.regions
    return out


def subject_model_inputs(plan: RunPlan) -> dict[str, str | list[str]]:
    """What training (or applying) the subject model reads: the sheet, the classifier's
    predictions (out of fold for its cross-validated subjects, the fold ensemble's for the
    others), the genomics features, the bundle when applied, and with
    ``subject_model.imaging.embeddings`` the classifier's fold networks (trained here) or its
    bundle (applied) with the imaging inputs they read."""
    L, task, cls = plan.layout, plan.task("subject_model"), plan.task("classifier")
    out: dict[str, str | list[str]] = {"sheet": L("sheet"),
                                       "predictions": L("classify_predictions"),
                                       "features": L("subject_features")}
    if task.apply:
        out["bundle"] = [f"{task.bundle}/bundle.json", f"{task.bundle}/weights.safetensors"]
    if plan.subject_model.embeddings:
        out["stores"] = L.each("imaging_store", plan.imaging_subjects)
        if len(cls.channels) > 1:  # the classifier takes the segmentation's probabilities
            out["seg_probs"] = L.each("imaging_probabilities", plan.imaging_subjects)
        if cls.train:
            out["folds"] = [L("classify_fold", fold=k) for k in cls.folds]
            out["weights"] = [L("classify_weights", fold=k) for k in cls.folds]
        else:
            out["classifier"] = [f"{cls.bundle}/bundle.json", f"{cls.bundle}/weights.safetensors"]
    return out


def subject_model_outputs(plan: RunPlan) -> list[str]:
    """The subject model's final targets: its metrics and ROC figure (trained here) or its
    predictions (applied)."""
    task, L = plan.task("subject_model"), plan.layout
    if task.train:
        return [L("subject_metrics"), L("subject_roc"), f"{task.bundle}/bundle.json"]
    return [L("subject_predictions")] if task.apply else []
