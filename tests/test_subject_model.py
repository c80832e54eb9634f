"""The subject model: folds, no leakage from held-out subjects, the paired bootstrap, fusion
against each modality on synthetic cohorts with a known truth, the bundle and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from voxseq import VoxseqError
from voxseq.subject_model.bundle import apply_subject_bundle, write_subject_bundle
from voxseq.subject_model.evaluate import auroc, evaluate, paired_bootstrap, roc_figure
from voxseq.subject_model.features import FeatureTable
from voxseq.subject_model.fusion import (
    SubjectData,
    cross_validate,
    fused_proba,
    predict_fold,
)
from voxseq.subject_model.models import (
    ImagingInputs,
    read_imaging_oof,
    subject_folds,
    subject_targets,
)

CLASSES = ["case", "control"]
FAST = {"epochs": 60}  # the MLP's epochs where a test does not judge the intermediate fusion


def synthetic(n: int, seed: int, imaging_signal: float, genomics_signal: float,
              n_noise: int = 5) -> tuple[dict, dict, ImagingInputs, FeatureTable]:
    """A cohort whose outcome is ``logistic(imaging_signal a + genomics_signal b)``: the imaging
    classifier's out-of-fold probability measures ``a`` (with noise), the first genomics feature
    ``b``; the other genomics features are noise. Features are on an arbitrary scale."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(imaging_signal * a + genomics_signal * b)))
    subjects = [f"s{i:04d}" for i in range(n)]
    truth = {s: "case" if v else "control" for s, v in zip(subjects, y, strict=True)}
    p = 1 / (1 + np.exp(-(a + 0.3 * rng.normal(size=n))))
    proba = FeatureTable(subjects, ["prob_case", "prob_control"], np.stack([p, 1 - p], 1))
    g = np.concatenate([(b + 0.3 * rng.normal(size=n))[:, None], rng.normal(size=(n, n_noise))],
                       axis=1)
    genomics = FeatureTable(subjects, [f"coverage_r{j}" for j in range(g.shape[1])], 3 * g + 5)
    folds = subject_folds(truth, {}, 5, seed)
    return truth, folds, ImagingInputs(proba, folds), genomics


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- targets and folds ---------------------------------------------------------------------
def test_targets_and_folds_follow_the_imaging_classifier():
    rows = [{"subject": f"s{i}", "class": "ab"[i % 2] if i != 3 else "", "grade": str(i % 3)}
            for i in range(30)]
    assert "s3" not in subject_targets(rows)
    assert subject_targets(rows, "grade")["s4"] == "1"
    with pytest.raises(VoxseqError, match="no column 'outcome'"):
        subject_targets(rows, "outcome")
    targets = subject_targets(rows)
    imaging = {f"s{i}": i % 5 for i in range(0, 20)}  # the classifier's folds
    folds = subject_folds(targets, imaging, 5, seed=7)
    assert all(folds[s] == f for s, f in imaging.items() if s in targets)
    rest = [s for s in folds if s not in imaging]
    assert sorted({folds[s] for s in rest}) == list(range(5))  # dealt over every fold
    assert folds == subject_folds(targets, imaging, 5, seed=7)
    with pytest.raises(VoxseqError, match="must equal imaging.classify.folds"):
        subject_folds(targets, imaging, 4, seed=7)


def test_read_imaging_oof(tmp_path):
    from voxseq.io.atomic import write_tsv

    cols = ["subject", "fold", "true", "prob_a", "prob_b"]
    write_tsv(tmp_path / "f0.tsv", [{"subject": "x", "fold": 0, "true": "a", "prob_a": 0.8,
                                     "prob_b": 0.2}], cols)
    write_tsv(tmp_path / "f1.tsv", [{"subject": "y", "fold": 1, "true": "b", "prob_a": 0.1,
                                     "prob_b": 0.9}], cols)
    im = read_imaging_oof([tmp_path / "f0.tsv", tmp_path / "f1.tsv"], ["a", "b"])
    assert im.fold_of == {"x": 0, "y": 1}
    logit = np.log(0.9 / 0.1)  # centred log probabilities: -+ logit / 2
    np.testing.assert_allclose(im.vector(["y"], 1), [[-logit / 2, logit / 2]])
    # the classifier's prediction table: its fold ensemble's subjects get no fold
    write_tsv(tmp_path / "pred.tsv", [{"subject": "z", "fold": "ensemble", "true": "",
                                       "prob_a": 0.5, "prob_b": 0.5}], cols)
    im = read_imaging_oof([tmp_path / "f0.tsv", tmp_path / "pred.tsv"], ["a", "b"])
    assert im.fold_of == {"x": 0} and im.subjects == ["x", "z"]
    with pytest.raises(VoxseqError, match="no columns"):
        read_imaging_oof([tmp_path / "f0.tsv"], ["a", "c"])


# ---- leakage -------------------------------------------------------------------------------
def _fitted(fit) -> dict[str, np.ndarray]:
    out = {}
    for name in ("imaging_std", "genomics_std"):
        std = getattr(fit, name)
        out[f"{name}.mean"], out[f"{name}.scale"] = std.mean, std.scale
    for name in ("imaging", "genomics", "stacker"):
        model = getattr(fit, name)
        out[f"{name}.weight"], out[f"{name}.bias"] = model.weight, model.bias
    out.update({f"mlp.{k}": v.numpy() for k, v in fit.mlp.state_dict().items()})
    return out


def _perturbed(im: ImagingInputs, ge: FeatureTable, subject: str):
    """Copies with ``subject``'s imaging probability and genomics features moved far off."""
    p, g = im.proba.values.copy(), ge.values.copy()
    i = im.proba.subjects.index(subject)
    p[i] = [0.999, 0.001] if p[i, 0] < 0.5 else [0.001, 0.999]
    g[ge.subjects.index(subject)] = 50.0 * g[ge.subjects.index(subject)] + 100.0
    return (ImagingInputs(FeatureTable(im.proba.subjects, im.proba.names, p), im.fold_of),
            FeatureTable(ge.subjects, ge.names, g))


def test_held_out_subjects_do_not_reach_anything_fitted():
    """Perturbing a fold-0 subject leaves every fold-0 fit (standardisation, single models,
    stacker, MLP) bitwise unchanged, and the other fold-0 subjects' predictions too; it does
    change the folds it trains (so the comparison can fail)."""
    truth, folds, im, ge = synthetic(150, 0, 1.5, 1.5)
    before = cross_validate(truth, CLASSES, folds, im, ge, FAST)
    victim = next(s for s, f in folds.items() if f == 0)
    after = cross_validate(truth, CLASSES, folds, *_perturbed(im, ge, victim), FAST)
    for key, value in _fitted(before.fits[0]).items():
        np.testing.assert_array_equal(_fitted(after.fits[0])[key], value, err_msg=key)
    for model in ("imaging", "genomics", "late", "intermediate"):
        for s in (s for s, f in folds.items() if f == 0 and s != victim):
            np.testing.assert_array_equal(after.proba[model][s], before.proba[model][s])
    changed = _fitted(after.fits[1])
    assert not np.array_equal(changed["genomics_std.mean"], _fitted(before.fits[1])[
        "genomics_std.mean"])
    assert not np.array_equal(changed["stacker.weight"], _fitted(before.fits[1])[
        "stacker.weight"])


# ---- the paired bootstrap ------------------------------------------------------------------
def test_paired_interval_equals_a_direct_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = np.array([0] * 4 + [1] * 16)  # few of class 0: some draws miss it and are redrawn
    pa = rng.random(20)
    pb = np.clip(pa + rng.normal(0, 0.3, 20), 0, 1)
    got = paired_bootstrap(y, np.stack([1 - pa, pa], 1), np.stack([1 - pb, pb], 1), 300, seed=11)
    draws, diffs = np.random.default_rng(11), []
    while len(diffs) < 300:
        idx = draws.integers(0, 20, 20)
        if len(set(y[idx])) == 2:
            diffs.append(roc_auc_score(y[idx], pa[idx]) - roc_auc_score(y[idx], pb[idx]))
    assert got["n_bootstrap"] == 300
    assert got["difference"] == pytest.approx(roc_auc_score(y, pa) - roc_auc_score(y, pb))
    assert got["low"] == pytest.approx(np.percentile(diffs, 2.5), abs=1e-12)
    assert got["high"] == pytest.approx(np.percentile(diffs, 97.5), abs=1e-12)


def test_macro_auroc_for_three_classes():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    p = rng.dirichlet([1, 1, 1], 30)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))


# ---- fusion against each modality --------------------------------------------------------
def test_no_genomic_signal_fusion_stays_with_imaging():
    """Outcome from imaging alone: late fusion within 0.02 AUROC of imaging only."""
    truth, folds, im, ge = synthetic(300, 1, 1.5, 0.0)
    m = evaluate(cross_validate(truth, CLASSES, folds, im, ge, FAST), n_bootstrap=100)
    both = m["both"]
    assert both["genomics"]["auroc"] < 0.6
    assert both["late"]["auroc"] >= both["imaging"]["auroc"] - 0.02, both


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_genomic_signal_large(seed):
    """As above at 2,000 subjects, for both fusions."""
    truth, folds, im, ge = synthetic(2000, seed, 1.5, 0.0)
    m = evaluate(cross_validate(truth, CLASSES, folds, im, ge), n_bootstrap=200)
    for fusion in ("late", "intermediate"):
        assert m["both"][fusion]["auroc"] >= m["both"]["imaging"]["auroc"] - 0.02, m["both"]


def test_planted_two_modality_outcome_fusion_beats_each(tmp_path):
    truth, folds, im, ge = synthetic(300, 2, 1.5, 1.5)
    result = cross_validate(truth, CLASSES, folds, im, ge)
    m = evaluate(result, "late", n_bootstrap=200, seed=3)
    both = m["both"]
    for fusion in ("late", "intermediate"):
        assert both[fusion]["auroc"] > max(both["imaging"]["auroc"],
                                           both["genomics"]["auroc"]) + 0.03, both
        assert m["comparison"][fusion]["low"] > 0, m["comparison"]
    assert m["comparison"]["late"]["versus"] in ("imaging", "genomics")
    assert m["counts"] == {"both": 300, "imaging": 0, "genomics": 0}
    roc_figure(result, m, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_subjects_missing_a_modality_use_the_other_and_are_counted_apart():
    truth, folds, im, ge = synthetic(150, 3, 1.5, 1.5)
    no_genomics, no_imaging = im.subjects[:20], im.subjects[20:35]
    keep_g = [s for s in ge.subjects if s not in no_genomics]
    keep_i = [s for s in im.subjects if s not in no_imaging]
    im = ImagingInputs(FeatureTable(keep_i, im.proba.names, im.proba.rows(keep_i)), folds)
    ge = FeatureTable(keep_g, ge.names, ge.rows(keep_g))
    result = cross_validate(truth, CLASSES, folds, im, ge, FAST)
    m = evaluate(result, n_bootstrap=50)
    assert m["counts"] == {"both": 115, "imaging": 20, "genomics": 15}
    assert m["imaging_only"]["n"] == 20 and m["genomics_only"]["n"] == 15
    fused = fused_proba(result, "late")
    assert len(fused) == 150 and m["fused_all"]["n"] == 150
    for s in no_genomics:
        assert s not in result.proba["late"]
        np.testing.assert_array_equal(fused[s], result.proba["imaging"][s])
    for s in no_imaging:
        np.testing.assert_array_equal(fused[s], result.proba["genomics"][s])


def test_three_classes_and_determinism():
    rng = np.random.default_rng(4)
    truth, folds, im, ge = synthetic(150, 4, 1.5, 1.5)
    truth = {s: ["a", "b", "c"][int(rng.integers(3))] for s in truth}
    folds = subject_folds(truth, {}, 3, 4)
    p = rng.dirichlet([1, 1, 1], 150)
    im = ImagingInputs(FeatureTable(im.subjects, ["prob_a", "prob_b", "prob_c"], p), folds)
    first = cross_validate(truth, ["a", "b", "c"], folds, im, ge, FAST)
    again = cross_validate(truth, ["a", "b", "c"], folds, im, ge, FAST)
    for model in ("late", "intermediate"):
        assert all(v.shape == (3,) for v in first.proba[model].values())
        for s, v in first.proba[model].items():
            np.testing.assert_array_equal(again.proba[model][s], v)
    assert evaluate(first, n_bootstrap=20)["both"]["late"]["auroc"] is not None


# ---- the bundle ----------------------------------------------------------------------------
def _with_embeddings(im: ImagingInputs, n_folds: int, width: int = 3) -> ImagingInputs:
    rng = np.random.default_rng(0)
    emb = [FeatureTable(im.subjects, [f"emb_{i}" for i in range(width)],
                        rng.normal(size=(len(im.subjects), width))) for _ in range(n_folds)]
    return ImagingInputs(im.proba, im.fold_of, emb)


@pytest.mark.parametrize("fusion", ["late", "intermediate"])
def test_bundle_round_trip_predicts_a_new_cohort(tmp_path, fusion):
    truth, folds, im, ge = synthetic(120, 5, 1.5, 1.5)
    im = _with_embeddings(im, 5)
    cfg = {**FAST, "fusion": fusion}
    result = cross_validate(truth, CLASSES, folds, im, ge, cfg)
    meta = write_subject_bundle(tmp_path / "b", result, im, ge, cfg, {"auroc": 0.8}, {})
    assert meta["preprocessing"]["needs"]["imaging"]["embeddings"] == 3
    assert meta["preprocessing"]["needs"]["genomics"]["features"] == ge.names
    stats = json.loads((tmp_path / "b" / "bundle.json").read_text())["preprocessing"]
    np.testing.assert_allclose(stats["statistics"][2]["genomics"]["mean"],
                               result.fits[2].genomics_std.mean)
    # a "new cohort": the first 40 subjects, one without genomics, one without imaging
    new = im.subjects[:40]
    new_im = ImagingInputs(FeatureTable(new[1:], im.proba.names, im.proba.rows(new[1:])), {},
                           [FeatureTable(new[1:], e.names, e.rows(new[1:]))
                            for e in im.embeddings])
    new_ge = FeatureTable([s for s in new if s != new[1]], ge.names,
                          ge.rows([s for s in new if s != new[1]]))
    rows = {r["subject"]: r for r in apply_subject_bundle(tmp_path / "b", new_im, new_ge)}
    assert rows[new[0]]["source"] == "genomics" and rows[new[1]]["source"] == "imaging"
    data = SubjectData(new_im, new_ge, {})
    for s in new:
        model = {"both": fusion}.get(rows[s]["source"], rows[s]["source"])
        expected = np.mean([predict_fold(data, f, [s])[model][s] for f in result.fits], axis=0)
        got = [rows[s]["prob_case"], rows[s]["prob_control"]]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert rows[s]["predicted"] == CLASSES[int(np.argmax(expected))]


def test_bundle_refuses_a_cohort_missing_a_modality_or_feature(tmp_path):
    truth, folds, im, ge = synthetic(100, 6, 1.5, 1.5)
    im = _with_embeddings(im, 5)
    result = cross_validate(truth, CLASSES, folds, im, ge, FAST)
    write_subject_bundle(tmp_path / "b", result, im, ge, FAST, {}, {})
    with pytest.raises(VoxseqError, match="no genomics features"):
        apply_subject_bundle(tmp_path / "b", im, None)
    with pytest.raises(VoxseqError, match="no imaging inputs"):
        apply_subject_bundle(tmp_path / "b", None, ge)
    lacking = FeatureTable(ge.subjects, ge.names[:-1], ge.values[:, :-1])
    with pytest.raises(VoxseqError, match=f"genomics: missing feature.*{ge.names[-1]}"):
        apply_subject_bundle(tmp_path / "b", im, lacking)
    with pytest.raises(VoxseqError, match="penultimate features from each of its 5 fold"):
        apply_subject_bundle(tmp_path / "b", ImagingInputs(im.proba, {}), ge)
    other = FeatureTable(im.subjects, ["prob_x", "prob_y"], im.proba.values)
    with pytest.raises(VoxseqError, match=r"imaging: missing feature.*prob_case"):
        apply_subject_bundle(tmp_path / "b", ImagingInputs(other, {}, im.embeddings), ge)
