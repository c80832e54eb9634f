"""Graded variant effects of the demo: the truth table against the generative model, the
Spearman metric, and variant-effect metrics on new and older truth tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from voxseq import VoxseqError
from voxseq.demo.genomics import (
    SMALL,
    TRUTH_COLUMNS,
    depth_profile,
    find_sites,
    flank_term,
    generate_genomics,
    make_reference,
    near_matches,
    revcomp,
    site_strengths,
)
from voxseq.genomics.infer import vep_metrics
from voxseq.genomics.variants import (
    EFFECT_CLASSES,
    read_truth,
    read_truth_effects,
    spearman,
    truth_labels,
)
from voxseq.io.atomic import read_tsv, write_tsv

SEED = 5


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtruth")
    generate_genomics(root, ["g001"], SEED, small=True)
    return root, read_tsv(root / "genomics" / "variant_truth.tsv")


def _model(seed: int, cfg=SMALL):
    """The demo's genome, sites and strengths, rebuilt from the seed as the generator does."""
    genome = make_reference(np.random.default_rng([seed, 10, 0]), cfg)
    texts = {c: s.decode() for c, s in genome.items()}
    rng = np.random.default_rng([seed, 10, 1])
    sites = {c: find_sites(texts[c], cfg) for c in texts}
    strength = {c: site_strengths(texts[c], sites[c], cfg, rng) for c in texts}
    return texts, sites, strength


def _full_contig_effect(text: str, sites, strength, pos0: int, alt: str, cfg=SMALL):
    """The effect recomputed over the whole contig: every site of the ref and the alt contig,
    the ref's strengths kept (rescaled by a changed flank), new sites at median noise."""
    alt_text = text[:pos0] + alt + text[pos0 + 1:]
    ref_of = dict(zip(sites, strength, strict=True))
    alt_sites = find_sites(alt_text, cfg)
    alt_strength = []
    for s, t in alt_sites:
        m = len(cfg.motifs[t][1])
        if (s, t) in ref_of:
            alt_strength.append(ref_of[(s, t)] * flank_term(alt_text, s, m)
                                / flank_term(text, s, m))
        else:
            alt_strength.append(cfg.motifs[t][2] * flank_term(alt_text, s, m))
    mask = np.frombuffer(text.encode(), dtype=np.uint8) == ord("N")
    ones = np.ones(len(cfg.motifs))
    ref_depth = depth_profile(len(text), sites, strength, ones, mask, 0.0, cfg)
    alt_depth = depth_profile(len(text), alt_sites, np.array(alt_strength), ones, mask, 0.0, cfg)
    lo = max(pos0 - cfg.effect_span // 2, 0)
    hi = pos0 - cfg.effect_span // 2 + cfg.effect_span
    lost = set(sites) - set(alt_sites)
    gained = set(alt_sites) - set(sites)
    return float((alt_depth - ref_depth)[lo:hi].sum()), lost, gained


def test_truth_table_has_graded_classes_and_effects(small_demo):
    _, truth = small_demo
    assert list(truth[0]) == list(TRUTH_COLUMNS)
    counts = {c: sum(r["class"] == c for r in truth) for c in {r["class"] for r in truth}}
    assert counts == {"motif_breaking": SMALL.n_breaking, "motif_creating": SMALL.n_creating,
                      "flank_gc": SMALL.n_flank, "neutral": SMALL.n_neutral,
                      "indel": SMALL.n_indels}
    for r in truth:
        if r["class"] == "indel":
            assert r["effect"] == ""
        elif r["class"] == "neutral":
            assert float(r["effect"]) == 0.0
        else:
            assert r["class"] in EFFECT_CLASSES and float(r["effect"]) != 0.0
    breaking = {r["motif"] for r in truth if r["class"] == "motif_breaking"}
    assert breaking == {name for name, _, _ in SMALL.motifs}  # strong, medium and weak sites


def test_truth_effects_match_the_generative_model(small_demo):
    _, truth = small_demo
    texts, sites, strength = _model(SEED)
    for r in truth:
        if r["class"] == "indel":
            continue
        c, pos0 = r["contig"], int(r["pos"]) - 1
        assert texts[c][pos0] == r["ref"]
        effect, lost, gained = _full_contig_effect(texts[c], sites[c], strength[c], pos0,
                                                   r["alt"])
        assert float(r["effect"]) == pytest.approx(effect, rel=1e-5, abs=1e-3), r
        t = next((k for k, (name, _, _) in enumerate(SMALL.motifs) if name == r["motif"]), None)
        if r["class"] == "motif_breaking":
            assert (int(r["site_start"]), t) in lost and not gained and effect < 0
        elif r["class"] == "motif_creating":
            assert gained == {(int(r["site_start"]), t)} and not lost and effect > 0
        else:
            assert not lost and not gained


def test_effect_of_an_isolated_site_is_its_strength_times_the_peak_mass(small_demo):
    """A broken site far from others loses strength x peak_depth x sqrt(2 pi) sigma, times the
    Gaussian share inside the span; a flank switch changes it by 0.08 / flank term."""
    _, truth = small_demo
    texts, sites, strength = _model(SEED)
    cfg, checked = SMALL, 0
    for r in truth:
        if r["class"] not in ("motif_breaking", "flank_gc"):
            continue
        c, pos0 = r["contig"], int(r["pos"]) - 1
        t = [name for name, _, _ in cfg.motifs].index(r["motif"])
        s = int(r["site_start"])
        near = [x for x, _ in sites[c] if abs(x - s) < 400]
        if len(near) != 1 or "N" in texts[c][s - 400:s + 400]:
            continue
        centre = s + len(cfg.motifs[t][1]) // 2
        lo, hi = pos0 - cfg.effect_span // 2, pos0 + cfg.effect_span // 2
        phi = 0.5 * (math.erf((hi - 0.5 - centre) / (cfg.peak_sigma * 2**0.5))
                     - math.erf((lo - 0.5 - centre) / (cfg.peak_sigma * 2**0.5)))
        mass = cfg.peak_depth * math.sqrt(2 * math.pi) * cfg.peak_sigma * phi
        site_strength = strength[c][sites[c].index((s, t))]
        if r["class"] == "motif_breaking":
            expected = -site_strength * mass
        else:
            m = len(cfg.motifs[t][1])
            flank = texts[c][s - 5:s] + texts[c][s + m:s + m + 5]
            gc = sum(b in "GC" for b in flank) / 10
            step = 0.08 if r["alt"] in "GC" else -0.08
            expected = site_strength * mass * step / (0.6 + 0.8 * gc)
        assert float(r["effect"]) == pytest.approx(expected, rel=5e-3), r
        checked += 1
    assert checked >= 3


def test_created_sites_come_from_near_matches(small_demo):
    _, truth = small_demo
    texts, _, _ = _model(SEED)
    motifs = dict((name, seq) for name, seq, _ in SMALL.motifs)
    created = [r for r in truth if r["class"] == "motif_creating"]
    assert created
    for r in created:
        c, pos0, s = r["contig"], int(r["pos"]) - 1, int(r["site_start"])
        word = texts[c][s:s + len(motifs[r["motif"]])]
        after = word[:pos0 - s] + r["alt"] + word[pos0 - s + 1:]
        assert after in {motifs[r["motif"]], revcomp(motifs[r["motif"]])}
        assert sum(a != b for a, b in zip(word, after, strict=True)) == 1


def test_near_matches_on_a_planted_sequence():
    motif = SMALL.motifs[0][1]
    seq = "AAAAA" + motif[:3] + "A" + motif[4:] + "AAAAA" + revcomp(motif) + "AAAAA"
    found = near_matches(seq, SMALL)
    assert (5, 0, 8, motif[3]) in found
    assert all(start != 5 + len(motif) + 5 for start, *_ in found)  # the exact match is no near


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)
    y = x + rng.normal(size=40)
    y[:10] = 0.0
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman(np.arange(5.0), np.exp(np.arange(5.0))) == pytest.approx(1.0)
    assert spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert math.isnan(spearman(np.arange(2.0), np.arange(2.0)))
    with pytest.raises(ValueError, match="one length"):
        spearman(np.arange(3.0), np.arange(4.0))


def _rows():
    data = [  # contig, pos, ref, alt, status, score, class, effect
        ("chr1", 10, "A", "G", "ok", -3.0, "motif_breaking", -300.0),
        ("chr1", 20, "C", "T", "ok", -1.0, "motif_breaking", -100.0),
        ("chr1", 30, "G", "A", "ok", 2.5, "motif_creating", 250.0),
        ("chr1", 40, "T", "C", "ok", 0.4, "flank_gc", 20.0),
        ("chr2", 50, "T", "G", "ok", 0.1, "neutral", 0.0),
        ("chr2", 60, "A", "C", "ok", -0.2, "neutral", 0.0),
        ("chr2", 70, "TA", "T", "skipped: not an SNV (TA>T)", float("nan"), "indel", None),
    ]
    rows = [{"contig": c, "pos": p, "ref": r, "alt": a, "status": st, "score": sc}
            for c, p, r, a, st, sc, _, _ in data]
    table = [{"contig": c, "pos": p, "ref": r, "alt": a, "class": k, "effect": e}
             for c, p, r, a, _, _, k, e in data]
    return rows, table


def test_vep_metrics_new_truth_table(tmp_path):
    rows, table = _rows()
    write_tsv(tmp_path / "truth.tsv", table, ["contig", "pos", "ref", "alt", "class", "effect"])
    truth, effects = read_truth(tmp_path / "truth.tsv"), read_truth_effects(tmp_path / "truth.tsv")
    assert len(effects) == 6  # the indel has no effect
    out = vep_metrics(rows, truth, effects)
    # |score| ranks every SNV with an effect (gains too) above both neutral SNVs
    assert out["vep_auroc"] == pytest.approx(1.0)
    assert (out["vep_n_effect"], out["vep_n_neutral"], out["vep_n_motif_breaking"]) == (4, 2, 2)
    scores = [r["score"] for r in rows[:6]]
    expected = spearmanr(scores, [t["effect"] for t in table[:6]]).statistic
    assert out["vep_spearman"] == pytest.approx(expected)
    assert out["vep_n_spearman"] == 6
    idx, labels = truth_labels(rows, truth, positive="motif_breaking")
    assert list(idx) == [0, 1, 4, 5] and list(labels) == [True, True, False, False]


def test_vep_metrics_older_truth_table_without_effect(tmp_path):
    rows, table = _rows()
    old = [t for t in table if t["class"] in ("motif_breaking", "neutral", "indel")]
    write_tsv(tmp_path / "old.tsv", old, ["contig", "pos", "ref", "alt", "class"])
    truth, effects = read_truth(tmp_path / "old.tsv"), read_truth_effects(tmp_path / "old.tsv")
    assert effects == {}
    out = vep_metrics(rows, truth, effects)
    assert out["vep_auroc"] == pytest.approx(1.0) and out["vep_spearman"] is None
    assert (out["vep_n_effect"], out["vep_n_neutral"], out["vep_n_spearman"]) == (2, 2, 0)
    rows[4]["score"] = 2.0  # |score| of a neutral SNV above one breaking SNV: 3 of 4 pairs
    assert vep_metrics(rows, truth, effects)["vep_auroc"] == pytest.approx(0.75)


def test_bad_effect_cell_names_the_variant(tmp_path):
    write_tsv(tmp_path / "t.tsv", [{"contig": "chr1", "pos": 5, "ref": "A", "alt": "C",
                                    "class": "neutral", "effect": "big"}],
              ["contig", "pos", "ref", "alt", "class", "effect"])
    with pytest.raises(VoxseqError, match="chr1:5 A>C"):
        read_truth_effects(tmp_path / "t.tsv")


def test_variant_effect_figure_panels(tmp_path):
    from voxseq.figures import pyplot
    from voxseq.genomics.variant_figure import plot_variant_effects, variant_effect_figure

    rows, table = _rows()
    cells = [{**r, "pos": str(r["pos"]), "score": "" if math.isnan(r["score"]) else
              str(r["score"])} for r in rows]
    truth = {(t["contig"], t["pos"], t["ref"], t["alt"]): t["class"] for t in table}
    effects = {(t["contig"], t["pos"], t["ref"], t["alt"]): t["effect"] for t in table
               if t["effect"] is not None}
    fig = variant_effect_figure(cells, truth, effects)
    roc, classes, scatter = fig.axes
    assert roc.get_legend().get_texts()[0].get_text() == "AUROC 1.000 (4 vs 2)"
    assert [t.get_text() for t in classes.get_xticklabels()] == [
        "motif breaking\nn=2", "motif creating\nn=1", "flank gc\nn=1", "neutral\nn=2"]
    assert scatter.get_title().startswith("predicted vs true effect: Spearman 0.")
    assert scatter.get_title().endswith("(n=6)")
    pyplot().close(fig)
    fig = variant_effect_figure(cells, truth, {})
    assert "no true effect" in fig.axes[2].texts[0].get_text()
    pyplot().close(fig)
    write_tsv(tmp_path / "scores.tsv", cells, list(cells[0]))
    write_tsv(tmp_path / "truth.tsv", table, ["contig", "pos", "ref", "alt", "class", "effect"])
    plot_variant_effects(tmp_path / "scores.tsv", tmp_path / "truth.tsv", tmp_path / "v.png")
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
