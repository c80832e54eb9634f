"""Genomics stages on the small demo: demo files, coverage vs samtools, windows HDF5, training
batches, variant-effect sign, and a tiny train + infer run."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pyBigWig
import pysam
import pytest
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.demo.genomics import GenomicsDemoConfig, generate_genomics, revcomp
from voxseq.genomics.coverage import bin_sums, compute_coverage, read_coverage
from voxseq.genomics.ingest import ingest_subject
from voxseq.genomics.sequence import one_hot
from voxseq.genomics.train import GenomicsTask, predict
from voxseq.genomics.variants import read_truth, read_variants, score_variants
from voxseq.genomics.windows import read_meta, soft_clip, tile_genome
from voxseq.io.atomic import read_tsv
from voxseq.models.seqcnn import SeqCNN

SUBJECTS = ["g001", "g002", "g003"]
SEED = 5
WINDOW, STRIDE, BIN, CLIP = 1024, 512, 32, 300.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gdemo")
    files = generate_genomics(root, SUBJECTS, SEED, small=True)
    fasta = root / "reference.fa"
    cov = {s: root / "cov" / f"{s}.h5" for s in SUBJECTS}
    for s in SUBJECTS:
        compute_coverage(s, root / files[s]["bam"], fasta, cov[s], BIN, min_mapq=10)
    tile_genome(fasta, cov, root / "windows.h5", root / "windows.tsv", WINDOW, STRIDE, 0.1,
                ["chr3"], ["chr4"], CLIP)
    return {"root": root, "files": files, "fasta": fasta, "cov": cov}


def samtools() -> str:
    """The samtools binary, installed from Debian when missing (skip only if that fails)."""
    exe = shutil.which("samtools")
    for step in (["install"], ["update"], ["install"]):  # a stale package list: update once
        if exe is not None or not shutil.which("apt-get"):
            break
        args = ["apt-get", *step, "-y", "-q"] + (["samtools"] if step == ["install"] else [])
        subprocess.run(args, capture_output=True, timeout=600)
        exe = shutil.which("samtools")
    if exe is None:
        pytest.skip("samtools is not installed and `apt-get install -y samtools` failed")
    return exe


def test_demo_files_are_indexed_sorted_and_flagged(demo, tmp_path):
    bam = demo["root"] / demo["files"]["g001"]["bam"]
    assert Path(f"{bam}.bai").is_file()
    assert Path(f"{demo['root'] / demo['files']['g001']['vcf']}.tbi").is_file()
    assert Path(f"{demo['fasta']}.fai").is_file()
    with pysam.AlignmentFile(str(bam)) as f:
        assert f.header.to_dict()["HD"]["SO"] == "coordinate"
        pos = [(r.reference_id, r.reference_start) for r in f.fetch(until_eof=True)
               if not r.is_unmapped or r.reference_id >= 0]
    assert pos == sorted(pos)
    report = ingest_subject("g001", bam, demo["fasta"], tmp_path / "g001.json", min_mapq=10)
    assert report["read_counts_by"] == "coverage"
    cov = compute_coverage("g001", bam, demo["fasta"], tmp_path / "g001.h5", 1000, min_mapq=10)
    counts = cov["read_counts"]
    for category in ("unmapped", "secondary", "qc_fail", "duplicate", "low_mapq"):
        assert counts[category] > 0, category
    assert counts["passed"] == cov["library_size"] > 0
    truth = read_tsv(demo["root"] / "genomics" / "variant_truth.tsv")
    assert {r["class"] for r in truth} == {"motif_breaking", "motif_creating", "flank_gc",
                                           "neutral", "indel"}


def test_demo_is_deterministic_per_subject(demo, tmp_path):
    again = generate_genomics(tmp_path, ["g001"], SEED, small=True)  # one subject, not three
    assert (tmp_path / "reference.fa").read_bytes() == demo["fasta"].read_bytes()

    def records(path):
        with pysam.AlignmentFile(str(path)) as f:
            return [r.to_string() for r in f.fetch(until_eof=True)]

    assert records(tmp_path / again["g001"]["bam"]) == records(
        demo["root"] / demo["files"]["g001"]["bam"])


@pytest.mark.parametrize("min_mapq,count_deletions", [(10, False), (0, True)])
def test_binned_coverage_equals_samtools_depth(demo, tmp_path, min_mapq, count_deletions):
    exe = samtools()
    bam = demo["root"] / demo["files"]["g002"]["bam"]
    out = tmp_path / "cov.h5"
    compute_coverage("g002", bam, demo["fasta"], out, BIN, min_mapq=min_mapq,
                     exclude_flags=1796, normalisation="none", count_deletions=count_deletions)
    # samtools >= 1.13 filters UNMAP,SECONDARY,QCFAIL,DUP (1796) by default and -G adds to that
    # (for exclude_flags X in general: -G X -g $((1792 & ~X))); here -G 1796 adds nothing. It
    # counts no deletions unless -J; -aa reports every position of every contig.
    cmd = [exe, "depth", "-a", "-a", "-Q", str(min_mapq), "-G", "1796", str(bam)]
    if count_deletions:
        cmd.insert(2, "-J")
    depth = defaultdict(list)
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n"):
        if line:
            contig, _, value = line.split("\t")
            depth[contig].append(int(value))
    attrs, raw = read_coverage(out, key="raw")
    assert set(raw) == set(depth)
    for contig, values in depth.items():
        assert len(values) == attrs["contigs"][contig]
        np.testing.assert_array_equal(raw[contig], bin_sums(np.array(values), BIN))


def test_normalisations_and_blacklist(demo, tmp_path):
    bam = demo["root"] / demo["files"]["g001"]["bam"]
    bed = tmp_path / "black.bed"
    bed.write_text("chr1\t100\t300\nchrUn\t0\t10\n")
    got = {}
    for norm in ("none", "cpm", "rpkm"):
        compute_coverage("g001", bam, demo["fasta"], tmp_path / f"{norm}.h5", BIN, 10,
                         normalisation=norm, blacklist=bed if norm == "cpm" else None)
        got[norm] = read_coverage(tmp_path / f"{norm}.h5", "chr2")
    attrs, raw = read_coverage(tmp_path / "none.h5", "chr2", key="raw")
    lib = attrs["library_size"]
    np.testing.assert_allclose(got["none"][1]["chr2"], raw["chr2"] / BIN, rtol=1e-6)
    np.testing.assert_allclose(got["cpm"][1]["chr2"], raw["chr2"] / BIN * 1e6 / lib, rtol=1e-5)
    np.testing.assert_allclose(got["rpkm"][1]["chr2"], got["cpm"][1]["chr2"] * 1000 / BIN,
                               rtol=1e-5)
    _, mask = read_coverage(tmp_path / "cpm.h5", "chr1", key="mask")
    assert np.flatnonzero(mask["chr1"]).tolist() == [3, 4, 5, 6, 7, 8, 9]  # bins over 100-300
    _, track = read_coverage(tmp_path / "cpm.h5", "chr1")
    assert np.unique(track["chr1"][3:10]).size == 1


def test_windows_hdf5_shapes_dtypes_and_content(demo):
    path = demo["root"] / "windows.h5"
    meta = read_meta(path)
    rows = read_tsv(demo["root"] / "windows.tsv")
    with h5py.File(path, "r") as h5:
        n = len(rows)
        assert h5["sequence"].shape == (n, WINDOW, 4) and h5["sequence"].dtype == np.uint8
        assert h5["targets"].shape == (n, WINDOW // BIN, 3)
        assert h5["targets"].dtype == np.float32
        assert h5["sequence"].chunks == (1, WINDOW, 4)
        assert h5["targets"].chunks == (1, WINDOW // BIN, 3)
        splits = [meta["splits"][k] for k in h5["split"][()]]
        assert splits == [r["split"] for r in rows]
        assert {r["contig"]: r["split"] for r in rows} == {
            "chr1": "train", "chr2": "train", "chr3": "val", "chr4": "test"}
        k = next(i for i, r in enumerate(rows) if r["contig"] == "chr2")
        start = int(rows[k]["start"])
        seq = pysam.FastaFile(str(demo["fasta"])).fetch("chr2", start, start + WINDOW)
        np.testing.assert_array_equal(h5["sequence"][k], one_hot(seq))
        _, track = read_coverage(demo["cov"]["g002"], "chr2")
        expected = soft_clip(track["chr2"][start // BIN:start // BIN + WINDOW // BIN], CLIP)
        np.testing.assert_allclose(h5["targets"][k][:, 1], expected, rtol=1e-6)
    assert meta["tracks"] == SUBJECTS and meta["soft_clip"] == CLIP
    assert all(float(r["n_fraction"]) <= 0.1 for r in rows)


def test_batches_depend_only_on_seed_and_epoch(demo):
    path = demo["root"] / "windows.h5"
    a, b = GenomicsTask(path, 3, 4), GenomicsTask(path, 3, 4)
    first = [x["x"] for x in a.batches(2, 3)]
    list(b.batches(0, 5))  # another epoch in between changes nothing
    second = [x["x"] for x in b.batches(2, 3)]
    assert all(torch.equal(p, q) for p, q in zip(first, second, strict=True))
    other = next(iter(a.batches(3, 1)))["x"]
    assert not torch.equal(first[0], other)
    assert first[0].shape == (4, 4, WINDOW)
    a.close()
    b.close()


def test_excluded_track_weighs_nothing_in_loss_or_score(demo):
    """qc.exclude_flagged: a flagged subject's track neither trains nor selects the model."""
    path = demo["root"] / "windows.h5"
    tracks = read_meta(path)["tracks"]
    task = GenomicsTask(path, 3, 4, exclude_tracks=[tracks[0]])
    batch = next(iter(task.batches(0, 1)))
    model = SeqCNN(n_tracks=len(tracks), bin_size=BIN, channels=4, dilated_layers=1,
                   stem_kernel=5, dropout=0.0).eval()
    changed = {**batch, "y": batch["y"].clone()}
    changed["y"][:, 0] = changed["y"][:, 0] * 5 + 3  # the excluded track's targets only
    cpu = torch.device("cpu")
    assert torch.equal(task.loss(model, batch, cpu), task.loss(model, changed, cpu))
    full = GenomicsTask(path, 3, 4)
    assert not torch.equal(full.loss(model, batch, cpu), full.loss(model, changed, cpu))
    val = task.validate(model, cpu)
    kept = [val[f"pearson_{t}"] for t in tracks[1:]]
    assert val["score"] == pytest.approx(float(np.nanmean(kept)))
    with pytest.raises(VoxseqError, match="not among its tracks"):
        GenomicsTask(path, 3, 4, exclude_tracks=["nobody"])
    task.close()
    full.close()


def motif_detector(motif: str) -> SeqCNN:
    """A seqcnn whose weights make it a detector of exact ``motif`` matches (either strand)."""
    model = SeqCNN(n_tracks=1, bin_size=BIN, channels=4, dilated_layers=1, stem_kernel=15,
                   dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.weight.fill_(1.0)
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
        stem = model.trunk[0]
        for ch, m in enumerate((motif, revcomp(motif))):
            for k, base in enumerate(m):
                stem.weight[ch, "ACGT".index(base), k] = 1.0
            stem.bias[ch] = -(len(m) - 1.0)  # 1 on an exact match, <= 0 otherwise
        conv = model.trunk[2][2]  # the convolution between the two pooling steps: identity
        conv.weight[0, 0, 2] = conv.weight[1, 1, 2] = 1.0
        head = model.head[2]
        head.weight[0, 0, 0] = head.weight[0, 1, 0] = 4.0
        head.bias[0] = -2.0
    return model.eval()


def test_variant_effect_sign_on_planted_motif_breaking_snv(demo):
    truth = read_tsv(demo["root"] / "genomics" / "variant_truth.tsv")
    motifs = {name: seq for name, seq, _ in GenomicsDemoConfig().motifs}
    vcfs = {s: demo["root"] / demo["files"][s]["vcf"] for s in SUBJECTS}
    variants = {(v["contig"], v["pos"], v["ref"], v["alt"]): v for v in read_variants(vcfs)}
    labels = read_truth(demo["root"] / "genomics" / "variant_truth.tsv")
    broken, neutral = [], []
    for row in truth:
        key = (row["contig"], int(row["pos"]), row["ref"], row["alt"])
        if row["class"] != "motif_breaking" or key not in variants:
            continue
        model = motif_detector(motifs[row["motif"]])

        def fn(x, model=model):
            return predict(model, x, torch.device("cpu"))

        scored, _ = score_variants(fn, demo["fasta"], list(variants.values()), WINDOW, BIN, 8)
        by_key = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in scored}
        broken.append(by_key[key]["score"])
        neutral += [r["score"] for k, r in by_key.items() if labels.get(k) == "neutral"]
        assert all(r["status"].startswith("skipped: not an SNV") for k, r in by_key.items()
                   if labels.get(k) == "indel")
    assert broken, "the small demo has no carried motif-breaking variant"
    assert max(broken) <= 1e-6 and min(broken) < -0.5
    assert np.abs(neutral).max() < 0.05


def test_tiny_train_and_infer(demo, tmp_path):
    from voxseq.bundle import load_bundle
    from voxseq.genomics.infer import infer_genomics
    from voxseq.genomics.train import train_genomics

    torch.set_num_threads(2)
    windows = demo["root"] / "windows.h5"
    bundle = tmp_path / "bundle"
    train_genomics(windows, bundle, tmp_path / "metrics.tsv", tmp_path / "ck",
                   {"channels": 8, "dilated_layers": 2}, {"epochs": 2, "iters_per_epoch": 2,
                                                          "batch_size": 4, "device": "cpu"}, 1)
    model, meta = load_bundle(bundle, "genomics")
    prep = meta["preprocessing"]
    assert meta["architecture"]["name"] == "dilated_cnn" and prep["tracks"] == SUBJECTS
    assert prep["window"] == WINDOW and prep["bin_size"] == BIN and len(prep["target_scale"]) == 3
    assert "pearson_g001" in read_tsv(tmp_path / "metrics.tsv")[0]
    out = tmp_path / "infer"
    vcfs = {s: str(demo["root"] / demo["files"][s]["vcf"]) for s in SUBJECTS}
    summary = infer_genomics(
        bundle, demo["fasta"], windows, vcfs, bigwig_dir=out / "bw",
        pearson_tsv=out / "pearson.tsv", variants_tsv=out / "variants.tsv",
        cohort_json=out / "cohort.json", track_png=out / "track.png",
        pearson_png=out / "pearson.png", genome_wide=True,
        truth=demo["root"] / "genomics" / "variant_truth.tsv", device="cpu")
    assert json.loads((out / "cohort.json").read_text())["n_subjects"] == 3
    assert summary["vep_auroc"] is None or 0.0 <= summary["vep_auroc"] <= 1.0
    assert -1.0 <= summary["test_pearson_mean"] <= 1.0
    rows = read_tsv(out / "variants.tsv")
    assert len(rows) == len(read_variants(vcfs))
    bw = pyBigWig.open(str(out / "bw" / "g001.bw"))
    assert bw.chroms() == {f"chr{i}": 16_000 for i in range(1, 5)}
    assert len(bw.intervals("chr4")) == 16_000 // BIN
    bw.close()
    assert (out / "track.png").stat().st_size > 0 and (out / "pearson.png").stat().st_size > 0
    assert not [p for p in out.rglob(".tmp-*")]
