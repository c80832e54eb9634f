"""Several images a subject as input channels: sheet columns, 4D volumes, grids, stores, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from conftest import REPO, TINY_RUN, affine_for, load_config, run_snakemake, write_nifti

from voxseq import VoxseqError
from voxseq.imaging.channels import check_bundle_channels, cohort_channels, subject_images
from voxseq.imaging.ingest import ingest_subject
from voxseq.imaging.intensity import cohort_statistics
from voxseq.imaging.normalise import intensity_statistics, normalise_subject
from voxseq.imaging.patches import PatchSpec
from voxseq.imaging.store import open_store, read_region, write_store
from voxseq.imaging.train import PatchDataset
from voxseq.io.atomic import read_tsv
from voxseq.io.sheet import channel_columns, read_sheet, write_sheet
from voxseq.plan import build_plan

SHAPE = (20, 18, 12)
LABELS = ["background", "organ", "lesion"]


def _volumes(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` different contrasts of one ellipsoid 'body' (zeros outside), float32."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    body = sum(g**2 for g in grid) < 0.8
    return [
        (body * (50 * (k + 1) + rng.normal(0, 5 + k, SHAPE)) + 10 * k * grid[0]).astype(
            np.float32
        )
        for k in range(n)
    ]


def _label() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[5:14, 4:12, 3:9] = 1
    lab[8:11, 6:9, 5:7] = 2
    return lab


def _ingest(tmp, images, channels, grid="check", label=None, name="s01"):
    out = tmp / "ingest"
    out.mkdir(exist_ok=True)
    return ingest_subject(
        name,
        images[0][1],
        label,
        3,
        1,
        None,
        out / f"{name}.json",
        out / f"{name}.fg.npy",
        images=images,
        channels=channels,
        channel_grid=grid,
    )


def _plan(channels, grid="check", scheme="zscore", statistics=None):
    return {
        "target_spacing": [2.0, 2.0, 3.0],
        "interpolation": "linear",
        "normalisation": scheme,
        "statistics": statistics,
        "labels": LABELS,
        "channels": channels,
        "channel_grid": grid,
    }


# ---- the sample sheet and the channel names ---------------------------------------------------
def test_sheet_image_columns_kept_in_order_and_only_with_an_image(tmp_path):
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    sheet = tmp_path / "s.tsv"
    sheet.write_text(
        "subject\timage_t2\timage\timage_flair\tbam\n"
        "s1\tb.nii.gz\ta.nii.gz\tc.nii.gz\t\n"
        "s2\t\t\t\tb.nii.gz\n"
    )
    rows = read_sheet(sheet)
    assert channel_columns(rows[0]) == ["image_t2", "image_flair"]
    assert rows[0]["image_t2"] == str(tmp_path / "b.nii.gz")
    assert [p for _, p in subject_images(rows[0], channel_columns(rows[0]))] == [
        str(tmp_path / n) for n in ("a.nii.gz", "b.nii.gz", "c.nii.gz")
    ]
    write_sheet(tmp_path / "out.tsv", rows)
    assert read_sheet(tmp_path / "out.tsv", check_files=False) == rows

    # an empty further image is a missing sequence: read as empty (the run plan synthesises
    # it or refuses the sheet, tests/test_synthesis_plan.py)
    sheet.write_text("subject\timage\timage_t2\ns1\ta.nii.gz\t\n")
    assert read_sheet(sheet)[0]["image_t2"] == ""
    sheet.write_text("subject\timage\timage_T2\ns1\ta.nii.gz\tb.nii.gz\n")
    with pytest.raises(VoxseqError, match=r"unknown column\(s\) \['image_T2'\]"):
        read_sheet(sheet)
    sheet.write_text("subject\tbam\timage_t2\ns1\ta.nii.gz\tb.nii.gz\n")
    with pytest.raises(VoxseqError, match=r"subject s1 .*\['image_t2'\] given without 'image'"):
        read_sheet(sheet)


def test_cohort_channel_names_from_columns_or_config():
    assert cohort_channels([], None) == ["image"]
    assert cohort_channels(["image_t2", "image_flair"], None) == ["image", "t2", "flair"]
    assert cohort_channels(["image_t2"], ["t1", "t2"]) == ["t1", "t2"]
    assert cohort_channels([], ["t1", "t1c", "t2", "flair"]) == ["t1", "t1c", "t2", "flair"]
    with pytest.raises(VoxseqError, match=r"does not match the sample sheet's image columns"):
        cohort_channels(["image_t2"], ["t1", "flair"])
    with pytest.raises(VoxseqError, match="names must be distinct"):
        cohort_channels([], ["t1", "t1"])
    check_bundle_channels(None, ["image"], "x")  # bundles from before channels: one image
    with pytest.raises(VoxseqError) as err:
        check_bundle_channels(["image", "t2"], ["image"], "models.imaging m/")
    assert "models.imaging m/: the bundle was trained on channels ['image', 't2']" in str(err.value)
    assert "this cohort has ['image']" in str(err.value)


# ---- a 4D image's volumes, or one file a channel: the same store ------------------------------
def test_4d_image_with_three_volumes_is_three_channels(tmp_path):
    vols = _volumes(3)
    affine = affine_for("LPS", SHAPE, (1.1, 0.9, 2.5))
    four_d = write_nifti(tmp_path / "s01_4d.nii.gz", np.stack(vols, -1), affine)
    label = str(write_nifti(tmp_path / "lab.nii.gz", _label(), affine))
    names = ["t1", "t2", "flair"]
    meta = _ingest(tmp_path, [("image", str(four_d))], names, label=label)
    assert [c["volume"] for c in meta["channels"]] == [0, 1, 2]
    assert [c["channel"] for c in meta["channels"]] == names
    sample = np.load(tmp_path / "ingest/s01.fg.npy")
    assert sample.shape == (3, int((_label() > 0).sum()))  # the label's foreground, per channel
    store = tmp_path / "s01.zarr"
    normalise_subject("s01", tmp_path / "ingest/s01.json", _plan(names), store)
    st = open_store(store)
    assert st.n_channels == 3 and st.channels == names
    image = st.read_image()
    assert image.shape[0] == 3 and st.shape == image.shape[1:]
    axes = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert [a["name"] for a in axes["axes"]] == ["c", "x", "y", "z"]

    # each volume alone, through the one-image path: the same normalised values
    for k, vol in enumerate(vols):
        one = write_nifti(tmp_path / f"v{k}.nii.gz", vol, affine)
        sub = tmp_path / f"one{k}"
        sub.mkdir()
        _ingest(sub, [("image", str(one))], ["image"], label=label)
        normalise_subject("s01", sub / "ingest/s01.json", _plan(["image"]), sub / "s.zarr")
        alone = open_store(sub / "s.zarr")
        assert alone.image.ndim == 3  # one channel: the (X, Y, Z) store as before
        np.testing.assert_array_equal(image[k], alone.read_image()[0])
        np.testing.assert_array_equal(st.label[...], alone.label[...])

    # the same volumes as sheet columns: the same store
    files = [("image", str(tmp_path / "v0.nii.gz"))]
    files += [(f"image_{n}", str(tmp_path / f"v{k}.nii.gz")) for k, n in enumerate(names) if k]
    cols = tmp_path / "cols"
    cols.mkdir()
    meta = _ingest(cols, files, names, label=label)
    assert sorted(meta["sources"]) == ["image", "image_flair", "image_t2", "label"]
    normalise_subject("s01", cols / "ingest/s01.json", _plan(names), cols / "s.zarr")
    np.testing.assert_array_equal(open_store(cols / "s.zarr").read_image(), image)


def test_ct_statistics_per_channel(tmp_path):
    rng = np.random.default_rng(3)
    samples = {}
    for s in ("a", "b"):
        path = tmp_path / f"{s}.npy"
        np.save(path, rng.normal([[0.0], [100.0]], [[1.0], [20.0]], (2, 500)).astype(np.float32))
        samples[s] = str(path)
    stats = intensity_statistics(samples, "ct", tmp_path / "stats.json")["statistics"]
    pooled = [np.concatenate([np.load(samples[s])[c] for s in ("a", "b")]) for c in (0, 1)]
    assert stats == [cohort_statistics([p]) for p in pooled]
    assert stats[1]["mean"] > 50 > stats[0]["mean"]


# ---- errors that name the subject and the file -----------------------------------------------
def test_channel_mismatch_errors_name_subject_and_file(tmp_path):
    vols = _volumes(2)
    affine = affine_for("RAS", SHAPE)
    two = write_nifti(tmp_path / "two.nii.gz", np.stack(vols, -1), affine)
    with pytest.raises(VoxseqError) as err:
        _ingest(tmp_path, [("image", str(two))], ["t1", "t2", "flair"])
    msg = str(err.value)
    assert msg.startswith(f"subject s01: image {two}: holds 2 volume(s)")
    assert "3 channels ['t1', 't2', 'flair']" in msg

    first = write_nifti(tmp_path / "t1.nii.gz", vols[0], affine)
    shifted = affine.copy()
    shifted[:3, 3] += [2.0, 0.0, 0.0]
    off = write_nifti(tmp_path / "t2.nii.gz", vols[1], shifted)
    images = [("image", str(first)), ("image_t2", str(off))]
    with pytest.raises(VoxseqError) as err:
        _ingest(tmp_path, images, ["image", "t2"])
    msg = str(err.value)
    assert msg.startswith(f"subject s01: image_t2 {off} (channel t2): not on the grid")
    assert "imaging.channel_grid: resample" in msg
    with pytest.raises(VoxseqError, match=rf"subject s01: image_t2 {two}: holds 2 volumes"):
        _ingest(tmp_path, [("image", str(first)), ("image_t2", str(two))], ["image", "t2"])
    assert not list((tmp_path / "ingest").iterdir())  # nothing written


def test_channel_off_grid_resampled_in_world_coordinates(tmp_path):
    vols = _volumes(2)
    affine = affine_for("RAS", SHAPE)
    first = write_nifti(tmp_path / "t1.nii.gz", vols[0], affine)
    shifted = affine.copy()
    shifted[:3, 3] += [2.0, 0.0, 0.0]  # two voxels along x: voxel i of t2 is voxel i + 2 of t1
    off = write_nifti(tmp_path / "t2.nii.gz", vols[1], shifted)
    images = [("image", str(first)), ("image_t2", str(off))]
    _ingest(tmp_path, images, ["image", "t2"], grid="resample")
    plan = _plan(["image", "t2"], grid="resample", scheme="none")
    plan["target_spacing"] = [1.0, 1.0, 2.5]  # the first image's own grid: no resampling
    normalise_subject("s01", tmp_path / "ingest/s01.json", plan, tmp_path / "s.zarr")
    image = open_store(tmp_path / "s.zarr").read_image()
    np.testing.assert_allclose(image[0], vols[0], atol=1e-4)
    np.testing.assert_allclose(image[1][2:], vols[1][:-2], atol=1e-4)
    np.testing.assert_allclose(image[1][:2], vols[1].min())  # outside t2: its background


# ---- stores, patches -------------------------------------------------------------------------
def test_multichannel_store_patches_and_regions(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    label = _label()
    meta = {"subject": "s", "channels": ["a", "b"]}
    write_store(tmp_path / "s.zarr", image, label, (1, 1, 1), meta)
    st = open_store(tmp_path / "s.zarr")
    region = read_region(st.image, (3, 2, 1), (9, 30, 7))  # clipped to the volume, all channels
    np.testing.assert_array_equal(region, image[:, 3:9, 2:, 1:7])
    spec = PatchSpec("s", (4, 2, 3), False, 2.0, 0.5, (True, False, False))
    item = PatchDataset({"s": str(tmp_path / "s.zarr")}, [spec], (8, 8, 8))[0]
    want = image[:, 4:12, 2:10, 3:11] * 2.0 + 0.5
    np.testing.assert_allclose(item["x"].numpy(), want[:, ::-1], rtol=1e-6)
    np.testing.assert_array_equal(item["y"].numpy(), label[4:12, 2:10, 3:11][::-1])


# ---- end to end: a three-image demo trains and infers; a 4D cohort applies its bundle --------
CHANNEL_RUN = [*TINY_RUN, str(REPO / "tests/config/tiny_channels.yaml")]


def test_multichannel_cohort_end_to_end_and_4d_cohort_applies_its_bundle(tmp_path):
    """Three images a subject (sheet columns) train and infer; a cohort of 4D files with 3
    volumes, named by imaging.channels, applies the bundle; other names are refused."""
    # the outputs read below and every job upstream of them (the reports left out)
    targets = ["results/tinych/imaging/cohort.tsv", "results/tinych/imaging/qc/qc.tsv",
               "models/tinych/imaging_qc/bundle.json"]
    run_snakemake(tmp_path, "--configfile", *CHANNEL_RUN, "--cores", "2", *targets)
    res = tmp_path / "results/tinych"
    meta = json.loads((tmp_path / "models/tinych/imaging/bundle.json").read_text())
    names = ["image", "t2", "flair"]
    assert meta["preprocessing"]["channels"] == names
    assert meta["architecture"]["arguments"]["in_channels"] == 3
    qc = json.loads((tmp_path / "models/tinych/imaging_qc/bundle.json").read_text())
    assert qc["architecture"]["arguments"]["in_channels"] == 3
    assert qc["preprocessing"]["channels"] == names
    sheet = read_tsv(res / "demo_input/samples.tsv")
    assert all(r["image_t2"] and r["image_flair"] for r in sheet)
    for r in sheet:
        st = open_store(res / f"imaging/normalise/{r['subject']}.zarr")
        assert st.channels == names and st.image.shape[0] == 3
        seg = nib.load(res / f"imaging/infer/{r['subject']}_seg.nii.gz")
        img = nib.load(res / "demo_input" / r["image"])
        assert seg.shape == img.shape and np.allclose(seg.affine, img.affine)
    assert len(sheet) == 4
    assert len(read_tsv(res / "imaging/cohort.tsv")) == len(sheet)
    assert len(read_tsv(res / "imaging/qc/qc.tsv")) == len(sheet)

    # a new cohort of 4D files (the three images as volumes), named by imaging.channels
    new = tmp_path / "new4d"
    new.mkdir()
    rows = []
    for r in sheet[:3]:
        imgs = [nib.load(res / "demo_input" / r[c]) for c in ("image", "image_t2", "image_flair")]
        data = np.stack([i.get_fdata(dtype=np.float32) for i in imgs], -1)
        path = write_nifti(new / f"{r['subject']}.nii.gz", data, imgs[0].affine)
        rows.append(f"n{r['subject']}\t{path}\t{res / 'demo_input' / r['label']}")
    (new / "samples.tsv").write_text("subject\timage\tlabel\n" + "\n".join(rows) + "\n")
    cfg = {
        "cohort": "new4d",
        "demo": {"enabled": False},
        "samples": str(new / "samples.tsv"),
        "imaging": {"channels": names},
        "models": {"imaging": "models/tinych/imaging", "imaging_qc": "models/tinych/imaging_qc"},
    }
    (new / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    args = ["--configfile", *TINY_RUN, str(new / "cfg.yaml")]
    dry = run_snakemake(tmp_path, *args, "-n")
    assert "train" not in dry.stdout.split("Job stats:")[1].split("total")[0]
    run_snakemake(tmp_path, *args, "--cores", "2", "results/new4d/imaging/cohort.tsv")
    table = read_tsv(tmp_path / "results/new4d/imaging/cohort.tsv")
    assert [r["subject"] for r in table] == sorted(f"n{r['subject']}" for r in sheet[:3])
    assert all(r["labelled"] == "yes" and r["dice_organ"] for r in table)
    meta = json.loads(Path(tmp_path / f"results/new4d/imaging/ingest/{table[0]['subject']}.json")
                      .read_text())
    assert [c["volume"] for c in meta["channels"]] == [0, 1, 2]

    # other channel names than the bundle's: refused by the plan (before any job), naming both
    cfg["imaging"]["channels"] = ["t1", "t2", "flair"]
    with pytest.raises(VoxseqError) as err:
        build_plan(load_config(*TINY_RUN, cfg), tmp_path)
    out = str(err.value)
    assert "models.imaging models/tinych/imaging: the bundle was trained on channels " in out
    assert "['image', 't2', 'flair'], this cohort has ['t1', 't2', 'flair']" in out


def test_classifier_input_takes_every_image_channel_then_the_segmentation(tmp_path):
    from voxseq.imaging.classify import augment_sample, channel_names, classifier_input

    rng = np.random.default_rng(1)
    image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    write_store(tmp_path / "s.zarr", image, None, (1, 1, 1), {"channels": ["t1", "t2"]})
    probs = rng.random((2, *SHAPE)).astype(np.float16)
    np.save(tmp_path / "p.npy", probs)
    x = classifier_input(str(tmp_path / "s.zarr"), SHAPE, "none", str(tmp_path / "p.npy"))
    np.testing.assert_allclose(x[:2], image, atol=1e-5)  # same grid: the values themselves
    np.testing.assert_allclose(x[2:], probs.astype(np.float32), atol=1e-5)
    cfg = {"with_segmentation": True}
    assert channel_names(cfg, LABELS, ["t1", "t2"]) == ["t1", "t2", "seg_organ", "seg_lesion"]
    import torch

    aug = {"intensity_scale": [2.0, 2.0], "intensity_shift": [1.0, 1.0]}
    out = augment_sample(torch.from_numpy(x), aug, torch.Generator().manual_seed(0), 2)
    np.testing.assert_allclose(out[:2].numpy(), x[:2] * 2 + 1, rtol=1e-6)  # both images
    np.testing.assert_array_equal(out[2:].numpy(), x[2:])  # probabilities untouched
