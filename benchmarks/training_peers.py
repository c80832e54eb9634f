"""voxseq's segmentation training epoch against MONAI's reference loop on the same data.

MONAI comes from the ``bench`` extra (``pip install -c constraints.txt -e ".[bench]"``); it is
imported here only. Both sides train on the demo's normalised stores and tile tables (a finished
``--until imaging_tile imaging_stats`` run of the default config, or a whole demo run) with the
config's imaging settings, and both draw the same patches: voxseq's ``PatchSampler`` through
``SegmentationTask.batches`` (its ``PatchDataset`` and DataLoader workers).

    python benchmarks/training_peers.py --results results/demo
    python benchmarks/training_peers.py --results /tmp/demo/results/demo --epochs 2 --iters 20

voxseq
    ``voxseq.fit.fit`` on a ``SegmentationTask`` (the pipeline's own loop: UNet3D, Dice + CE,
    AdamW, poly learning rate, gradient clipping, a checkpoint every epoch, Gaussian
    sliding-window validation on the val split) from ``train_imaging``'s settings.
MONAI
    ``DynUNet`` of the same depth and widths (kernel 3, strides 1-2-2, transposed-conv
    upsampling, instance norm with affine, LeakyReLU 0.01: nnU-Net's block, as UNet3D's),
    ``DiceCELoss`` (softmax, one-hot target, foreground Dice), AdamW with the same poly learning
    rate and clipping, and ``sliding_window_inference`` (Gaussian, sigma 0.125, the config's
    overlap and window batch) for the same validation subjects; Dice from the same
    ``voxseq.metrics.dice_per_label`` on both sides.

Each side runs ``--epochs`` epochs of ``--iters`` iterations, ``--repeats`` times, voxseq and
MONAI alternating (the order rotates), with ``--threads`` torch threads. An epoch's time is its
training plus its validation. The last line is ``train_epoch_vs_monai=<r>``: the median voxseq
epoch over the median MONAI epoch (<= 1: voxseq no slower). Before it, each side's validation
Dice trajectory (mean over foreground labels and validation subjects, per epoch, last repeat).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _inputs(results: Path, sheet: Path) -> tuple[list[str], list[str], dict, dict]:
    """Train / val subjects with a label, and subject -> store / tile table."""
    from voxseq.imaging.store import open_store
    from voxseq.io.atomic import read_tsv

    split = {r["subject"]: r["split"] for r in read_tsv(sheet)}
    tiles = {p.stem: str(p) for p in sorted((results / "imaging" / "tile").glob("*.tsv"))}
    stores = {s: str(results / "imaging" / "normalise" / f"{s}.zarr") for s in tiles}
    labelled = [s for s in tiles if open_store(stores[s]).label is not None]  # as train_imaging
    train = [s for s in labelled if split.get(s) == "train"]
    val = [s for s in labelled if split.get(s) == "val"]
    if not train or not val:
        sys.exit(f"no train/val subjects with tile tables under {results} (sheet {sheet})")
    return train, val, stores, tiles


def make_task(cfg: dict, seed: int, train, val, stores, tiles):
    from voxseq.fit import TrainConfig
    from voxseq.imaging.patches import read_centres
    from voxseq.imaging.train import segmentation_task

    tcfg = TrainConfig.from_dict(cfg["train"], seed)
    task = segmentation_task(
        cfg, tcfg, seed, [stores[s] for s in train], [read_centres(tiles[s]) for s in train],
        [stores[s] for s in val],
    )
    return task, tcfg


def run_voxseq(cfg: dict, seed: int, data) -> tuple[list[float], list[float]]:
    """Seconds and validation score per epoch of ``voxseq.fit.fit``."""
    from voxseq.fit import fit, seed_everything
    from voxseq.models import build_model

    task, tcfg = make_task(cfg, seed, *data)
    seed_everything(seed, tcfg.deterministic)
    model = build_model("unet3d", in_channels=n_channels(data), out_channels=len(cfg["labels"]),
                        **cfg["model"])
    with tempfile.TemporaryDirectory() as tmp:
        out = fit(task, model, tcfg, tmp, f"{tmp}/metrics.tsv", name="voxseq")
    return [h["seconds"] for h in out["history"]], [h["score"] for h in out["history"]]


def n_channels(data) -> int:
    """Input channels of the stores (the sheet's images), as ``train_imaging`` counts them."""
    from voxseq.imaging.store import common_channels

    train, val, stores, _ = data
    return len(common_channels({s: stores[s] for s in {*train, *val}}))


def monai_model(cfg: dict, in_channels: int = 1) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    depth, base = cfg["model"].get("depth", 3), cfg["model"].get("base_channels", 16)
    widths = [min(base * 2**i, cfg["model"].get("max_channels", 256)) for i in range(depth)]
    return DynUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=len(cfg["labels"]),
        kernel_size=[3] * depth,
        strides=[1] + [2] * (depth - 1),
        upsample_kernel_size=[2] * (depth - 1),
        filters=widths,
        norm_name=("instance", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        res_block=False,
    )


def monai_validate(model, task, cfg: dict) -> float:
    from monai.inferers import sliding_window_inference

    from voxseq.metrics import dice_per_label

    inf, n = cfg["infer"], len(cfg["labels"])
    dices = []
    with torch.no_grad():
        for st in task.val:
            x = torch.from_numpy(np.asarray(st.read_image(), np.float32))
            x = x[None] if x.ndim == 3 else x
            logits = sliding_window_inference(
                x[None],
                cfg["patch_size"],
                inf["batch_size"],
                model,
                overlap=inf["overlap"],
                mode="gaussian",
                sigma_scale=inf["sigma_scale"],
            )
            truth = np.asarray(st.label[...]).astype(np.int64)
            dices.append(dice_per_label(logits[0].argmax(0).numpy(), truth, n))
    return float(np.nanmean(np.nanmean(np.array(dices), axis=0)))


def run_monai(cfg: dict, seed: int, data) -> tuple[list[float], list[float]]:
    """Seconds and validation Dice per epoch of MONAI's reference loop."""
    from monai.losses import DiceCELoss

    from voxseq.fit import learning_rate, seed_everything

    task, tcfg = make_task(cfg, seed, *data)
    seed_everything(seed, tcfg.deterministic)
    model = monai_model(cfg, n_channels(data))
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    loss_fn = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)
    total = tcfg.epochs * tcfg.iters_per_epoch
    seconds, scores = [], []
    for epoch in range(tcfg.epochs):
        t0 = time.time()
        model.train()
        for i, batch in enumerate(task.batches(epoch, tcfg.iters_per_epoch)):
            for g in opt.param_groups:
                g["lr"] = learning_rate(tcfg, epoch * tcfg.iters_per_epoch + i, total)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch["x"]), batch["y"][:, None])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
        model.eval()
        scores.append(monai_validate(model, task, cfg))
        seconds.append(round(time.time() - t0, 2))
    return seconds, scores


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=REPO / "results" / "demo")
    ap.add_argument("--sheet", type=Path, help="resolved sheet (default RESULTS/sheet.tsv)")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--iters", type=int, help="iterations per epoch (default: the config's)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        import monai  # noqa: F401
    except ImportError as exc:
        sys.exit(f"skip: MONAI missing ({exc}); pip install -c constraints.txt -e '.[bench]'")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    full = yaml.safe_load(args.config.read_text())
    cfg = full["imaging"]
    train_cfg = {**cfg["train"], "epochs": args.epochs, "device": "cpu"}
    if args.iters:
        train_cfg["iters_per_epoch"] = args.iters
    cfg = {**cfg, "train": train_cfg}
    data = _inputs(args.results, args.sheet or args.results / "sheet.tsv")
    print(
        f"{len(data[0])} train / {len(data[1])} val subjects, {args.epochs} epochs x "
        f"{train_cfg['iters_per_epoch']} iterations, batch {train_cfg['batch_size']}, "
        f"{args.threads} threads, torch {torch.__version__}, MONAI {monai.__version__}"
    )
    sides = {"voxseq": run_voxseq, "monai": run_monai}
    times: dict[str, list[float]] = {k: [] for k in sides}
    scores: dict[str, list[float]] = {}
    keys = list(sides)
    for r in range(args.repeats):
        for k in keys[r % 2 :] + keys[: r % 2]:
            secs, scores[k] = sides[k](cfg, full["seed"], data)
            times[k] += secs
            dice = [round(s, 4) for s in scores[k]]
            print(f"repeat {r + 1} {k}: epochs {secs} s, val Dice {dice}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in keys:
        print(f"{k}: median epoch {med[k]:.1f} s, val Dice by epoch "
              f"{' '.join(f'{s:.4f}' for s in scores[k])}")
    print(f"train_epoch_vs_monai={med['voxseq'] / med['monai']:.3f}")


if __name__ == "__main__":
    main()
