"""Classifier prediction: every subject's class probabilities, their metrics and figures."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from voxseq import VoxseqError
from voxseq.bundle import load_bundle
from voxseq.fit import resolve_device
from voxseq.imaging.classify.data import stack_inputs
from voxseq.io.atomic import read_tsv, write_json, write_tsv

log = logging.getLogger(__name__)


def predict_proba(
    model: torch.nn.Module,
    x: torch.Tensor | np.ndarray,
    device,
    batch_size: int = 8,
    ensemble: bool = False,
) -> np.ndarray:
    """Class probabilities (N, K); ``ensemble`` models already return probabilities."""
    x = torch.as_tensor(x)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            y = model(x[i : i + batch_size].to(device)).float()
            out.append((y if ensemble else y.softmax(1)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def predict_cohort(
    sheet: str,
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    bundle: str,
    oof_tables: Sequence[str],
    out_tsv: str,
    device: str = "auto",
) -> tuple[list[dict], list[str], dict]:
    """Every imaging subject's class probabilities: out-of-fold for the cross-validated subjects
    (from ``oof_tables``), the fold ensemble's for the rest (test split, new cohorts).

    Returns the prediction rows (also written to ``out_tsv``), the class names and the model.
    """
    model, meta = load_bundle(bundle, "imaging")
    pre = meta["preprocessing"]
    names = list(pre["classes"])
    rows = {r["subject"]: r for r in read_tsv(sheet)}
    oof = {r["subject"]: r for t in oof_tables for r in read_tsv(t)}
    need = [s for s in stores if s not in oof]
    dev = resolve_device(device)
    model.to(dev)
    proba = {}
    if need:
        x = stack_inputs(need, stores, seg_probs, pre["input_size"], pre.get("crop", "none"))
        proba = dict(zip(need, predict_proba(model, x, dev, ensemble=True), strict=True))
    model.to("cpu")
    out = []
    for s in stores:
        if s in oof:
            p = np.array([float(oof[s][f"prob_{c}"]) for c in names])
            fold = oof[s]["fold"]
        else:
            p, fold = proba[s], "ensemble"
        truth = rows.get(s, {}).get("class", "")
        if truth and truth not in names:
            raise VoxseqError(
                f"subject {s}: class {truth!r} in {sheet} is not one of the classifier's "
                f"classes {names} (bundle {bundle})"
            )
        out.append(
            {
                "subject": s,
                "split": rows.get(s, {}).get("split", ""),
                "fold": fold,
                "true": truth,
                "predicted": names[int(np.argmax(p))],
                **{f"prob_{c}": round(float(v), 6) for c, v in zip(names, p, strict=True)},
            }
        )
    write_tsv(
        out_tsv,
        out,
        ["subject", "split", "fold", "true", "predicted", *[f"prob_{c}" for c in names]],
    )
    return out, names, {"model": model, "meta": meta}


def _truth_proba(rows: Sequence[dict], names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    truth = [r["true"] for r in rows]
    proba = np.array([[float(r[f"prob_{c}"]) for c in names] for r in rows]).reshape(
        len(rows), len(names)
    )
    return truth, proba


def classify_cohort(
    sheet: str,
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    bundle: str,
    oof_tables: Sequence[str],
    outputs: dict[str, str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    report_subjects: int = 6,
    device: str = "auto",
) -> dict:
    """Predict every subject, score the predictions, draw the report figures.

    Writes ``outputs["predictions"]`` (subject, split, fold, true, predicted, ``prob_<class>``),
    ``outputs["metrics"]`` (``oof``: the cross-validated subjects' out-of-fold predictions;
    ``test``: the test split's subjects with a class, predicted by the fold ensemble; each with
    accuracy, balanced accuracy, macro F1, AUROC and its 95 % bootstrap interval, confusion
    matrix; ``folds``: AUROC per fold) and the figures ``roc``, ``confusion`` and ``grid`` (test
    subjects' central slices with the ensemble's Grad-CAM for the predicted class).
    """
    from voxseq.imaging.plots import classification_grid, confusion_heatmap, roc_curves
    from voxseq.metrics import classification_metrics
    from voxseq.models.gradcam import grad_cam

    rows, names, loaded = predict_cohort(
        sheet, stores, seg_probs, bundle, oof_tables, outputs["predictions"], device
    )
    oof = [r for r in rows if r["fold"] != "ensemble" and r["true"]]
    test = [r for r in rows if r["fold"] == "ensemble" and r["true"] and r["split"] == "test"]
    metrics: dict = {"classes": names, "oof": None, "test": None, "folds": []}
    if oof:
        metrics["oof"] = classification_metrics(
            *_truth_proba(oof, names), names, n_bootstrap=n_bootstrap, seed=seed
        )
    if test:
        metrics["test"] = classification_metrics(
            *_truth_proba(test, names), names, n_bootstrap=n_bootstrap, seed=seed
        )
    folds = []
    for k in sorted({int(r["fold"]) for r in oof}):
        fold_rows = [r for r in oof if int(r["fold"]) == k]
        truth, proba = _truth_proba(fold_rows, names)
        fold_metrics = classification_metrics(truth, proba, names, n_bootstrap=0)
        metrics["folds"].append(
            {"fold": k, "n": len(fold_rows), "auroc": fold_metrics.get("auroc")}
        )
        folds.append((f"fold {k + 1}", truth, proba))
    metrics["bundle"] = bundle
    write_json(outputs["metrics"], metrics)
    for part in ("oof", "test"):
        m = metrics[part]
        if m:
            log.info(
                "%s: n %d, AUROC %s, balanced accuracy %.3f",
                part,
                m["n"],
                m.get("auroc"),
                m["balanced_accuracy"],
            )
    roc_curves(folds, names, outputs["roc"], _truth_proba(test, names) if test else None)
    matrices = {
        label: metrics[part]["confusion_matrix"]
        for part, label in (("oof", "out-of-fold"), ("test", "test"))
        if metrics[part]
    }
    confusion_heatmap(matrices, names, outputs["confusion"])
    # the report grid: the first test subjects with a class, and the ensemble's Grad-CAM
    model, pre = loaded["model"], loaded["meta"]["preprocessing"]
    grid = []
    for r in test[:report_subjects]:
        s = r["subject"]
        x = stack_inputs([s], stores, seg_probs, pre["input_size"], pre.get("crop", "none"))[0]
        cam = grad_cam(model, torch.from_numpy(x)[None], names.index(r["predicted"]))[0]
        image, cam = (x[0], cam) if x.ndim == 4 else (x[0][..., None], cam[..., None])
        grid.append(
            {
                "image": image,
                "cam": cam,
                "title": f"{s}: true {r['true']} / predicted {r['predicted']} / "
                f"p {float(r['prob_' + r['predicted']]):.2f}",
            }
        )
    classification_grid(grid, outputs["grid"])
    return metrics
