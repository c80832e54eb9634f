"""Cohort-level imaging outputs: the per-subject table, cohort metrics and overlay slices.

Kept free of torch so that the table and report rules run in the light imaging/report envs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from voxseq.io.atomic import read_tsv, write_json, write_tsv
from voxseq.io.nifti import load_nifti


def cohort_table(
    sheet: str,
    results: dict[str, str],
    labels: list[str],
    out_tsv: str,
    out_json: str,
    predictions: str | None = None,
    classify_metrics: str | None = None,
) -> dict:
    """One row per subject (split, class, channels synthesised, Dice per label, volumes);
    cohort metrics JSON (``n_synthetic``: subjects with a synthesised channel).

    ``imaging.test_dice_mean`` is the mean over test-split subjects with a label and over
    foreground labels (labels absent from both prediction and truth are skipped).

    With the subject classifier's ``predictions`` (``classify/predictions.tsv``) and
    ``classify_metrics`` (``classify/metrics.json``), each row gains ``predicted_class`` and its
    probability ``class_probability``, and the metrics gain ``classify_oof_auroc``,
    ``classify_test_auroc`` and ``classify_balanced_accuracy`` (out-of-fold when the classifier
    was cross-validated here, else on the test split).
    """
    predicted = {r["subject"]: r for r in read_tsv(predictions)} if predictions else {}
    rows_in = {r["subject"]: r for r in read_tsv(sheet)}
    fg = labels[1:]
    rows, test_dice, per_label = [], [], {name: [] for name in fg}
    digests = set()
    for sid in sorted(results):
        res = json.loads(Path(results[sid]).read_text())
        digests.add(res["bundle_digest"])
        row = {
            "subject": sid,
            "split": rows_in[sid]["split"],
            "class": rows_in[sid]["class"],
            "labelled": "yes" if res["dice"] else "no",
            "synthetic_channels": ",".join(res.get("synthetic_channels") or []),
        }
        if predictions:
            p = predicted.get(sid, {})
            row["predicted_class"] = p.get("predicted", "")
            row["class_probability"] = p.get(f"prob_{p['predicted']}", "") if p else ""
        for name in fg:
            row[f"dice_{name}"] = (res["dice"] or {}).get(name)
            row[f"volume_{name}_mm3"] = res["volumes_mm3"][name]
        rows.append(row)
        if res["dice"] and row["split"] == "test":
            vals = [v for v in res["dice"].values() if v is not None]
            test_dice.extend(vals)
            for name in fg:
                if res["dice"].get(name) is not None:
                    per_label[name].append(res["dice"][name])
    columns = ["subject", "split", "class", "labelled", "synthetic_channels"]
    columns += ["predicted_class", "class_probability"] if predictions else []
    columns += [f"dice_{n}" for n in fg] + [f"volume_{n}_mm3" for n in fg]
    write_tsv(out_tsv, rows, columns)
    summary = {
        "n_subjects": len(rows),
        "n_labelled": sum(r["labelled"] == "yes" for r in rows),
        "n_test_labelled": len(
            {r["subject"] for r in rows if r["split"] == "test" and r["labelled"] == "yes"}
        ),
        "test_dice_mean": float(np.mean(test_dice)) if test_dice else None,
        "test_dice_per_label": {
            n: (float(np.mean(v)) if v else None) for n, v in per_label.items()
        },
        "bundle_digests": sorted(digests),
        "n_synthetic": sum(bool(r["synthetic_channels"]) for r in rows),
    }
    if classify_metrics:
        summary.update(classify_summary(json.loads(Path(classify_metrics).read_text())))
    write_json(out_json, summary)
    return summary


def classify_summary(metrics: dict) -> dict:
    """The classifier's headline numbers from its ``metrics.json``."""
    oof, test = metrics.get("oof") or {}, metrics.get("test") or {}
    return {
        "classify_classes": metrics.get("classes"),
        "classify_oof_auroc": oof.get("auroc"),
        "classify_oof_auroc_ci95": oof.get("auroc_ci95"),
        "classify_test_auroc": test.get("auroc"),
        "classify_test_auroc_ci95": test.get("auroc_ci95"),
        "classify_balanced_accuracy": (oof or test).get("balanced_accuracy"),
        "classify_test_balanced_accuracy": test.get("balanced_accuracy"),
        "classify_n_oof": oof.get("n", 0),
        "classify_n_test": test.get("n", 0),
    }


def overlay_slices(image_path: str, seg_path: str, label_path: str | None, subject: str):
    """Axial slice (canonical RAS) with the most foreground: image (the first channel: the
    first volume of a 4D image), prediction, truth.

    Returns float32 (Y, X) copies of the three slices (None for a missing label). The label
    and segmentation are read in their stored integer type and the image only once the slice
    is chosen, and no full volume outlives the call.
    """
    seg = load_nifti(seg_path, subject, "segmentation", dtype=None).data
    lab = load_nifti(label_path, subject, "label", dtype=None).data if label_path else None
    ref = lab if lab is not None else seg
    z = int(np.argmax((ref > 0).sum(axis=(0, 1))))
    seg_z = seg[:, :, z].T.astype(np.float32)
    lab_z = lab[:, :, z].T.astype(np.float32) if lab is not None else None
    del seg, lab, ref
    img = load_nifti(image_path, subject, "image", volume=0).data
    return np.ascontiguousarray(img[:, :, z].T), seg_z, lab_z
