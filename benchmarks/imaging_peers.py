"""voxseq's imaging resampling, sliding window and training-patch loading against MONAI / TorchIO.

Peers come from the ``bench`` extra (``pip install -c constraints.txt -e ".[bench]"``); they are
imported here only, never by voxseq. Inputs are synthetic and seeded: a 197x233x189 1 mm head-like
volume (zeros outside an ellipsoid) with a 3-class label, resampled to the demo's 1.5x1.5x2.5 mm.

    python benchmarks/imaging_peers.py                  # all three parts, 5 interleaved repeats
    python benchmarks/imaging_peers.py --parts resample --repeats 9

Parts (each timing is the median of ``--repeats`` runs, voxseq and the peer interleaved, both
with ``--threads`` torch threads):

resample
    voxseq: ``resample`` (image linear, label nearest) + z-score ``normalise`` down to the target
    grid, then the 3-channel probabilities back up to the 1 mm grid. MONAI: ``SpatialResample``
    (bilinear / nearest, border padding) with the same target affine + ``NormalizeIntensity
    (nonzero=True)``, and ``SpatialResample`` back. Outputs must agree (max abs difference inside
    the head, where both z-score; label agreement).
sliding
    voxseq's ``sliding_window_logits`` against MONAI's ``sliding_window_inference`` (Gaussian,
    overlap 0.5, 4 windows a batch) and against the bare forward passes of voxseq's windows
    (batches gathered beforehand, untimed: the forward passes alone), with a 1x1x1 convolution
    as predictor, where stitching dominates (outputs must agree: any weighting of a pointwise
    predictor gives its output), and with the demo UNet (depth 3, 16 channels) on a 96x96x64
    crop (outputs not compared: a random-init UNet with instance norm depends on each window's
    extent, and MONAI places its windows differently). The 1x1x1 convolution runs on PyTorch's
    own kernel (oneDNN off for it alone): oneDNN copies its 1-channel input into 16-channel
    blocks and its output back, which took ~90 % of either side's time and left the ratio at
    noise around 1; that figure is printed too (``through oneDNN``), not in the last line.
patches
    Training patches (48x48x32, image + label) per second: voxseq's ``PatchDataset`` over zarr
    stores written by ``write_store`` (the sampler's 33 % foreground oversampling), against a
    TorchIO ``Queue`` over the same volumes as uncompressed NIfTI (``UniformSampler`` and
    ``LabelSampler``), both single-process (no workers), 8 patches per volume for TorchIO.

The last line is ``resample_vs_monai=<r> sliding_window_vs_monai=<r> sliding_window_vs_bare=<r>
patches_vs_torchio=<r>``: time ratios voxseq / peer (resample: the slower of the two passes;
sliding window vs MONAI: the 1x1x1 conv's, vs bare: the demo UNet's, as a 1x1x1 conv's forward
pass costs about what the weighted accumulation of its output must), patches: voxseq patches/s
over TorchIO's (its faster sampler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPE = (197, 233, 189)
TARGET = (1.5, 1.5, 2.5)
PATCH = (48, 48, 32)


def _peers():
    try:
        import monai  # noqa: F401
        import torchio  # noqa: F401
    except ImportError as exc:
        print(
            f"skip: MONAI / TorchIO missing ({exc}); pip install -c constraints.txt -e '.[bench]'"
        )
        return False
    return True


def synthetic_subject(seed: int, shape=SHAPE):
    """A head-like float32 volume (zeros outside an ellipsoid) and a 3-class uint8 label."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    c = rng.uniform(-0.05, 0.05, 3)
    r2 = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, (0.85, 0.9, 0.8), strict=True))
    img = np.where(r2 < 1, 400 + 300 * np.cos(3 * grids[0]) * np.sin(2 * grids[1]), 0)
    img = (img + (r2 < 1) * rng.normal(0, 30, shape)).astype(np.float32)
    label = ((r2 < 0.45).astype(np.uint8) + (r2 < 0.12)).astype(np.uint8)
    return img, label


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def interleave(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median seconds of each callable over ``repeats`` interleaved rounds (the order rotates
    each round, so none always runs first), plus its last output."""
    times = {k: [] for k in fns}
    outs = {}
    keys = list(fns)
    for r in range(repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            dt, outs[k] = _timed(fns[k])
            times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}, outs


# ---------------------------------------------------------------- resample


def part_resample(repeats: int) -> float:
    from monai.data import MetaTensor
    from monai.transforms import NormalizeIntensity, SpatialResample

    from voxseq.imaging.intensity import normalise
    from voxseq.imaging.resample import resample, target_shape

    img, label = synthetic_subject(0)
    out_shape = target_shape(SHAPE, (1, 1, 1), TARGET)
    scale = np.array(SHAPE, float) / np.array(out_shape, float)
    src_aff = torch.eye(4, dtype=torch.float64)
    dst_aff = torch.eye(4, dtype=torch.float64)  # target voxel j -> (j + 0.5) * scale - 0.5 mm
    dst_aff[:3, :3] = torch.diag(torch.tensor(scale))
    dst_aff[:3, 3] = torch.tensor(0.5 * scale - 0.5)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, *out_shape)).astype(np.float32)
    logits[1:] += 2 * (resample(label, out_shape, 0)[None] == np.arange(1, 3)[:, None, None, None])
    probs = torch.from_numpy(logits).softmax(0).numpy()

    def vox_down():
        im = resample(img, out_shape, "linear")
        la = resample(label, out_shape, "nearest").astype(np.uint8)
        return normalise(im, "zscore"), la

    lin = SpatialResample(mode="bilinear", padding_mode="border", dtype=torch.float32)
    near = SpatialResample(mode="nearest", padding_mode="border", dtype=torch.float32)
    zs = NormalizeIntensity(nonzero=True)

    def monai_down():
        im = lin(MetaTensor(torch.from_numpy(img)[None], affine=src_aff), dst_aff, out_shape)
        la = near(
            MetaTensor(torch.from_numpy(label)[None].float(), affine=src_aff), dst_aff, out_shape
        )
        return zs(im)[0].numpy(), la[0].numpy().astype(np.uint8)

    def vox_up():
        return resample(probs, SHAPE, "linear", engine="torch")

    def monai_up():
        return lin(MetaTensor(torch.from_numpy(probs), affine=dst_aff), src_aff, SHAPE).numpy()

    t, o = interleave(
        {"vox_down": vox_down, "monai_down": monai_down, "vox_up": vox_up, "monai_up": monai_up},
        repeats,
    )
    fg = o["monai_down"][0] != 0  # MONAI's nonzero=True leaves the background at 0
    d_img = float(np.abs(o["vox_down"][0] - o["monai_down"][0])[fg].max())
    agree = float((o["vox_down"][1] == o["monai_down"][1]).mean())
    d_up = float(np.abs(o["vox_up"] - o["monai_up"]).max())
    print(f"resample {SHAPE} -> {out_shape} (1 mm -> {TARGET} mm)")
    print(
        f"  down + z-score: voxseq {t['vox_down']:.3f} s  MONAI {t['monai_down']:.3f} s  "
        f"ratio {t['vox_down'] / t['monai_down']:.2f}  (image max|diff| {d_img:.2e}, "
        f"label agreement {agree:.5f})"
    )
    print(
        f"  3-ch probabilities up: voxseq {t['vox_up']:.3f} s  MONAI {t['monai_up']:.3f} s  "
        f"ratio {t['vox_up'] / t['monai_up']:.2f}  (max|diff| {d_up:.2e})"
    )
    if d_img > 1e-3 or agree < 0.999 or d_up > 1e-4:
        raise SystemExit("resample: voxseq and MONAI outputs disagree")
    return max(t["vox_down"] / t["monai_down"], t["vox_up"] / t["monai_up"])


# ---------------------------------------------------------------- sliding window


def _windows(vol: torch.Tensor, starts, batch: int):
    for i in range(0, len(starts), batch):
        sl = starts[i : i + batch]
        yield torch.stack(
            [vol[:, a : a + PATCH[0], b : b + PATCH[1], c : c + PATCH[2]] for a, b, c in sl]
        )


def part_sliding(repeats: int) -> tuple[float, float]:
    import itertools

    from monai.inferers import sliding_window_inference

    from voxseq.imaging.resample import resample, target_shape
    from voxseq.imaging.sliding import sliding_window_logits, window_starts
    from voxseq.models import build_model

    img, _ = synthetic_subject(2)
    shape = target_shape(SHAPE, (1, 1, 1), TARGET)
    vol = resample(img, shape, "linear")
    vol = (vol - vol.mean()) / vol.std()
    torch.manual_seed(0)
    trivial = torch.nn.Conv3d(1, 3, 1).eval()
    unet = build_model("unet3d", in_channels=1, out_channels=3, depth=3, base_channels=16).eval()

    def runs(model, v):
        x = torch.from_numpy(np.ascontiguousarray(v))[None]
        starts = list(
            itertools.product(
                *(window_starts(s, p, 0.5) for s, p in zip(v.shape, PATCH, strict=True))
            )
        )
        batches = list(_windows(x, starts, 4))  # gathered beforehand: the forward passes alone
        return len(starts), {
            "vox": lambda: sliding_window_logits(model, v, PATCH, 3, overlap=0.5, batch_size=4),
            "monai": lambda: sliding_window_inference(
                x[None], PATCH, 4, model, overlap=0.5, mode="gaussian", sigma_scale=0.125
            )[0],
            "bare": lambda: [model(b) for b in batches],
        }

    crop = vol[:96, :96, :64]  # the UNet takes ~0.7 s a window on 2 loaded cores
    with torch.no_grad():
        n, fns = runs(trivial, vol)
        torch.backends.mkldnn.enabled = False  # the 1x1x1 conv on PyTorch's own kernel
        try:
            t, o = interleave(fns, repeats)
        finally:
            torch.backends.mkldnn.enabled = True
        t1, o1 = interleave(fns, max(repeats // 2, 1))
        nu, fns = runs(unet, crop)
        tu, _ = interleave(fns, max(repeats // 2, 1))
    d = max(float((oo["vox"] - oo["monai"]).abs().max()) for oo in (o, o1))
    print(f"sliding window, patch {PATCH}, batch 4, overlap 0.5")
    for label, tt in (("1x1x1 conv", t), ("1x1x1 conv through oneDNN", t1)):
        print(
            f"  {label} on {shape} ({n} windows): voxseq {tt['vox']:.3f} s  MONAI "
            f"{tt['monai']:.3f} s  bare forward {tt['bare']:.3f} s  vs MONAI "
            f"{tt['vox'] / tt['monai']:.2f}  vs bare {tt['vox'] / tt['bare']:.2f}"
        )
    print(f"  1x1x1 conv outputs: voxseq vs MONAI max|diff| {d:.2e}")
    print(
        f"  demo UNet on {crop.shape} ({nu} windows): voxseq {tu['vox']:.3f} s  MONAI "
        f"{tu['monai']:.3f} s  bare forward {tu['bare']:.3f} s  vs MONAI "
        f"{tu['vox'] / tu['monai']:.2f}  vs bare {tu['vox'] / tu['bare']:.2f}"
    )
    if d > 1e-4:
        raise SystemExit("sliding window: voxseq and MONAI outputs disagree")
    return t["vox"] / t["monai"], tu["vox"] / tu["bare"]


# ---------------------------------------------------------------- patches


def part_patches(repeats: int, n_subjects: int = 4, n_patches: int = 96) -> float:
    import nibabel as nib
    import torchio as tio

    from voxseq.imaging.patches import PatchSampler, foreground_centres
    from voxseq.imaging.resample import resample, target_shape
    from voxseq.imaging.store import open_store, write_store
    from voxseq.imaging.train import PatchDataset

    shape = target_shape(SHAPE, (1, 1, 1), TARGET)
    tmp = Path(tempfile.mkdtemp(prefix="voxseq_peers_"))
    stores, subjects, centres, volumes = [], [], [], []
    for s in range(n_subjects):
        img, lab = synthetic_subject(10 + s)
        im = resample(img, shape, "linear")
        im = ((im - im.mean()) / im.std()).astype(np.float32)
        la = resample(lab, shape, "nearest").astype(np.uint8)
        volumes.append((im, la))
        write_store(tmp / f"s{s}.zarr", im, la, TARGET, {"subject": f"s{s}"})
        stores.append(str(tmp / f"s{s}.zarr"))
        centres.append(foreground_centres(la, 3, 1000, seed=s))
        aff = np.diag([*TARGET, 1.0])
        nib.save(nib.Nifti1Image(im, aff), tmp / f"s{s}_img.nii")
        nib.save(nib.Nifti1Image(la, aff), tmp / f"s{s}_lab.nii")
        subjects.append(
            tio.Subject(
                image=tio.ScalarImage(tmp / f"s{s}_img.nii"),
                label=tio.LabelMap(tmp / f"s{s}_lab.nii"),
            )
        )
    sampler = PatchSampler([shape] * n_subjects, centres, PATCH, 0.33, seed=0)
    epoch = [0]

    def vox():
        epoch[0] += 1
        ds = PatchDataset(stores, sampler.epoch(epoch[0], n_patches), PATCH)
        items = [ds[i] for i in range(len(ds))]
        return items, ds.specs

    def tio_queue(smp):
        def run():
            q = tio.Queue(
                tio.SubjectsDataset(subjects),
                max_length=32,
                samples_per_volume=8,
                sampler=smp,
                num_workers=0,
                shuffle_subjects=True,
                shuffle_patches=True,
                verbose=False,
            )
            return [q[i] for i in range(n_patches)]

        return run

    uniform = tio.data.UniformSampler(PATCH)
    label_s = tio.data.LabelSampler(PATCH, "label", {0: 0.67, 1: 0.165, 2: 0.165})
    torch.manual_seed(0)
    t, o = interleave(
        {"vox": vox, "uniform": tio_queue(uniform), "label": tio_queue(label_s)}, repeats
    )
    # outputs: each patch equals the slice of its volume at its location
    items, specs = o["vox"]
    for item, sp in list(zip(items, specs, strict=True))[:16]:
        im, la = volumes[sp.subject]
        sl = tuple(slice(b, b + p) for b, p in zip(sp.start, PATCH, strict=True))
        ok = np.array_equal(item["x"][0].numpy(), im[sl] * sp.scale + sp.shift)
        if not ok or not np.array_equal(item["y"].numpy(), la[sl]):
            raise SystemExit(f"patches: voxseq patch at {sp.start} differs from the volume")
    for p in o["uniform"][:16]:
        loc = p["location"].tolist()
        sl = tuple(slice(a, b) for a, b in zip(loc[:3], loc[3:], strict=True))
        if not any(np.array_equal(p["image"].data[0].numpy(), v[0][sl]) for v in volumes):
            raise SystemExit("patches: a TorchIO patch differs from every volume")
    rate = {k: n_patches / v for k, v in t.items()}
    nbytes = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file() and ".zarr" in str(f))
    print(
        f"training patches {PATCH} (image + label) from {n_subjects} volumes {shape}, "
        f"{n_patches} per run; zarr stores {nbytes / 2**20:.1f} MiB"
    )
    print(
        f"  voxseq {rate['vox']:.0f}/s  TorchIO Queue uniform {rate['uniform']:.0f}/s  "
        f"label {rate['label']:.0f}/s  (patches checked against the volumes)"
    )
    chunks = open_store(stores[0]).image.chunks
    print(f"  store chunks {chunks}")
    return rate["vox"] / max(rate["uniform"], rate["label"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", nargs="+", default=["resample", "sliding", "patches"])
    args = ap.parse_args(argv)
    if not _peers():
        return 0
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    r = {
        "resample_vs_monai": float("nan"),
        "sliding_window_vs_monai": float("nan"),
        "sliding_window_vs_bare": float("nan"),
        "patches_vs_torchio": float("nan"),
    }
    if "resample" in args.parts:
        r["resample_vs_monai"] = part_resample(args.repeats)
    if "sliding" in args.parts:
        r["sliding_window_vs_monai"], r["sliding_window_vs_bare"] = part_sliding(args.repeats)
    if "patches" in args.parts:
        r["patches_vs_torchio"] = part_patches(args.repeats)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print(" ".join(f"{k}={v:.2f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
