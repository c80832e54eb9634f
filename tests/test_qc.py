"""QC autoencoder core: deterministic scores, out-of-fold reference, too few training subjects."""

import numpy as np
import pytest

from voxseq import VoxseqError
from voxseq.models import build_model
from voxseq.qc.autoencoder import (
    apply_out_of_fold,
    reconstruct,
    subject_errors,
    train_autoencoder,
    write_out_of_fold,
)
from voxseq.qc.scores import score_rows

TRAIN = {"epochs": 60, "batch_size": 4, "lr": 0.01, "schedule": "cosine", "amp": False,
         "num_workers": 0, "device": "cpu"}


def profiles(n=14, bins=40, seed=0):
    """Profiles from 2 latent factors plus noise; row 0 carries a +3 SD block (an outlier)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(2, bins))
    x = rng.normal(size=(n, 2)) @ basis * 0.5 + rng.normal(0, 0.3, size=(n, bins))
    x[0, 10:20] += 3.0
    return x.astype(np.float32)


def run(tmp_path, x, train, tag, folds=5, threshold=3.5, **kw):
    return train_autoencoder(
        lambda: build_model("profile_autoencoder", n_bins=x.shape[1], hidden=16, latent=2,
                            dropout=0.0),
        x, train, [], TRAIN, 3, 0.1, threshold, tmp_path / tag, tmp_path / f"{tag}.tsv", "d",
        tag, reference_folds=folds, **kw)


def test_outlier_in_training_split_is_left_out_and_flagged(tmp_path):
    x = profiles()
    train = list(range(10))
    model, dropped, kept, recon, oof = run(tmp_path, x, train, "a")
    assert dropped == [0] and 0 not in kept and oof.shape == (10, 40)
    ref = {"errors": subject_errors(x[kept], recon).tolist(), "left_out": ["s0"]}
    new = subject_errors(x, reconstruct(model, x, "cpu")[0])
    rows = score_rows([f"s{i}" for i in range(len(x))], new, ref, 3.5)
    assert [r["subject"] for r in rows if r["flagged"]] == ["s0"]
    assert "left out" in rows[0]["reason"]
    # deterministic: the same inputs give the same scores
    model2, *_ = run(tmp_path, x, train, "b")
    np.testing.assert_array_equal(reconstruct(model2, x, "cpu")[0],
                                  reconstruct(model, x, "cpu")[0])


def test_in_sample_reference_retrains_without_the_left_out_subject(tmp_path):
    """folds 0: the subject left out must really be out of the final model (its own
    checkpoint folder, not the all-subject model's resumed)."""
    x = profiles()

    def first_is_off(xs, recon):  # the in-sample network memorises row 0: say it is off
        return np.r_[100.0, subject_errors(xs[1:], recon[1:])]

    model, dropped, kept, _, oof = run(tmp_path, x, list(range(10)), "in", folds=0,
                                       error_fn=first_is_off)
    assert dropped == [0] and oof is None
    assert (tmp_path / "in" / "final_kept").is_dir()
    # the same model as one trained on the kept subjects alone (no threshold: none left out)
    alone, dropped2, *_ = run(tmp_path, x, kept, "alone", folds=0, threshold=float("inf"))
    assert dropped2 == []
    np.testing.assert_array_equal(reconstruct(model, x, "cpu")[0],
                                  reconstruct(alone, x, "cpu")[0])


def test_training_subjects_are_scored_with_their_out_of_fold_reconstructions(tmp_path):
    """The final model saw its training subjects; the cohort's scores use the fold models'."""
    x = profiles()
    train = list(range(10))
    names = [f"s{i}" for i in range(len(x))]
    model, _, kept, _, oof = run(tmp_path, x, train, "o")
    write_out_of_fold(tmp_path / "oof.npz", names[:10], x[train], oof)
    recon = reconstruct(model, x, "cpu")[0]
    final = recon.copy()
    held = apply_out_of_fold(tmp_path / "oof.npz", names, x, recon)
    assert held == set(names[:10])
    np.testing.assert_array_equal(recon[:10], oof)
    np.testing.assert_array_equal(recon[10:], final[10:])  # new subjects: the final model
    # a kept training subject is reconstructed better by the model that saw it
    in_sample = subject_errors(x[kept], final[kept])
    assert np.median(in_sample) < np.median(subject_errors(x[kept], oof[kept]))
    # in-sample reference (no folds): an empty file, nothing replaced
    write_out_of_fold(tmp_path / "none.npz", names[:10], x[train], None)
    assert apply_out_of_fold(tmp_path / "none.npz", names, x, recon.copy()) == set()
    # a stale file (the input changed since training) is refused, naming the subject
    changed = x.copy()
    changed[3] += 1.0
    with pytest.raises(VoxseqError, match="s3"):
        apply_out_of_fold(tmp_path / "oof.npz", names, changed, recon.copy())


def test_too_few_training_subjects_give_no_score_and_no_flag(tmp_path):
    x = profiles(n=6)
    model, dropped, kept, recon, _ = run(tmp_path, x, [0, 1, 2, 3], "c")
    assert dropped == []
    ref = {"errors": subject_errors(x[kept], recon).tolist()}
    rows = score_rows([f"s{i}" for i in range(6)], subject_errors(x, recon[:1].repeat(6, 0)),
                      ref, 3.5)
    assert not any(r["flagged"] for r in rows)
    assert all(np.isnan(r["score"]) and "at least 5" in r["reason"] for r in rows)


def test_imaging_qc_with_four_training_subjects_trains_and_flags_nothing(tmp_path):
    """The rule path: bundle written, every subject scored NaN, an error map per subject."""
    from voxseq.imaging.qc import score_imaging_qc, train_imaging_qc
    from voxseq.imaging.store import write_store

    rng = np.random.default_rng(0)
    stores = {}
    for i in range(6):
        path = tmp_path / f"s{i}.zarr"
        meta = {"subject": f"s{i}", "canonical_shape": [20, 20, 12],
                "original_axcodes": ["R", "A", "S"], "original_affine": np.eye(4).tolist()}
        write_store(path, rng.normal(size=(20, 20, 12)), None, (1.0, 1.0, 1.0), meta)
        stores[f"s{i}"] = str(path)
    cfg = {"input_size": [8, 8, 8], "noise": 0.1, "threshold": 3.5,
           "model": {"base_channels": 2, "levels": 1, "latent": 4},
           "train": {**TRAIN, "epochs": 2}}
    train_imaging_qc(["s0", "s1", "s2", "s3"], ["s4"], stores, cfg, {"normalisation": "zscore"},
                     1, tmp_path / "work", tmp_path / "m.tsv", tmp_path / "bundle", "d")
    rows, codes, _ = score_imaging_qc(list(stores), stores, str(tmp_path / "bundle"), 3.5,
                                      tmp_path)
    assert codes.shape == (6, 4) and not any(r["flagged"] for r in rows)
    assert all(np.isnan(r["score"]) and "at least 5" in r["reason"] for r in rows)
    assert all((tmp_path / f"s{i}_qc_error.nii.gz").is_file() for i in range(6))
