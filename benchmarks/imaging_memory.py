"""Peak memory of the imaging stages on a real-size CT-like volume.

Generates (once, cached in ``--workdir``) a deterministic CT-like volume of ``--shape`` voxels
(default 512 x 512 x 300 at 0.8 x 0.8 x 1.5 mm, int16 Hounsfield units, stored LPS like most
DICOM conversions, gzipped) with a label (organ 1, lesion 2), and an untrained UNet bundle of
the default config's size (weights do not change memory). Then runs each stage as its rule
does, calling the same voxseq function as the rule's script, in a fresh interpreter per stage:

- ``ingest``: :func:`voxseq.imaging.ingest.ingest_subject`;
- ``stats``: :func:`voxseq.imaging.normalise.intensity_statistics` (this subject as the
  training split);
- ``normalise``: :func:`voxseq.imaging.normalise.normalise_subject` with the default config's
  plan (target spacing, interpolation, normalisation; ``--normalisation`` overrides it);
- ``tile``: :func:`voxseq.imaging.tile.tile_subject`;
- ``infer``: :func:`voxseq.imaging.infer.segment_subject` on the CPU with one torch thread (as
  the rule: ``threads: 1``), the default patch, batch, overlap and sigma, writing the
  classifier's probabilities too (as in the demo) and computing Dice against the label.

The peak resident memory of each stage is the child's own ``VmHWM`` (``/proc/self/status``,
read by the child just before it exits), and GNU time's ``%M`` for the whole child when
``/usr/bin/time`` exists; not ``getrusage(RUSAGE_CHILDREN)``, whose ``ru_maxrss`` for a forked
child starts from the parent's size. ``imaging.max_voxels`` is not applied (no limit), so
a larger ``--shape`` than the default config's 150 M voxels can be measured too. Prints one
line per stage (peak RSS, wall seconds of the stage call and of the whole child) and, last,
``peak_rss_gib=<x>``: the largest stage peak.

    .venv/bin/python benchmarks/imaging_memory.py --workdir /tmp/imaging_memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("ingest", "stats", "normalise", "tile", "infer")
SUBJECT = "ct001"
SLAB = 20  # z-slices generated at a time


def default_imaging_config() -> dict:
    """The ``imaging`` block of ``config/config.yaml`` (the pipeline's defaults)."""
    import yaml

    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["imaging"]


def _ellipsoid(grids, centre, radii) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1.0


def ct_slab(shape, z0: int, z1: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Slices ``z0:z1`` of the CT-like phantom: (image int16 HU, label uint8), canonical RAS."""
    nx, ny, nz = shape
    x = np.arange(nx, dtype=np.float32)[:, None, None] / nx
    y = np.arange(ny, dtype=np.float32)[None, :, None] / ny
    z = np.arange(z0, z1, dtype=np.float32)[None, None, :] / nz
    img = np.full((nx, ny, z1 - z0), -1000.0, np.float32)  # air
    body = _ellipse_xy(x, y, (0.5, 0.5), (0.42, 0.32)) & np.ones_like(z, bool)
    img[body] = -90.0  # fat
    img[_ellipse_xy(x, y, (0.5, 0.5), (0.38, 0.28)) & body] = 40.0  # soft tissue
    lungs = (_ellipsoid((x, y, z), (0.32, 0.55, 0.78), (0.13, 0.16, 0.3)) | _ellipsoid(
        (x, y, z), (0.68, 0.55, 0.78), (0.13, 0.16, 0.3)))
    img[lungs] = -850.0
    spine = _ellipse_xy(x, y, (0.5, 0.27), (0.045, 0.05)) & np.ones_like(z, bool)
    img[spine] = 700.0
    organ = _ellipsoid((x, y, z), (0.36, 0.5, 0.4), (0.16, 0.13, 0.22))
    lesion = _ellipsoid((x, y, z), (0.33, 0.48, 0.42), (0.035, 0.035, 0.06))
    img[organ] = 60.0
    img[lesion] = 25.0
    img += rng.normal(0.0, 15.0, img.shape).astype(np.float32)
    label = organ.astype(np.uint8) + lesion.astype(np.uint8)
    return np.clip(np.round(img), -1024, 3071).astype(np.int16), label


def _ellipse_xy(x, y, centre, radii) -> np.ndarray:
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 <= 1.0


def make_volume(workdir: Path, shape, spacing, seed: int = 15) -> tuple[Path, Path]:
    """Write (once) the phantom's image and label NIfTIs, stored LPS; return their paths."""
    import nibabel as nib

    tag = "x".join(map(str, shape))
    image, label = workdir / f"ct_{tag}_image.nii.gz", workdir / f"ct_{tag}_label.nii.gz"
    if image.is_file() and label.is_file():
        return image, label
    print(f"generating {image.name} ({'x'.join(map(str, shape))} voxels) ...", flush=True)
    img = np.empty(shape, np.int16)
    lab = np.empty(shape, np.uint8)
    rng = np.random.default_rng(seed)
    for z0 in range(0, shape[2], SLAB):
        z1 = min(z0 + SLAB, shape[2])
        img[:, :, z0:z1], lab[:, :, z0:z1] = ct_slab(shape, z0, z1, rng)
    # stored LPS (x and y flipped against canonical RAS), as DICOM converters often write
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * (shape[0] - 1) / 2, spacing[1] * (shape[1] - 1) / 2, 0.0]
    for path, data in ((image, img[::-1, ::-1]), (label, lab[::-1, ::-1])):
        nifti = nib.Nifti1Image(np.ascontiguousarray(data), affine)
        nifti.set_qform(affine, code=1)
        nifti.set_sform(affine, code=1)
        nifti.header.set_xyzt_units("mm")
        tmp = path.with_name(f".{path.name}")
        nib.save(nifti, tmp)
        os.replace(tmp, path)
    return image, label


def make_bundle(workdir: Path, cfg: dict, scheme: str) -> Path:
    """An untrained UNet bundle of the config's size and preprocessing (seeded)."""
    import torch

    from voxseq.bundle import write_bundle
    from voxseq.models import build_model

    out = workdir / f"bundle_{scheme}"
    if (out / "bundle.json").is_file():
        return out
    torch.manual_seed(0)
    arch = {"in_channels": 1, "out_channels": len(cfg["labels"]), **cfg["model"]}
    model = build_model("unet3d", **arch)
    pre = {
        "target_spacing": list(cfg["target_spacing"]),
        "interpolation": cfg["interpolation"],
        "normalisation": scheme,
        "statistics": None,
        "patch_size": list(cfg["patch_size"]),
        "labels": list(cfg["labels"]),
        "in_channels": 1,
        "infer": dict(cfg["infer"]),
    }
    write_bundle(out, model, "imaging", "unet3d", arch, pre, {}, {"note": "untrained"})
    return out


def run_stage(stage: str, paths: dict, cfg: dict, scheme: str) -> None:
    """Run one stage in this (fresh) process, as the rule's script does."""
    if stage == "ingest":
        from voxseq.imaging.ingest import ingest_subject

        ingest_subject(SUBJECT, paths["image"], paths["label"], len(cfg["labels"]), 0, None,
                       paths["ingest"], paths["sample"])
    elif stage == "stats":
        from voxseq.imaging.normalise import intensity_statistics

        intensity_statistics({SUBJECT: paths["sample"]}, scheme, paths["stats"])
    elif stage == "normalise":
        from voxseq.imaging.normalise import normalise_subject

        plan = {k: cfg[k] for k in ("target_spacing", "interpolation", "labels")}
        plan.update(normalisation=scheme, statistics=None)
        normalise_subject(SUBJECT, paths["ingest"], plan, paths["store"], paths["stats"], None)
    elif stage == "tile":
        from voxseq.imaging.tile import tile_subject

        tile_subject(SUBJECT, paths["store"], paths["tile"], len(cfg["labels"]),
                     cfg["centres_per_class"], 0)
    elif stage == "infer":
        import torch

        from voxseq.imaging.infer import segment_subject

        torch.set_num_threads(1)  # the rule's threads: 1 (voxseq.scripting.rule_logging)
        segment_subject(SUBJECT, paths["store"], paths["bundle"], paths["seg"], paths["result"],
                        device="cpu", label_path=paths["label"],
                        out_probabilities=paths["probabilities"])
    else:
        raise ValueError(f"unknown stage {stage!r}")


def vm_hwm_kib() -> int:
    """This process's peak resident set size (``VmHWM``, KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (not Linux?)")


def child_main(args: argparse.Namespace) -> None:
    """``--child``: run one stage, then write its wall time and own VmHWM as JSON."""
    paths = json.loads(args.paths)
    t0 = time.perf_counter()
    run_stage(args.child, paths, default_imaging_config(), args.normalisation)
    wall = time.perf_counter() - t0
    Path(args.report).write_text(json.dumps({"wall_s": wall, "vm_hwm_kib": vm_hwm_kib()}))


def measure(cmd: list[str]) -> dict:
    """Run a child command that writes a ``--report`` JSON; add GNU time's %M and its wall."""
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    with tempfile.TemporaryDirectory() as tmp:
        report, peak = Path(tmp) / "report.json", Path(tmp) / "time.txt"
        full = [*cmd, "--report", str(report)]
        if gnu_time:
            full = [gnu_time, "-f", "%M", "-o", str(peak), *full]
        t0 = time.perf_counter()
        proc = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        child_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
        out = json.loads(report.read_text())
        out["child_wall_s"] = child_wall
        lines = peak.read_text().split() if gnu_time else []
        out["time_max_kib"] = int(lines[-1]) if lines and lines[-1].isdigit() else None
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=None, help="cache folder (default: a temporary one)")
    p.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    p.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.5])
    p.add_argument("--normalisation", default=None, choices=["zscore", "ct", "none"],
                   help="intensity scheme (default: the config's)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--child", default=None, choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument("--paths", default=None, help=argparse.SUPPRESS)
    p.add_argument("--report", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cfg = default_imaging_config()
    args.normalisation = args.normalisation or cfg["normalisation"]
    if args.child:
        child_main(args)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        return run_all(args, cfg, workdir)


def run_all(args: argparse.Namespace, cfg: dict, workdir: Path) -> dict:
    image, label = make_volume(workdir, tuple(args.shape), tuple(args.spacing))
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    paths = {
        "image": str(image),
        "label": str(label),
        "ingest": str(out / f"{SUBJECT}.json"),
        "sample": str(out / f"{SUBJECT}.fg.npy"),
        "stats": str(out / "intensity_stats.json"),
        "store": str(out / f"{SUBJECT}.zarr"),
        "tile": str(out / f"{SUBJECT}.tsv"),
        "bundle": str(make_bundle(workdir, cfg, args.normalisation)),
        "seg": str(out / f"{SUBJECT}_seg.nii.gz"),
        "result": str(out / f"{SUBJECT}_infer.json"),
        "probabilities": str(out / f"{SUBJECT}_probabilities.npy"),
    }
    n_vox = int(np.prod(args.shape))
    print(f"volume {'x'.join(map(str, args.shape))} ({n_vox / 1e6:.1f} M voxels) at "
          f"{args.spacing} mm, image {image.stat().st_size / 2**20:.0f} MiB gzipped; target "
          f"spacing {cfg['target_spacing']}, patch {cfg['patch_size']}, infer batch "
          f"{cfg['infer']['batch_size']}, overlap {cfg['infer']['overlap']}, normalisation "
          f"{args.normalisation}", flush=True)
    results = {}
    for stage in args.stages:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stage,
               "--paths", json.dumps(paths), "--normalisation", args.normalisation]
        r = measure(cmd)
        results[stage] = r
        extra = f" (GNU time {r['time_max_kib'] / 2**20:.3f} GiB)" if r["time_max_kib"] else ""
        print(f"{stage:10s} peak_rss {r['vm_hwm_kib'] / 2**20:6.3f} GiB{extra}  "
              f"stage {r['wall_s']:7.1f} s  child {r['child_wall_s']:7.1f} s", flush=True)
    peak = max(r["vm_hwm_kib"] for r in results.values()) / 2**20
    print(f"peak_rss_gib={peak:.3f}")
    return results


if __name__ == "__main__":
    main()
