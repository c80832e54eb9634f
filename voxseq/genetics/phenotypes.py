"""Per-subject values for the subject table, each read from one pipeline output.

Every reader returns ``(values, spec)``: ``values`` subject -> {column: value} for the subjects
the source covers, ``spec`` the data-dictionary rows (column, unit, meaning, rule) of its
columns. A missing source gives no values (empty cells), never zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from voxseq.io.atomic import read_tsv

Part = tuple[dict[str, dict], list[dict]]

_SHEET = {
    "subject": ("", "subject id", "sample sheet"),
    "split": ("", "train / val / test", "sample sheet, blanks assigned from the seed"),
    "class": ("", "subject-level label", "sample sheet"),
    "batch": ("", "scanner / sequencing run", "sample sheet"),
    "age": ("years", "age", "sample sheet, a number in [0, 150]"),
    "sex": ("", "sex, M or F", "sample sheet (male/female accepted, written M/F)"),
}


def _spec(column: str, unit: str, meaning: str, rule: str) -> dict:
    return {"column": column, "unit": unit, "meaning": meaning, "rule": rule}


def sheet_spec(column: str, kind: str | None) -> dict:
    """Dictionary row of a sheet column (``covar_<name>``: a covariate of ``kind``)."""
    if column in _SHEET:
        return _spec(column, *_SHEET[column])
    return _spec(column, "", f"covariate ({kind})", "sample sheet")


def imaging_cohort(path: str | None) -> Part:
    """``volume_<label>_mm3`` per segmented subject from ``imaging/cohort.tsv``."""
    if not path:
        return {}, []
    rows = read_tsv(path)
    cols = [c for c in (rows[0] if rows else {}) if c.startswith("volume_")]
    spec = [_spec(c, "mm^3", f"volume of label {c[7:-4]}",
                  "voxels of the label in the segmentation on the subject's original grid x "
                  "voxel volume (imaging/cohort.tsv)") for c in cols]
    return {r["subject"]: {c: _float(r[c]) for c in cols} for r in rows}, spec


def lesions(segmentations: Mapping[str, str], label: tuple[str, int] | None) -> Part:
    """``<label>_count`` and ``<label>_burden_mm3`` from each subject's segmentation."""
    if not segmentations or not label:
        return {}, []
    from scipy import ndimage

    from voxseq.io.nifti import load_nifti

    name, value = label
    out = {}
    for sid, path in segmentations.items():
        vol = load_nifti(path, sid, "segmentation", dtype=None)
        mask = np.asarray(vol.data) == value
        _, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        voxel = float(np.prod(vol.spacing))
        out[sid] = {f"{name}_count": int(count), f"{name}_burden_mm3": float(mask.sum()) * voxel}
    return out, [
        _spec(f"{name}_count", "", f"number of separate {name}s",
              f"26-connected components of label {name} ({value}) in the segmentation"),
        _spec(f"{name}_burden_mm3", "mm^3", f"total {name} volume",
              f"voxels of label {name} ({value}) x voxel volume"),
    ]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a sample: the cut maximising the between-class variance (the middle
    of the empty gap when two classes are separated)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    between = np.nan_to_num(between[:-1])
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau: its middle
    return float(centres[best].mean())


def body_intensity(images: Mapping[str, Mapping[str, str | tuple[str, int]]]) -> Part:
    """``intensity_<channel>_body`` per subject: mean raw intensity inside the body.

    ``images``: subject -> {channel: NIfTI path, or (path, volume) for one volume of a 4D
    file}; the channels share the first one's grid (as ingest checks).
    """
    if not images:
        return {}, []
    from voxseq.io.nifti import load_nifti

    out, channels = {}, {}
    for sid, per_channel in images.items():
        body = None
        out[sid] = {}
        for ch, source in per_channel.items():
            path, vol = (source, None) if isinstance(source, str) else source
            data = load_nifti(path, sid, f"image ({ch})", volume=vol).data
            if body is None:  # the first channel's body mask serves all (same grid)
                body = data > otsu_threshold(data.ravel())
            out[sid][f"intensity_{ch}_body"] = float(data[body].mean()) if body.any() else None
            channels[ch] = None
    return out, [_spec(f"intensity_{ch}_body", "image units", f"mean {ch} intensity in the body",
                       "mean of the raw (scaled) voxels above Otsu's threshold of the subject's "
                       "first image, before any normalisation") for ch in channels]


def qc_table(path: str | None, modality: str) -> Part:
    """``<modality>_qc_score`` and ``<modality>_qc_flagged`` from a ``qc.tsv``."""
    if not path:
        return {}, []
    rows = read_tsv(path)
    out = {r["subject"]: {f"{modality}_qc_score": _float(r["score"]),
                          f"{modality}_qc_flagged": r["flagged"]} for r in rows}
    return out, [
        _spec(f"{modality}_qc_score", "robust z", f"{modality} QC outlier score",
              "robust score of the autoencoder's reconstruction error (qc.tsv)"),
        _spec(f"{modality}_qc_flagged", "true/false", f"{modality} QC flag",
              "score above qc threshold (qc.tsv)"),
    ]


def classifier(path: str | None) -> Part:
    """``classify_predicted`` and ``classify_prob_<class>`` from ``predictions.tsv``."""
    if not path:
        return {}, []
    rows = read_tsv(path)
    probs = [c for c in (rows[0] if rows else {}) if c.startswith("prob_")]
    out = {r["subject"]: {"classify_predicted": r["predicted"] or None,
                          **{f"classify_{c}": _float(r[c]) for c in probs}} for r in rows}
    spec = [_spec("classify_predicted", "", "predicted class", "subject classifier "
                  "(out-of-fold where cross-validated; imaging/classify/predictions.tsv)")]
    spec += [_spec(f"classify_{c}", "probability", f"classifier probability of {c[5:]}",
                   "subject classifier (predictions.tsv)") for c in probs]
    return out, spec


def coverage(stores: Mapping[str, str]) -> Part:
    """``reads_passing`` and ``library_scale`` from each coverage store's attributes."""
    if not stores:
        return {}, []
    import h5py

    out = {}
    for sid, path in stores.items():
        with h5py.File(path, "r") as h5:
            out[sid] = {"reads_passing": int(h5.attrs["library_size"]),
                        "library_scale": float(h5.attrs["scale"])}
            norm = str(h5.attrs.get("normalisation", ""))
    return out, [
        _spec("reads_passing", "reads", "reads counted in the coverage",
              "mapped reads passing genomics.min_mapq and genomics.exclude_flags"),
        _spec("library_scale", "per read", "coverage normalisation factor",
              f"genomics.normalisation ({norm}) factor from the passing reads"),
    ]


def regions(qc_path: str | None, regions_path: str | None) -> Part:
    """``cnv_regions`` and ``cnv_regions_bp`` per genomics-QC-scored subject."""
    if not qc_path or not regions_path:
        return {}, []
    scored = {r["subject"] for r in read_tsv(qc_path) if r.get("score") not in ("", None)}
    out = {s: {"cnv_regions": 0, "cnv_regions_bp": 0} for s in scored}
    for r in read_tsv(regions_path):
        if r["subject"] in out:
            out[r["subject"]]["cnv_regions"] += 1
            out[r["subject"]]["cnv_regions_bp"] += int(r["end"]) - int(r["start"])
    rule = "runs of coarse bins with large same-signed residual z (genomics/qc/qc_regions.tsv)"
    return out, [_spec("cnv_regions", "regions", "candidate copy-number regions", rule),
                 _spec("cnv_regions_bp", "bp", "length of candidate copy-number regions", rule)]


def _float(v: str | None) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None

