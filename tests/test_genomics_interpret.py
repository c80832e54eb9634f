"""Rule genomics_interpret's library entry on the small demo genome, with a model that is an
exact detector of one planted motif: attributions file, MEME, recovery JSON, logos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_genomics_pipeline import BIN, CLIP, STRIDE, WINDOW, motif_detector

from voxseq import VoxseqError
from voxseq.bundle import write_bundle
from voxseq.demo.genomics import generate_genomics
from voxseq.genomics.attribution import read_attributions
from voxseq.genomics.coverage import compute_coverage
from voxseq.genomics.interpret import interpret_genomics, planted_motifs
from voxseq.genomics.motifs import read_meme
from voxseq.genomics.windows import read_meta, tile_genome

AP1 = "TGACTCAGCA"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("interp")
    files = generate_genomics(root, ["g001"], 5, small=True)
    fasta = root / "reference.fa"
    cov = {"g001": root / "g001.h5"}
    compute_coverage("g001", root / files["g001"]["bam"], fasta, cov["g001"], BIN, min_mapq=10)
    tile_genome(fasta, cov, root / "windows.h5", root / "windows.tsv", WINDOW, STRIDE, 0.1,
                ["chr3"], ["chr4"], CLIP)
    meta = read_meta(root / "windows.h5")
    model = motif_detector(AP1)
    args = {"n_tracks": 1, "bin_size": BIN, "channels": 4, "dilated_layers": 1,
            "stem_kernel": 15, "dropout": 0.0}
    prep = {k: meta[k] for k in ("window", "stride", "bin_size", "contigs", "tracks",
                                 "normalisation", "soft_clip")}
    write_bundle(root / "bundle", model, "genomics", "dilated_cnn", args,
                 {**prep, "target_scale": [1.0]}, {}, {})
    return root, fasta


def test_interpret_recovers_the_detected_motif(small, tmp_path):
    root, fasta = small
    torch.set_num_threads(2)
    out = interpret_genomics(
        root / "bundle", root / "windows.h5", fasta, attributions_h5=tmp_path / "a.h5",
        meme=tmp_path / "m.meme", motifs_json=tmp_path / "m.json",
        motif_png=tmp_path / "m.png", attribution_png=tmp_path / "a.png",
        planted=planted_motifs(True), n_windows=12, n_ism=2, ism_width=30, device="cpu",
        modisco={"min_seqlets": 4})
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(out))
    rows = {r["planted"]: r for r in out["planted"]}
    assert rows["ap1_like"]["recovered"] and rows["ap1_like"]["distance"] == 0, out
    assert out["motifs_planted"] == 3 and out["motifs_recovered"] >= 1
    motifs = read_meme(tmp_path / "m.meme")
    assert [m.name for m in motifs] == [m["name"] for m in out["motifs"]]
    a = read_attributions(tmp_path / "a.h5")
    assert a["onehot"].shape == (12, WINDOW, 4) and a["ism"].shape == (2, 30, 4)
    assert a["contig"] == ["chr4"] * 12 and np.all(np.diff(a["observed"]) <= 0)
    # ISM at the detector's sites: breaking a base lowers the scalar, nothing raises it
    assert a["ism"].min() < 0 and a["ism"].max() <= 1e-5
    for png in ("m.png", "a.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".tmp-*"))


def test_interpret_refuses_a_different_reference(small, tmp_path):
    root, fasta = small
    other = tmp_path / "other.fa"
    text = fasta.read_text().splitlines()
    seq_lines = [i for i, ln in enumerate(text) if ln and not ln.startswith(">")]
    # flip every base of chr4 (same names and lengths, other sequence)
    chr4 = text.index(">chr4")
    flip = str.maketrans("ACGT", "TGCA")
    text = [ln.translate(flip) if i > chr4 and i in seq_lines else ln for i, ln in enumerate(text)]
    other.write_text("\n".join(text) + "\n")
    with pytest.raises(VoxseqError, match="differs from the reference"):
        interpret_genomics(
            root / "bundle", root / "windows.h5", other, attributions_h5=tmp_path / "a.h5",
            meme=tmp_path / "m.meme", motifs_json=tmp_path / "m.json",
            motif_png=tmp_path / "m.png", attribution_png=tmp_path / "a.png", n_windows=2,
            n_ism=0, device="cpu")


def test_interpret_without_test_contigs_uses_the_validation_windows(small, tmp_path):
    root, _ = small
    fasta = root / "reference.fa"
    cov = {"g001": root / "g001.h5"}
    tile_genome(fasta, cov, tmp_path / "w.h5", tmp_path / "w.tsv", WINDOW, STRIDE, 0.1,
                ["chr3"], [], CLIP)  # test_contigs: []
    out = interpret_genomics(
        root / "bundle", tmp_path / "w.h5", fasta, attributions_h5=tmp_path / "a.h5",
        meme=tmp_path / "m.meme", motifs_json=tmp_path / "m.json",
        motif_png=tmp_path / "m.png", attribution_png=tmp_path / "a.png", n_windows=4,
        n_ism=1, ism_width=20, device="cpu")
    assert out["attributed_split"] == "val" and out["attributed_windows"] == 4
    assert read_attributions(tmp_path / "a.h5")["contig"] == ["chr3"] * 4
