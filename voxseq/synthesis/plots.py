"""Figures of the missing-sequence synthesis: test subjects side by side, and both generators'
training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from voxseq.figures import as_float, pyplot, save_figure
from voxseq.imaging.store import open_store
from voxseq.io.atomic import read_tsv


def lesion_slice(label: np.ndarray | None, shape: Sequence[int]) -> int:
    """The axial slice with the most labelled voxels of the last label (the lesion), else the
    middle one."""
    if label is not None and label.max() > 0:
        counts = (label == label.max()).sum(axis=(0, 1))
        return int(np.argmax(counts))
    return int(shape[2]) // 2


def synthesis_grid(
    stores: Mapping[str, str], volumes_dir: str, target: str, method: str, out_png: str
) -> None:
    """One row per test subject: each available input channel, the real ``target``, the
    ``method``'s synthesised one and their absolute difference, on the same axial slice (the
    lesion's largest); real and synthesised share the real channel's 0.5-99.5 percentile window,
    the error is shown from 0 to half that window."""
    plt = pyplot()
    subjects = sorted(stores)
    first = open_store(stores[subjects[0]])
    inputs = [c for c in first.channels if c != target]
    cols = [*inputs, f"{target} (real)", f"{target} ({method})", "|error|"]
    fig, axes = plt.subplots(len(subjects), len(cols), figsize=(2.2 * len(cols),
                                                                 2.2 * len(subjects)),
                             squeeze=False)
    for i, s in enumerate(subjects):
        st = open_store(stores[s])
        vol = st.read_image()
        label = np.asarray(st.label[...]) if st.label is not None else None
        z = lesion_slice(label, st.shape)
        real = vol[st.channels.index(target)]
        synth = np.load(Path(volumes_dir) / f"{s}_{method}.npy", allow_pickle=False)
        lo, hi = np.percentile(real, [0.5, 99.5])
        panels = [(vol[st.channels.index(c)][:, :, z], None) for c in inputs]
        panels += [(real[:, :, z], (lo, hi)), (synth[:, :, z], (lo, hi)),
                   (np.abs(synth - real)[:, :, z], (0.0, (hi - lo) / 2))]
        for j, (img, window) in enumerate(panels):
            ax = axes[i, j]
            kw = {"vmin": window[0], "vmax": window[1]} if window else {}
            ax.imshow(np.rot90(img), cmap="magma" if j == len(cols) - 1 else "gray", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
        axes[i, 0].set_ylabel(f"{s}\nslice {z}", fontsize=8)
    save_figure(fig, out_png)


def synthesis_curves(train_metrics: str, out_png: str) -> None:
    """Both generators' training loss (L1 x weight, plus the adversarial term for the GAN) and
    validation SSIM per epoch."""
    plt = pyplot()
    rows = read_tsv(train_metrics)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for variant, name in (("l1", "L1 only"), ("gan", "GAN")):
        mine = [r for r in rows if r["variant"] == variant]
        ep = [int(r["epoch"]) + 1 for r in mine]
        a.plot(ep, [as_float(r["train_loss"]) for r in mine], marker=".", label=name)
        b.plot(ep, [as_float(r["score"]) for r in mine], marker=".", label=name)
    a.set(xlabel="epoch", ylabel="generator training loss", title="Training loss")
    b.set(xlabel="epoch", ylabel="SSIM in the body", title="Validation")
    for ax in (a, b):
        ax.legend(fontsize=8)
    save_figure(fig, out_png)
