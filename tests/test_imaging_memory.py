"""Imaging stages in bounded memory: same outputs as the whole-array code they
replaced, fewer full-size temporaries, and the benchmark measuring each child's own peak.

The ``_ref_*`` functions are the computations of ingest, normalise and infer as they stood
before the memory work (commit 9e7dd39), kept here to compare against on small volumes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, affine_for, write_nifti
from nibabel.orientations import apply_orientation, io_orientation

from voxseq.imaging.infer import predict_volume, resampled_argmax, segment_subject
from voxseq.imaging.ingest import ingest_subject, label_counts
from voxseq.imaging.intensity import normalise
from voxseq.imaging.normalise import normalise_subject
from voxseq.imaging.resample import resample, target_shape
from voxseq.imaging.store import open_store
from voxseq.io.nifti import load_nifti, to_original
from voxseq.metrics import dice_per_label

LABELS = ["background", "organ", "lesion"]
SPACING = (0.8, 0.8, 1.5)


# ---- references: the whole-array code as it was ----------------------------------------------

def _ref_load(path) -> np.ndarray:
    """load_nifti's data before: float32 from nibabel, reoriented to RAS, contiguous."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    return np.ascontiguousarray(apply_orientation(data, io_orientation(img.affine)))


def _ref_ingest(image_path, label_path, n_labels: int, seed: int) -> tuple[dict, np.ndarray]:
    d = _ref_load(image_path)
    extra = {}
    mask = None
    if label_path:
        lab = _ref_load(label_path).astype(np.uint8)
        mask = lab > 0
        extra["label_voxels"] = np.bincount(lab.ravel(), minlength=n_labels).tolist()
    if mask is None or not mask.any():
        mask = d != 0
    fg = d[mask] if mask.any() else d.ravel()
    intensity = {
        "min": float(d.min()), "max": float(d.max()), "mean": float(d.mean()),
        "std": float(d.std()), "fg_mean": float(fg.mean()), "fg_std": float(fg.std()),
        "fg_p005": float(np.percentile(fg, 0.5)), "fg_p995": float(np.percentile(fg, 99.5)),
    }
    rng = np.random.default_rng([seed, 7])
    sample = fg if fg.size <= 20000 else rng.choice(fg, 20000, replace=False)
    return {"intensity": intensity, **extra}, sample.astype(np.float32)


def _ref_normalise(image_path, label_path, target, scheme, stats=None):
    img = nib.load(str(image_path))
    spacing = np.sqrt((nib.as_closest_canonical(img).affine[:3, :3] ** 2).sum(axis=0))
    data = _ref_load(image_path)
    shape = target_shape(data.shape, spacing, target)
    image = normalise(resample(data, shape, "linear"), scheme, stats)
    label = None
    if label_path:
        label = resample(_ref_load(label_path).astype(np.uint8), shape, "nearest").astype(np.uint8)
    return image, label


def _ref_segment(model, store, pre, label_path):
    st = open_store(store)
    geo = st.meta
    probs = predict_volume(model, np.asarray(st.image[...]), pre, torch.device("cpu"))
    fg_probs = probs[1:].astype(np.float16)
    probs = resample(probs, geo["canonical_shape"], "linear")
    seg = to_original(probs.argmax(0).astype(np.uint8), tuple(geo["original_axcodes"]))
    counts = np.bincount(seg.ravel(), minlength=len(pre["labels"]))
    dice = None
    if label_path:
        truth = np.asarray(nib.load(label_path).dataobj).reshape(seg.shape)
        dice = dice_per_label(seg, np.round(truth).astype(np.int64), len(pre["labels"]))
    return seg, counts, dice, fg_probs


# ---- fixtures --------------------------------------------------------------------------------

def _phantom(shape, seed=3):
    """CT-like int16 HU image and uint8 label (organ 1, lesion 2), canonical order."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    r2 = sum(g**2 for g in grids)
    organ = sum(((g - c) / 0.5) ** 2 for g, c in zip(grids, (0.2, 0.0, 0.1), strict=True)) <= 1
    lesion = sum(((g - c) / 0.15) ** 2 for g, c in zip(grids, (0.3, 0.1, 0.1), strict=True)) <= 1
    img = np.where(r2 < 0.9, 40.0, -1000.0) + 25.0 * organ - 30.0 * lesion
    img = img + rng.normal(0, 15, shape)
    return np.round(img).astype(np.int16), (organ.astype(np.uint8) + lesion).astype(np.uint8)


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory):
    """Variants a cohort holds: int16 LPS, float32 with slope/intercept (scaled) LAS with a
    float label, uint8 RAS with a label stored as int16."""
    root = tmp_path_factory.mktemp("ct")
    shape = (30, 26, 14)
    img, lab = _phantom(shape)
    out = {}
    for name, codes, idtype, ldtype in (("lps", "LPS", np.int16, np.uint8),
                                        ("las", "LAS", np.float32, np.float32),
                                        ("ras", "RAS", np.uint8, np.int16)):
        aff = affine_for(codes, shape, SPACING)
        data = img.astype(np.float64) + 1000 if idtype == np.uint8 else img
        data = np.clip(data, 0, 255) if idtype == np.uint8 else data
        ipath = root / f"{name}_image.nii.gz"
        nimg = nib.Nifti1Image(data.astype(idtype), aff)
        if name == "las":
            nimg.header.set_slope_inter(0.5, -3.0)
        nimg.set_sform(aff, code=1)
        nimg.set_qform(aff, code=1)
        nib.save(nimg, str(ipath))
        lpath = write_nifti(root / f"{name}_label.nii.gz", lab.astype(ldtype), aff)
        out[name] = (ipath, lpath)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from voxseq.bundle import write_bundle
    from voxseq.models import build_model

    arch = {"in_channels": 1, "out_channels": 3, "depth": 2, "base_channels": 4}
    torch.manual_seed(2)
    model = build_model("unet3d", **arch)
    with torch.no_grad():  # untrained but decisive: every class wins in a good share of voxels
        model.head.weight.mul_(20.0)
        model.head.bias.zero_()
    pre = {"target_spacing": [1.5, 1.5, 2.5], "interpolation": "linear",
           "normalisation": "zscore", "statistics": None, "patch_size": [16, 16, 8],
           "labels": LABELS, "in_channels": 1,
           "infer": {"overlap": 0.5, "batch_size": 2, "sigma_scale": 0.125, "mirror": False}}
    out = tmp_path_factory.mktemp("bundle") / "b"
    write_bundle(out, model, "imaging", "unet3d", arch, pre, {}, {})
    return out, model.eval(), pre


def _plan(scheme="zscore", target=(1.5, 1.5, 2.5), statistics=None):
    return {"target_spacing": list(target), "interpolation": "linear", "normalisation": scheme,
            "statistics": statistics, "labels": LABELS}


# ---- same outputs ----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["lps", "las", "ras"])
def test_load_nifti_same_data(ct_files, variant):
    for path in ct_files[variant]:
        vol = load_nifti(path, "s1")
        assert vol.data.dtype == np.float32 and vol.data.flags.c_contiguous
        np.testing.assert_array_equal(vol.data, _ref_load(path))


@pytest.mark.parametrize("variant", ["lps", "las", "ras"])
def test_ingest_same_record(ct_files, variant, tmp_path):
    image, label = ct_files[variant]
    for lab in (label, None):
        meta = ingest_subject("s1", str(image), lab and str(lab), 3, 5, None,
                              tmp_path / "s.json", tmp_path / "s.npy")
        ref, sample = _ref_ingest(image, lab, 3, 5)
        assert meta["intensity"] == ref["intensity"]
        assert meta.get("label_voxels") == ref.get("label_voxels")
        np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), sample)
        assert json.loads((tmp_path / "s.json").read_text())["intensity"] == ref["intensity"]


@pytest.mark.parametrize("variant,scheme", [("lps", "zscore"), ("las", "ct"), ("ras", "none")])
def test_normalise_same_store(ct_files, variant, scheme, tmp_path):
    image, label = ct_files[variant]
    stats = {"p005": -900.0, "p995": 120.0, "mean": 10.0, "std": 200.0}
    ingest_subject("s1", str(image), str(label), 3, 5, None, tmp_path / "s.json",
                   tmp_path / "s.npy")
    plan = _plan(scheme, statistics=stats if scheme == "ct" else None)
    normalise_subject("s1", tmp_path / "s.json", plan, tmp_path / "s.zarr")
    st = open_store(tmp_path / "s.zarr")
    ref_image, ref_label = _ref_normalise(image, label, plan["target_spacing"], scheme, stats)
    np.testing.assert_array_equal(st.image[...], ref_image)
    np.testing.assert_array_equal(st.label[...], ref_label)


@pytest.mark.parametrize("variant", ["lps", "las", "ras"])
def test_segment_same_outputs(ct_files, bundle, variant, tmp_path):
    image, label = ct_files[variant]
    bundle_dir, model, pre = bundle
    ingest_subject("s1", str(image), str(label), 3, 5, None, tmp_path / "s.json",
                   tmp_path / "s.npy")
    normalise_subject("s1", tmp_path / "s.json", _plan(), tmp_path / "s.zarr")
    res = segment_subject("s1", str(tmp_path / "s.zarr"), str(bundle_dir),
                          str(tmp_path / "seg.nii.gz"), str(tmp_path / "r.json"), "cpu",
                          str(label), str(tmp_path / "p.npy"))
    seg, counts, dice, fg_probs = _ref_segment(model, tmp_path / "s.zarr", pre, str(label))
    out = nib.load(tmp_path / "seg.nii.gz")
    assert len(np.unique(seg)) == 3  # the comparison covers every class
    np.testing.assert_array_equal(np.asarray(out.dataobj), seg)
    np.testing.assert_array_equal(out.affine, nib.load(image).affine)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), fg_probs)
    voxel = float(abs(np.linalg.det(out.affine[:3, :3])))
    assert res["volumes_mm3"] == {LABELS[k]: float(counts[k] * voxel) for k in (1, 2)}
    assert res["dice"] == {LABELS[k + 1]: float(v) for k, v in enumerate(dice)}


def test_resampled_argmax_ties_and_channels():
    """Equal to the argmax of the resampled stack, ties included (lower class wins)."""
    rng = np.random.default_rng(0)
    probs = rng.random((4, 9, 7, 5)).astype(np.float32)
    probs[1, :4] = probs[0, :4]  # tie 0/1: 0 wins
    probs[3, 5:] = probs[2, 5:] = probs[:, 5:].max(0) + 1  # tie 2/3 on top: 2 wins
    for shape in ((20, 13, 11), (9, 7, 5), (5, 4, 3)):
        expected = resample(probs, shape, "linear").argmax(0).astype(np.uint8)
        got = resampled_argmax(probs, shape)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
    same_grid = resampled_argmax(probs, (9, 7, 5))
    assert not (same_grid[:4] == 1).any() and (same_grid[5:] == 2).all()


def test_label_counts_by_blocks():
    lab = np.random.default_rng(1).integers(0, 3, (17, 11, 5)).astype(np.uint8)
    for block in (1, 7, 100, 1 << 22):
        np.testing.assert_array_equal(label_counts(lab, 4, block), np.bincount(lab.ravel(), None,
                                                                               4))
    np.testing.assert_array_equal(label_counts(lab, 2, 10), np.bincount(lab.ravel()))


# ---- bounded memory --------------------------------------------------------------------------

def _traced_peak(fn) -> int:
    """Peak bytes traced (numpy arrays, Python objects) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big_ct(tmp_path_factory):
    """A 160 x 160 x 96 int16 LPS CT and its uint8 label (2.46 M voxels)."""
    root = tmp_path_factory.mktemp("bigct")
    shape = (160, 160, 96)
    img, lab = _phantom(shape)
    aff = affine_for("LPS", shape, SPACING)
    return (write_nifti(root / "image.nii.gz", img, aff),
            write_nifti(root / "label.nii.gz", lab, aff), int(np.prod(shape)))


def test_stage_memory_per_voxel(big_ct, bundle, tmp_path):
    """Traced peak of each stage in bytes per voxel of the original volume: the float32 image
    (4) plus small change for ingest and normalise, two float32 channels (8) plus masks and
    labels for infer's way back. The whole-array code needed 16, 12 and 31."""
    image, label, n = big_ct
    bundle_dir = bundle[0]
    peaks = {
        "ingest": _traced_peak(lambda: ingest_subject(
            "s1", str(image), str(label), 3, 5, None, tmp_path / "s.json", tmp_path / "s.npy")),
        "normalise": _traced_peak(lambda: normalise_subject(
            "s1", tmp_path / "s.json", _plan(target=(3.0, 3.0, 4.0)), tmp_path / "s.zarr")),
        "infer": _traced_peak(lambda: segment_subject(
            "s1", str(tmp_path / "s.zarr"), str(bundle_dir), str(tmp_path / "seg.nii.gz"),
            str(tmp_path / "r.json"), "cpu", str(label), str(tmp_path / "p.npy"))),
    }
    per_voxel = {k: v / n for k, v in peaks.items()}
    assert per_voxel["ingest"] < 10.5, per_voxel
    assert per_voxel["normalise"] < 6.5, per_voxel
    assert per_voxel["infer"] < 11.5, per_voxel


def test_benchmark_measures_each_child_alone(tmp_path):
    """benchmarks/imaging_memory.py on a small volume: every stage's peak is the child's own
    (VmHWM), not this process's size at the fork (ru_maxrss of a forked child starts there),
    and GNU time agrees with it; the last line is the largest stage peak."""
    ballast = np.ones(700 * 2**20, np.uint8)  # this process: over 700 MiB resident
    cmd = [sys.executable, str(REPO / "benchmarks" / "imaging_memory.py"), "--workdir",
           str(tmp_path), "--shape", "40", "40", "24"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    del ballast
    lines = res.stdout.strip().splitlines()
    peaks = {}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in ("ingest", "stats", "normalise", "tile", "infer"):
            peaks[parts[0]] = (float(parts[2]), float(parts[6]))
    assert set(peaks) == {"ingest", "stats", "normalise", "tile", "infer"}, lines
    for stage, (vm_hwm, gnu_time) in peaks.items():
        assert 0.02 < vm_hwm < 0.6, (stage, vm_hwm)  # an interpreter, not the 700 MiB parent
        assert abs(vm_hwm - gnu_time) < 0.02, (stage, vm_hwm, gnu_time)
    assert lines[-1] == f"peak_rss_gib={max(v for v, _ in peaks.values()):.3f}"
    assert (tmp_path / "out" / "ct001_seg.nii.gz").is_file()


@pytest.mark.parametrize("variant", ["lps", "las", "ras"])
def test_overlay_slices_same(ct_files, variant):
    from voxseq.imaging.cohort import overlay_slices

    image, label = ct_files[variant]
    seg = ct_files["lps" if variant != "lps" else "ras"][1]  # another grid's label as the seg
    for lab in (label, None):
        got = overlay_slices(str(image), str(seg), lab and str(lab), "s1")
        ref = lab if lab is not None else seg
        z = int(np.argmax((_ref_load(ref) > 0).sum(axis=(0, 1))))
        expected = [_ref_load(p)[:, :, z].T for p in (image, seg)]
        expected.append(_ref_load(lab)[:, :, z].T if lab is not None else None)
        for g, e in zip(got, expected, strict=True):
            if e is None:
                assert g is None
            else:
                assert g.dtype == np.float32
                np.testing.assert_array_equal(g, e)
