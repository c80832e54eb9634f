"""genomics.model.compare: the best candidate on validation becomes the cohort's bundle, the
comparison reaches compare.json / .tsv, the report figure and summary.json; the schema takes the
architecture keys and refuses unknown ones."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import yaml
from conftest import REPO, run_snakemake

from voxseq import VoxseqError
from voxseq.bundle import load_bundle, write_bundle
from voxseq.config import validate_config
from voxseq.genomics.compare import choose, select_architecture
from voxseq.genomics.plots import plot_arch_comparison
from voxseq.io.atomic import read_tsv
from voxseq.models import build_model
from voxseq.summary import headline, write_summary

SMALL = {"dilated_cnn": {"channels": 4, "dilated_layers": 1},
         "cnn_bilstm": {"channels": 4, "lstm_hidden": 3}}


def candidate(root, arch: str, val: float, test: float) -> str:
    torch.manual_seed(len(arch))
    args = {"n_tracks": 2, "bin_size": 32, **SMALL[arch]}
    metrics = {"best_epoch": 3, "val_pearson_mean": val, "test_pearson_mean": test,
               "val_pearson": {"s1": val, "s2": val}, "test_pearson": {"s1": test, "s2": test}}
    write_bundle(root / arch / "bundle", build_model(arch, **args), "genomics", arch, args,
                 {"bin_size": 32, "window": 256}, metrics, {"seed": 1})
    (root / arch / "metrics.tsv").write_text(f"epoch\tscore\n1\t{val}\n")
    return str(root / arch / "bundle")


@pytest.mark.parametrize("vals, chosen", [((0.81, 0.87), "cnn_bilstm"),
                                          ((0.90, 0.87), "dilated_cnn"),
                                          ((0.85, 0.85), "dilated_cnn"),  # tie: compare order
                                          ((math.nan, 0.10), "cnn_bilstm")])
def test_selection_picks_the_best_validation(tmp_path, vals, chosen):
    archs = ("dilated_cnn", "cnn_bilstm")
    cands = {a: candidate(tmp_path / "train", a, v, 0.5 + k / 10)
             for k, (a, v) in enumerate(zip(archs, vals, strict=True))}
    out = select_architecture(cands, tmp_path / "models/genomics", tmp_path / "compare.json",
                              tmp_path / "compare.tsv",
                              metrics={a: tmp_path / "train" / a / "metrics.tsv" for a in archs},
                              metrics_out=tmp_path / "metrics.tsv")
    assert out["arch"] == chosen
    assert out["test_pearson_by_arch"] == {"dilated_cnn": 0.5, "cnn_bilstm": 0.6}
    assert json.loads((tmp_path / "compare.json").read_text()) == out
    rows = read_tsv(tmp_path / "compare.tsv")
    assert [r["arch"] for r in rows] == list(archs)
    assert [r["chosen"] for r in rows] == [str(a == chosen) for a in archs]
    # the cohort's bundle is the chosen candidate: same weights, same outputs, its metrics
    model, meta = load_bundle(tmp_path / "models/genomics", "genomics")
    ref, _ = load_bundle(cands[chosen], "genomics")
    x = torch.rand(1, 4, 256)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert meta["architecture"]["name"] == chosen
    assert meta["selection"]["criterion"] == "val_pearson_mean"
    assert set(meta["selection"]["compared"]) == set(archs)
    assert (tmp_path / "metrics.tsv").read_text() == \
        (tmp_path / "train" / chosen / "metrics.tsv").read_text()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp")]


def test_choose_and_a_mislabelled_candidate(tmp_path):
    assert choose([{"arch": "a", "val_pearson_mean": None},
                   {"arch": "b", "val_pearson_mean": None}]) == "a"
    with pytest.raises(VoxseqError, match="no candidate"):
        choose([])
    path = candidate(tmp_path, "dilated_cnn", 0.8, 0.8)
    with pytest.raises(VoxseqError, match="holds 'dilated_cnn', expected 'cnn_bilstm'"):
        select_architecture({"cnn_bilstm": path}, tmp_path / "out", tmp_path / "c.json",
                            tmp_path / "c.tsv")
    assert not (tmp_path / "out").exists()


def test_comparison_reaches_figure_summary_and_headline(tmp_path):
    cands = {a: candidate(tmp_path / "train", a, v, t)
             for a, v, t in (("dilated_cnn", 0.9, 0.93), ("cnn_bilstm", 0.88, 0.91))}
    out = select_architecture(cands, tmp_path / "bundle", tmp_path / "compare.json",
                              tmp_path / "compare.tsv")
    plot_arch_comparison(out, tmp_path / "arch.png")
    assert (tmp_path / "arch.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "cohort.json").write_text(json.dumps({"n_subjects": 2, "test_pearson_mean": 0.92,
                                                      "warnings": []}))
    (tmp_path / "bench").mkdir()
    summary = write_summary(tmp_path / "summary.json", "c",
                            {"genomics": str(tmp_path / "cohort.json"),
                             "genomics_compare": str(tmp_path / "compare.json")},
                            str(tmp_path / "bench"))
    g = summary["genomics"]
    assert g["arch"] == "dilated_cnn" and g["test_pearson_mean"] == 0.92
    assert g["test_pearson_by_arch"] == {"dilated_cnn": 0.93, "cnn_bilstm": 0.91}
    assert g["val_pearson_by_arch"] == {"dilated_cnn": 0.9, "cnn_bilstm": 0.88}
    text = "\n".join(headline(tmp_path / "summary.json"))
    assert "dilated_cnn 0.930, cnn_bilstm 0.910; chosen dilated_cnn" in text


def _config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_schema_takes_the_architecture_keys():
    schemas = REPO / "workflow/schemas"
    cfg = _config()
    assert cfg["genomics"]["model"]["compare"] == ["dilated_cnn", "cnn_bilstm"]
    validate_config(cfg, schemas)
    for model in ({"arch": "cnn_bilstm", "compare": None}, {"compare": []},
                  {"compare": ["cnn_bilstm"], "lstm_layers": 2}):
        c = copy.deepcopy(cfg)
        c["genomics"]["model"].update(model)
        validate_config(c, schemas)
    for model, message in (({"arch": "transformer"}, "genomics.model.arch"),
                           ({"compare": ["dilated_cnn", "rnn"]}, "genomics.model.compare"),
                           ({"compare": ["cnn_bilstm", "cnn_bilstm"]}, "non-unique"),
                           ({"lstm_hidden": 0}, "genomics.model.lstm_hidden"),
                           ({"lstm_size": 8}, "genomics.model.lstm_size: unknown key")):
        c = copy.deepcopy(cfg)
        c["genomics"]["model"].update(model)
        with pytest.raises(VoxseqError, match=message):
            validate_config(c, schemas)


def _planned(out: str) -> dict[str, int]:
    stats = out.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in stats.splitlines()[3:] if line.strip()]
    return {r[0]: int(r[1]) for r in rows}


@pytest.mark.parametrize("model, trains, select", [
    (None, 2, 1),  # the default config: compare [dilated_cnn, cnn_bilstm]
    ({"compare": ["cnn_bilstm"]}, 1, 0),  # one entry: trained straight into the bundle
    ({"arch": "cnn_bilstm", "compare": None}, 1, 0),
])
def test_dry_run_plans_one_training_job_per_architecture(tmp_path, model, trains, select):
    cfgs = [str(REPO / "tests/config/tiny_genomics.yaml")]
    if model:
        (tmp_path / "arch.yaml").write_text(yaml.safe_dump({"genomics": {"model": model}}))
        cfgs.append(str(tmp_path / "arch.yaml"))
    dry = run_snakemake(tmp_path, "-n", "--configfile", *cfgs)
    planned = _planned(dry.stdout + dry.stderr)
    assert planned["genomics_train"] == trains
    assert planned.get("genomics_select", 0) == planned.get("genomics_report_compare", 0) == select
