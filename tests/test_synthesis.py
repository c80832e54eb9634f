"""Missing-sequence synthesis: BraSyn scores against scikit-image, baselines, refusals, a tiny
GAN trained and applied, same seed same output, kill and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from skimage.metrics import structural_similarity
from synthesis_fixture import make_cohort, make_store, phantom, tiny_cfg

from voxseq import VoxseqError
from voxseq.bundle import read_bundle_meta
from voxseq.fit import load_checkpoint
from voxseq.synthesis.apply import SCORE_COLUMNS, synth_filename, synthesise_subject
from voxseq.synthesis.baselines import (
    copy_channel,
    match_histogram,
    most_correlated,
    target_quantiles,
    zero_fill,
)
from voxseq.synthesis.metrics import (
    brasyn_scale,
    phantom_lesions,
    score_volume,
    ssim_map,
)
from voxseq.synthesis.plan import check_synthesis_bundle, check_synthesis_plan, synthesis_plan
from voxseq.synthesis.train import METHODS, train_synthesis

HERE = Path(__file__).resolve().parent


# ---- scores -------------------------------------------------------------------------------------
def test_masked_ssim_equals_scikit_image_reference():
    rng = np.random.default_rng(3)
    real = np.abs(rng.normal(1.0, 0.5, (22, 19, 15))) * 100.0
    synth = real + rng.normal(0, 20.0, real.shape)
    body = np.zeros(real.shape, bool)
    body[2:20, 3:17, 2:13] = True
    lesion = np.zeros_like(body)
    lesion[8:13, 7:11, 5:9] = True
    ours = score_volume(synth, real, body, lesion)
    _, full = structural_similarity(
        brasyn_scale(synth),
        brasyn_scale(real),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        full=True,
    )
    assert ours["ssim_lesion"] == pytest.approx(full[lesion].mean(), abs=1e-4)
    assert ours["ssim_outside"] == pytest.approx(full[body & ~lesion].mean(), abs=1e-4)
    assert ours["ssim_body"] == pytest.approx(full[body].mean(), abs=1e-4)
    assert np.abs(ssim_map(brasyn_scale(synth), brasyn_scale(real)) - full).max() < 1e-4
    assert ours["ssim_body"] < 0.99  # the noise is seen


def test_brasyn_scale_clips_percentiles_and_floors_at_zero():
    v = np.linspace(-10, 100, 1000)
    s = brasyn_scale(v)
    assert s.min() == 0.0 and s.max() == 1.0
    assert s[np.searchsorted(v, 0.0)] == pytest.approx(0.0, abs=1e-3)  # floor at 0, not -10
    hi = np.percentile(v, 99.5)
    assert s[v >= hi].min() == 1.0 and s[v < hi].max() < 1.0


def test_psnr_and_mae_inside_the_body_only():
    real = np.zeros((12, 12, 12))
    real[2:10, 2:10, 2:10] = 1.0
    body = real > 0
    synth = real.copy()
    synth[0, 0, 0] = 1.0  # outside the body: not counted
    s = score_volume(synth, real, body, None)
    assert s["mae"] == 0.0 and s["psnr"] == float("inf") and np.isnan(s["ssim_lesion"])
    synth[5, 5, 5] = 0.5
    s = score_volume(synth, real, body, None)
    assert s["mae"] == pytest.approx(0.5 / body.sum())


def test_phantom_lesions_finds_a_planted_bright_region_and_nothing_on_the_truth():
    image, _ = phantom(0, lesions=False)
    real = image[1] - image[1].min()
    body = image[0] > image[0].mean()
    assert phantom_lesions(real, real, body) == {"phantom_regions": 0, "phantom_voxels": 0}
    fake = real.copy()
    fake[10:14, 10:14, 6:10] += 3 * real.max()
    fake[4, 12, 8] += 3 * real.max()  # one voxel: below min_voxels
    got = phantom_lesions(fake, real, body, min_voxels=8, window=1)
    assert got == {"phantom_regions": 1, "phantom_voxels": 64}
    smoothed = phantom_lesions(fake, real, body, min_voxels=8)
    assert smoothed["phantom_regions"] == 1 and 27 <= smoothed["phantom_voxels"] <= 64
    # voxel noise in the real scan alone is no lesion once smoothed
    noisy = real + np.random.default_rng(1).normal(0, 0.15 * real.max(), real.shape) * body
    assert phantom_lesions(real, noisy, body)["phantom_regions"] == 0


# ---- baselines ----------------------------------------------------------------------------------
def test_baselines_zero_copy_and_histogram_matching():
    vols = [phantom(i)[0] for i in range(3)]
    noise = [np.random.default_rng(i).normal(size=v[0].shape) for i, v in enumerate(vols)]
    three = [np.stack([v[0], v[1], 0.5 * v[1] + n]) for v, n in zip(vols, noise, strict=True)]
    # channel 1 (t2) from {0 (image: organ bright where t2's is dark), 2 (a noisy t2)}
    assert most_correlated(three, [0, 2], 1) == 2
    assert most_correlated(three, [2, 0], 1) == 2
    assert most_correlated(three, [0], 1) == 0
    assert zero_fill(vols[0][:1]).shape == vols[0].shape[1:]
    assert not zero_fill(vols[0][:1]).any()
    q = target_quantiles(vols, 1)
    matched = copy_channel(vols[0][:1], 0, q)
    assert np.allclose(
        np.quantile(matched, [0.1, 0.5, 0.9]),
        np.interp([0.1, 0.5, 0.9], np.linspace(0, 1, len(q)), q),
        atol=0.05,
    )
    flat = match_histogram(np.zeros((4, 4, 4)), q)  # a constant source does not break it
    assert np.isfinite(flat).all()


# ---- plan and bundle checks ---------------------------------------------------------------------
def test_plan_refuses_a_channel_missing_too_often_or_too_few_complete_training_subjects():
    channels = ["image", "t2", "flair"]
    avail = {f"s{i}": channels for i in range(6)}
    avail |= {"s6": ["image", "flair"], "s7": ["image", "t2"], "s8": ["image", "t2"]}
    splits = {s: "train" for s in avail} | {"s0": "test"}
    plan = synthesis_plan(avail, splits, channels, max_missing_share=0.2, min_train=3)
    assert plan["t2"]["train"] and plan["t2"]["missing"] == 1
    assert plan["t2"]["missing_subjects"] == ["s6"] and plan["t2"]["complete_train"] == 5
    assert not plan["flair"]["train"]
    assert "missing for 2 of 9 subjects" in plan["flair"]["reason"]
    with pytest.raises(VoxseqError, match=r"flair.*2 of 9.*\['s7', 's8'\]"):
        check_synthesis_plan(plan)
    few = synthesis_plan(avail, splits, channels, max_missing_share=0.5, min_train=6)
    assert not few["t2"]["train"] and "5 complete training subjects" in few["t2"]["reason"]
    assert "image" not in plan  # nobody misses it


def test_bundle_check_names_both_channel_lists():
    meta = {
        "preprocessing": {"task": "synthesis", "input_channels": ["image"], "output_channel": "t2"}
    }
    check_synthesis_bundle(meta, ["image", "t2"], "bundle b, cohort c")
    with pytest.raises(VoxseqError, match=r"\['image'\].*'t2'.*\['image', 'flair'\].*no \['t2'\]"):
        check_synthesis_bundle(meta, ["image", "flair"], "bundle b, cohort c")
    with pytest.raises(VoxseqError, match="not a synthesis bundle"):
        check_synthesis_bundle({"preprocessing": {"labels": []}}, ["image"], "b")


# ---- training ---------------------------------------------------------------------------------
def _train(folder: Path, stores, splits, epochs=2, iters=2):
    return train_synthesis(
        stores,
        splits,
        "t2",
        tiny_cfg(epochs, iters),
        0,
        str(folder / "bundle"),
        str(folder / "history.tsv"),
        str(folder / "metrics.json"),
        str(folder / "metrics.tsv"),
        str(folder / "work"),
        {"config": "test"},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    stores, splits = make_cohort(folder / "stores")
    return folder, stores, splits, _train(folder / "a", stores, splits)


def test_tiny_gan_trains_scores_every_method_and_writes_its_bundle(trained):
    folder, stores, splits, summary = trained
    out = folder / "a"
    test = sorted(s for s in splits if splits[s] == "test")
    rows = summary["subjects"]
    assert {(r["subject"], r["method"]) for r in rows} == {(s, m) for s in test for m in METHODS}
    assert [r["lesion_free"] for r in rows if r["method"] == "gan"] == [False, True]
    tsv = (out / "metrics.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == list(SCORE_COLUMNS) and len(tsv) == 1 + len(rows)
    assert json.loads((out / "metrics.json").read_text())["kept"] in ("gan", "l1")
    # a trained generator beats zero-fill on every test subject
    by = {(r["subject"], r["method"]): r for r in rows}
    for s in test:
        assert by[s, "gan"]["ssim_body"] > by[s, "zero"]["ssim_body"] + 0.1
        assert by[s, "gan"]["mae"] < by[s, "zero"]["mae"]
    history = (out / "history.tsv").read_text().splitlines()
    assert history[0].startswith("variant") and len(history) == 1 + 2 * 2
    meta = read_bundle_meta(out / "bundle", "synthesis")
    pre = meta["preprocessing"]
    assert pre["task"] == "synthesis" and meta["task"] == "synthesis"
    assert pre["input_channels"] == ["image"] and pre["output_channel"] == "t2"
    assert pre["normalisation"] == "zscore" and pre["copy_from"] == "image"
    assert set(meta["metrics"]["validation"]) == {"gan", "l1"}


def test_synthesised_channel_lands_on_the_original_grid_marked_synthetic(trained, tmp_path):
    folder, stores, splits, _ = trained
    subject = "s05"
    out = tmp_path / synth_filename(subject, "t2")
    assert out.name == "s05_t2_synth.nii.gz"
    res = synthesise_subject(
        subject, stores[subject], str(folder / "a" / "bundle"), str(out), "cpu"
    )
    img = nib.load(out)
    assert img.shape == (24, 24, 16)
    assert np.allclose(img.affine, np.diag([-1.5, -1.5, 2.0, 1.0]))
    assert b"SYNTHETIC t2" in img.header["descrip"].tobytes()
    assert res["channel"] == "t2" and np.isfinite(np.asarray(img.dataobj)).all()
    # a store without the bundle's input channel is refused, naming both lists
    from voxseq.imaging.store import open_store, write_store

    st = open_store(stores[subject])
    other = tmp_path / "other.zarr"
    write_store(
        other, st.read_image()[1], None, (1.5, 1.5, 2.0), {**st.meta, "channels": ["flair"]}
    )
    with pytest.raises(VoxseqError, match=r"reads channels \['image'\].*has \['flair'\]"):
        synthesise_subject(subject, str(other), str(folder / "a" / "bundle"), str(out), "cpu")


def test_an_incomplete_store_is_completed_and_a_bundle_scored(trained, tmp_path):
    from voxseq.imaging.store import open_store, write_store
    from voxseq.synthesis.apply import complete_subject
    from voxseq.synthesis.train import score_bundle

    folder, stores, splits, _ = trained
    bundle = str(folder / "a" / "bundle")
    st = open_store(stores["s05"])
    partial = tmp_path / "s05.zarr"  # the subject as normalise writes it without its t2
    write_store(partial, st.read_image()[:1], np.asarray(st.label[...]), (1.5, 1.5, 2.0),
                {**st.meta, "channels": ["image"]})
    rec = complete_subject("s05", str(partial), bundle, str(tmp_path / "done.zarr"),
                           str(tmp_path / "s05_t2_synth.nii.gz"), str(tmp_path / "s05.json"),
                           "cpu")
    done = open_store(tmp_path / "done.zarr")
    assert done.channels == ["image", "t2"] and done.meta["synthetic_channels"] == ["t2"]
    assert rec["synthetic_channels"] == ["t2"]
    vol = done.read_image()
    assert np.array_equal(vol[0], st.read_image()[0])  # the real channel kept as it was
    nifti = nib.load(tmp_path / "s05_t2_synth.nii.gz").get_fdata()  # stored LPS: L, P flipped
    assert np.allclose(vol[1][::-1, ::-1], nifti, atol=1e-4)
    assert np.array_equal(np.asarray(done.label[...]), np.asarray(st.label[...]))
    test = {s: stores[s] for s in splits if splits[s] == "test"}
    out = score_bundle(test, bundle, tiny_cfg(), str(tmp_path / "m.json"),
                       str(tmp_path / "m.tsv"), str(tmp_path / "scored"))
    kept = json.loads((folder / "a" / "metrics.json").read_text())["kept"]
    assert {r["method"] for r in out["subjects"]} == {kept, "copy", "zero"}
    assert sorted(p.name for p in (tmp_path / "scored").iterdir()) == sorted(
        f"{s}_{m}.npy" for s in test for m in (kept, "copy"))


def test_same_seed_gives_identical_synthesis(trained, tmp_path):
    folder, stores, splits, summary = trained
    _train(tmp_path, stores, splits)
    a = load_file(str(folder / "a" / "bundle" / "weights.safetensors"))
    b = load_file(str(tmp_path / "bundle" / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (folder / "a" / "metrics.tsv").read_text() == (tmp_path / "metrics.tsv").read_text()
    outs = []
    for d in (folder / "a", tmp_path):
        path = tmp_path / f"{len(outs)}.nii.gz"
        synthesise_subject("s05", stores["s05"], str(d / "bundle"), str(path), "cpu")
        outs.append(np.asarray(nib.load(path).dataobj))
    assert np.array_equal(*outs)


# ---- kill and resume ----------------------------------------------------------------------------
def _run(folder: Path, workdir: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "synthesis_resume_worker.py"), str(folder), str(workdir), mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


class Interrupted(Exception):
    pass


def test_gan_interrupted_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """In-process twin of the SIGKILL test below: the run stops at the start of epoch 1 (after
    epoch 0's checkpoint); a fresh model and task resume from last.pt."""
    from voxseq.fit import TrainConfig, fit, seed_everything
    from voxseq.models import build_model
    from voxseq.synthesis.gan import SynthesisTask

    stores = [make_store(tmp_path / f"s{i}.zarr", i) for i in range(4)]
    cfg = tiny_cfg(epochs=3, iters=2)
    tcfg = TrainConfig.from_dict(cfg["train"], 0)

    def run(workdir, cls):
        seed_everything(0)
        model = build_model("unet3d", in_channels=1, out_channels=1, **cfg["model"])
        args = (stores[:3], stores[3:], [0], 1, cfg["patch_size"], 2, 0, cfg["gan"], cfg["infer"])
        task = cls(*args)
        fit(task, model, tcfg, workdir, workdir / "history.tsv", "digest")
        return load_checkpoint(workdir / "last.pt")

    class Stopping(SynthesisTask):
        def batches(self, epoch, n, rank=0, world=1):
            if epoch >= 1:
                raise Interrupted
            return super().batches(epoch, n, rank, world)

    whole = run(tmp_path / "whole", SynthesisTask)
    with pytest.raises(Interrupted):
        run(tmp_path / "cut", Stopping)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 0
    resumed = run(tmp_path / "cut", SynthesisTask)
    assert whole["epoch"] == resumed["epoch"] == 2
    assert all(torch.equal(whole["model"][n], resumed["model"][n]) for n in whole["model"])
    da, db = whole["task"]["discriminator"], resumed["task"]["discriminator"]
    assert all(torch.equal(da[n], db[n]) for n in da)


@pytest.mark.slow
def test_gan_killed_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    for i in range(4):
        make_store(tmp_path / f"s{i}.zarr", i)
    whole = tmp_path / "whole"
    p = _run(tmp_path, whole, "run")
    killed = tmp_path / "killed"
    k = _run(tmp_path, killed, "pause")
    deadline = time.time() + 120
    while not (killed / "last.pt").exists() and time.time() < deadline and k.poll() is None:
        time.sleep(0.2)
    assert (killed / "last.pt").exists(), k.stderr.read().decode()[-2000:] if k.poll() else ""
    k.send_signal(signal.SIGKILL)
    k.wait()
    assert load_checkpoint(killed / "last.pt")["epoch"] == 0
    r = _run(tmp_path, killed, "run")
    assert r.wait(120) == 0, r.stderr.read().decode()[-2000:]
    assert p.wait(120) == 0, p.stderr.read().decode()[-2000:]
    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
    da, db = a["task"]["discriminator"], b["task"]["discriminator"]
    assert all(torch.equal(da[n], db[n]) for n in da)
