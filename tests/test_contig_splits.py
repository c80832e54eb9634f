"""Contig splits: checked against the reference's contigs (library and ``snakemake -n``), chosen
from its lengths when not given."""

from __future__ import annotations

import pytest

from voxseq import VoxseqError
from voxseq.genomics.windows import choose_contigs, n_windows, plan_splits

# GRCh38 primary chromosomes (bp), in FASTA order
HUMAN = {"chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
         "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
         "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622,
         "chr12": 133_275_309, "chr13": 114_364_328, "chr14": 107_043_718,
         "chr15": 101_991_189, "chr16": 90_338_345, "chr17": 83_257_441, "chr18": 80_373_285,
         "chr19": 58_617_616, "chr20": 64_444_167, "chr21": 46_709_983, "chr22": 50_818_468,
         "chrX": 156_040_895, "chrY": 57_227_415, "chrM": 16_569}


def test_n_windows_counts_the_starts():
    assert n_windows(10_000, 4096, 1024) == 6  # 0, 1024, ..., 5120
    assert n_windows(4096, 4096, 1024) == 1
    assert n_windows(4095, 4096, 1024) == 0


def test_chosen_by_size_on_a_human_reference():
    chosen = choose_contigs(HUMAN, 4096, 1024)
    assert chosen == {"val": ["chr2", "chr3"], "test": ["chr4", "chr5"]}
    split = plan_splits(HUMAN, None, None, 4096, 1024, "hg38.fa")
    assert [c for c, s in split.items() if s == "val"] == ["chr2", "chr3"]
    assert [c for c, s in split.items() if s == "test"] == ["chr4", "chr5"]
    # one side named: the other is chosen among the remaining contigs
    split = plan_splits(HUMAN, ["chr8"], None, 4096, 1024)
    assert [c for c, s in split.items() if s == "test"] == ["chr2", "chr3"]
    split = plan_splits(HUMAN, None, [], 4096, 1024)
    assert "test" not in split.values()


def test_chosen_on_small_references():
    lengths = {"a": 10_000, "b": 30_000, "c": 2_000}  # c holds no window
    assert choose_contigs(lengths, 4096, 1024) == {"val": ["a"], "test": []}
    with pytest.raises(VoxseqError, match="cannot choose val_contigs: 1 contig"):
        choose_contigs({"b": 30_000, "c": 2_000}, 4096, 1024)


def test_unknown_or_empty_splits_name_the_contig_and_reference():
    lengths = {"chr1": 50_000, "chr2": 40_000, "chr3": 3_000}
    with pytest.raises(VoxseqError) as err:
        plan_splits(lengths, ["chr9"], [], 4096, 1024, "ref.fa")
    assert "genomics.val_contigs: contig(s) ['chr9'] are not in the reference ref.fa" in str(
        err.value)
    assert "its contigs: chr1, chr2, chr3" in str(err.value)
    with pytest.raises(VoxseqError, match=r"genomics.test_contigs: contig\(s\) \['chrX'\]"):
        plan_splits(lengths, ["chr2"], ["chrX"], 4096, 1024, "ref.fa")
    with pytest.raises(VoxseqError, match="test split gets no window of 4096 bp from the "
                                          "reference ref.fa \\(chr3 3,000 bp\\)"):
        plan_splits(lengths, ["chr2"], ["chr3"], 4096, 1024, "ref.fa")
    with pytest.raises(VoxseqError, match="none left to train on"):
        plan_splits(lengths, ["chr1", "chr2"], ["chr3"], 4096, 1024)


