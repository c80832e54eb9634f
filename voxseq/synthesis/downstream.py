"""Downstream scoring of a synthesised channel, as BraSyn does: the cohort's segmentation model
applied with the real channel, each method's synthesised one, and zero-fill in its place.

Each scored subject's store holds the real channel; the methods' volumes were kept by scoring
(:func:`voxseq.synthesis.apply.evaluate_subject`, ``<subject>_<method>.npy`` on the store's
grid). The segmentation runs on the normalised grid (Gaussian sliding window, as inference) and
its Dice per foreground label is taken there against the store's label.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.bundle import load_bundle
from voxseq.fit import resolve_device
from voxseq.imaging.infer import predict_volume
from voxseq.imaging.store import open_store
from voxseq.io.atomic import write_json, write_tsv
from voxseq.metrics import dice_per_label

log = logging.getLogger(__name__)

#: the channel in place, in table order: the real one, the generators, the baselines
DICE_METHODS = ("real", "gan", "l1", "copy", "zero")


def channel_in_place(store, target: str, method: str, volumes_dir: str) -> np.ndarray:
    """The store's (C, X, Y, Z) volume with channel ``target`` replaced by ``method``'s
    (``real``: unchanged; ``zero``: zeros in normalised units; else the kept volume)."""
    vol = store.read_image()
    t = store.channels.index(target)
    if method == "zero":
        vol[t] = 0.0
    elif method != "real":
        path = Path(volumes_dir) / f"{store.meta['subject']}_{method}.npy"
        synth = np.load(path, allow_pickle=False)
        if synth.shape != vol.shape[1:]:
            raise VoxseqError(
                f"subject {store.meta['subject']}: {path} has shape {synth.shape}, the store "
                f"{store.path} {vol.shape[1:]}"
            )
        vol[t] = synth
    return vol


def downstream_dice(
    stores: Mapping[str, str],
    volumes_dir: str,
    seg_bundle: str,
    target: str,
    labels: Sequence[str],
    out_json: str,
    out_tsv: str,
    device: str = "auto",
) -> dict:
    """Segmentation Dice per label with each method's channel in place of ``target``.

    Parameters
    ----------
    stores
        subject -> normalised store holding every channel, the real ``target`` among them,
        and a label.
    volumes_dir
        The kept synthesised volumes; a method without a file for a subject is left out.

    Returns
    -------
    ``subjects`` (rows: subject, method, ``lesion_free``, ``dice_<label>`` (NaN for a label the
    subject's label file lacks), ``voxels_<label>`` segmented), ``means`` (method -> label ->
    mean Dice), ``drop`` (method -> label -> real minus the method's mean Dice) and the planted
    check: ``lesion_free_subjects`` (no voxel of
    the last label, the lesion) and ``lesion_free_voxels`` (method -> voxels segmented as lesion
    on them); written to ``out_json`` and the rows to ``out_tsv``.
    """
    model, meta = load_bundle(seg_bundle, "imaging")
    pre = meta["preprocessing"]
    dev = resolve_device(device)
    model.to(dev).eval()
    names = list(labels)[1:]
    rows = []
    for s in sorted(stores):
        st = open_store(stores[s])
        if st.label is None:
            raise VoxseqError(f"subject {s}: store {stores[s]} has no label to score Dice on")
        truth = np.asarray(st.label[...])
        present = np.array([(truth == k).any() for k in range(1, len(labels))])
        free = not present[-1]  # no voxel of the last label (the lesion)
        for method in DICE_METHODS:
            kept = Path(volumes_dir) / f"{s}_{method}.npy"
            if method not in ("real", "zero") and not kept.is_file():
                continue
            vol = channel_in_place(st, target, method, volumes_dir)
            pred = predict_volume(model, vol, pre, dev).argmax(0)
            dice = dice_per_label(pred, truth, len(labels))
            dice[~present] = np.nan  # a label the subject lacks: the planted check, not Dice
            rows.append(
                {"subject": s, "method": method, "lesion_free": free,
                 **{f"dice_{n}": float(d) for n, d in zip(names, dice, strict=True)},
                 **{f"voxels_{n}": int((pred == k + 1).sum()) for k, n in enumerate(names)}}
            )
        log.info("%s: %s", s, {r["method"]: r.get(f"dice_{names[-1]}") for r in rows[-5:]})
    means = {
        m: {n: float(np.nanmean([r[f"dice_{n}"] for r in rows if r["method"] == m]))
            for n in names}
        for m in DICE_METHODS
        if any(r["method"] == m for r in rows)
    }
    drop = {m: {n: means["real"][n] - v[n] for n in names} for m, v in means.items()
            if m != "real"} if "real" in means else {}
    # the planted check: on lesion-free subjects, voxels segmented as the last label (lesion)
    # with each method's channel in place; the synthesis should add none to the real channel's
    lesion_free = {
        m: int(sum(r[f"voxels_{names[-1]}"] for r in rows if r["method"] == m and r["lesion_free"]))
        for m in means
    }
    out = {"target": target, "labels": names, "subjects": rows, "means": means, "drop": drop,
           "lesion_free_subjects": sorted({r["subject"] for r in rows if r["lesion_free"]}),
           "lesion_free_voxels": lesion_free}
    write_json(out_json, out)
    write_tsv(out_tsv, rows, ["subject", "method", "lesion_free",
                              *(f"dice_{n}" for n in names), *(f"voxels_{n}" for n in names)])
    return out
