"""Cohort genotypes from VCFs, variant/sample QC, PLINK 1 files."""

from __future__ import annotations

import numpy as np
import pysam
import pytest

from voxseq import VoxseqError
from voxseq.genetics.genotypes import (
    Genotypes,
    hwe_exact,
    read_cohort_vcf,
    read_subject_vcfs,
    variant_qc,
    write_qc_report,
)
from voxseq.genetics.plink import decode_bed, encode_bed, read_bed, write_bed
from voxseq.io.atomic import read_tsv

HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=10000>\n##contig=<ID=chr2,length=5000>\n"
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
          '##FORMAT=<ID=DS,Number=A,Type=Float,Description="ALT dosage">\n')


def _vcf(path, samples, records) -> str:
    text = HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + \
        "\t".join(samples) + "\n"
    text += "".join("\t".join(map(str, r)) + "\n" for r in records)
    plain = path.with_suffix("")
    plain.write_text(text)
    pysam.tabix_index(str(plain), preset="vcf", force=True)
    return str(plain) + ".gz"


@pytest.fixture
def subject_vcfs(tmp_path):
    a = _vcf(tmp_path / "a.vcf.gz", ["a"], [
        ("chr1", 100, ".", "A", "G", ".", "PASS", ".", "GT", "0/1"),
        ("chr1", 200, ".", "C", "T", ".", "PASS", ".", "GT", "1/1"),
        ("chr1", 300, ".", "AT", "A", ".", "PASS", ".", "GT", "0/1"),  # indel
        ("chr1", 400, ".", "G", "A,C", ".", "PASS", ".", "GT", "1/2"),  # multiallelic
        ("chr2", 50, ".", "T", "C", ".", "PASS", ".", "GT", "0/1"),
    ])
    b = _vcf(tmp_path / "b.vcf.gz", ["whatever"], [  # a single sample of another name
        ("chr1", 100, ".", "A", "G", ".", "PASS", ".", "GT:DS", "0/1:0.8"),
        ("chr1", 250, ".", "T", "C", ".", "PASS", ".", "GT", "./."),
        ("chr2", 50, ".", "T", "G", ".", "PASS", ".", "GT", "0/1"),  # other ALT than a's
    ])
    return {"a": a, "b": b}


def test_subject_vcfs_absent_missing_or_ref(subject_vcfs):
    geno = read_subject_vcfs(subject_vcfs)
    assert geno.samples == ["a", "b"]
    assert list(geno.pos) == [100, 200, 250] and list(geno.chrom) == ["chr1"] * 3
    np.testing.assert_allclose(geno.dosage, [[1.0, 0.8], [2.0, np.nan], [np.nan, np.nan]], 1e-6)
    assert geno.skipped == {"not_snv": 1, "multiallelic": 1, "alt_differs_between_subjects": 1}
    ref = read_subject_vcfs(subject_vcfs, absent_as_ref=True)
    np.testing.assert_allclose(ref.dosage, [[1.0, 0.8], [2.0, 0.0], [0.0, np.nan]], 1e-6)


def test_subject_vcf_errors(tmp_path, subject_vcfs):
    two = _vcf(tmp_path / "two.vcf.gz", ["x", "y"], [])
    with pytest.raises(VoxseqError, match="subject c: VCF .* none named 'c'"):
        read_subject_vcfs({**subject_vcfs, "c": two})
    with pytest.raises(VoxseqError, match="subject d: cannot read VCF"):
        read_subject_vcfs({"d": str(tmp_path / "absent.vcf.gz")})


def test_cohort_vcf(tmp_path):
    path = _vcf(tmp_path / "c.vcf.gz", ["s1", "s2", "s3"], [
        ("chr1", 10, "rsA", "A", "C", ".", "PASS", ".", "GT", "0|0", "0|1", "1|1"),
        ("chr1", 20, ".", "A", "<DEL>", ".", "PASS", ".", "GT", "0|0", "0|1", "1|1"),
        ("chr2", 30, ".", "G", "T", ".", "PASS", ".", "GT:DS", "0/1:1.2", "./.:.", "1/1:1.9"),
    ])
    geno = read_cohort_vcf(path, samples=["s3", "s1"])
    assert geno.samples == ["s3", "s1"] and geno.skipped == {"not_snv": 1}
    np.testing.assert_allclose(geno.dosage, [[2.0, 0.0], [1.9, 1.2]], rtol=1e-6)
    with pytest.raises(VoxseqError, match=r"\['s9'\]: not in cohort VCF"):
        read_cohort_vcf(path, samples=["s9"])


def test_hwe_exact_known_values():
    # Wigginton et al. 2005 / plink2 --hardy: balanced counts give 1, a het deficit a tiny p
    p = hwe_exact(np.array([50, 0, 10]), np.array([25, 50, 45]), np.array([25, 50, 45]))
    assert p[0] == pytest.approx(1.0, abs=0.05) and p[1] < 1e-25 and p[2] < 1e-10


def test_variant_and_sample_qc(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    d = rng.binomial(2, 0.3, (6, n)).astype(np.float32)
    d[1] = 0.0
    d[1, :2] = 1.0  # MAC 2
    d[2, : n // 2] = np.nan  # call rate 0.5
    d[3] = np.r_[np.zeros(100), np.full(100, 2.0)]  # no heterozygotes: HWE
    d[4, 150] = np.nan
    d[:, 0] = np.nan  # a sample with no calls
    geno = Genotypes([f"s{i}" for i in range(n)], np.array(["1"] * 6, dtype=object),
                     np.arange(1, 7) * 10, np.array(["A"] * 6, dtype=object),
                     np.array(["G"] * 6, dtype=object), d)
    keep_v, keep_s, rows, srows = variant_qc(geno, min_sample_call_rate=0.8)
    assert not keep_s[0] and keep_s[1:].all()
    assert list(keep_v) == [True, False, False, False, True, True]
    assert [r["reason"] for r in rows[1:4]] == ["maf;mac", "call_rate", "hwe"]
    assert rows[1]["mac"] == 1  # the sample without calls is left out first
    out = tmp_path / "qc.tsv"
    write_qc_report(out, rows, srows, {"not_snv": 3})
    table = read_tsv(out)
    assert table[-1]["id"] == "skipped:not_snv" and table[-1]["mac"] == "3"
    assert read_tsv(tmp_path / "qc.samples.tsv")[0] == {"subject": "s0", "call_rate": "0",
                                                        "pass": "false"}


@pytest.mark.parametrize("n", [1, 4, 7, 13])
def test_bed_round_trip(tmp_path, n):
    rng = np.random.default_rng(n)
    d = rng.integers(0, 3, (9, n)).astype(np.float32)
    d[rng.random(d.shape) < 0.2] = np.nan
    np.testing.assert_array_equal(decode_bed(encode_bed(d), n), d)
    geno = Genotypes([f"s{i}" for i in range(n)], np.array(["1"] * 9, dtype=object),
                     np.arange(9) + 1, np.array(["A"] * 9, dtype=object),
                     np.array(["T"] * 9, dtype=object), d)
    write_bed(tmp_path / "x", geno, chunk=4)
    back = read_bed(tmp_path / "x")
    assert back.samples == geno.samples and list(back.ids) == list(geno.ids)
    assert list(back.alt) == ["T"] * 9 and list(back.ref) == ["A"] * 9
    np.testing.assert_array_equal(back.dosage, d)
    assert (tmp_path / "x.bim").read_text().split("\n")[0] == "1\t1:1:A:T\t0\t1\tT\tA"


def test_bed_rejects_wrong_size(tmp_path):
    geno = Genotypes(["a"], np.array(["1"], dtype=object), np.array([5]),
                     np.array(["A"], dtype=object), np.array(["C"], dtype=object),
                     np.ones((1, 1), np.float32))
    write_bed(tmp_path / "x", geno)
    (tmp_path / "x.fam").write_text("a a 0 0 0 -9\nb b 0 0 0 -9\nc c 0 0 0 -9\nd d 0 0 0 -9\n"
                                    "e e 0 0 0 -9\n")
    with pytest.raises(VoxseqError, match="not a variant-major .bed for 1 variants x 5"):
        read_bed(tmp_path / "x")


def test_genotype_cohort_writes_passing_variants(tmp_path, subject_vcfs):
    from voxseq.genetics.cohort import genotype_cohort

    summary = genotype_cohort(str(tmp_path / "g"), str(tmp_path / "qc.tsv"), vcfs=subject_vcfs,
                              absent_as_ref=True,
                              qc={"min_mac": 1, "min_maf": 0.0, "min_call_rate": 0.5,
                                  "min_sample_call_rate": 0.0})
    # chr1:250 is REF in a (absent) and missing in b: monomorphic, MAC 0
    assert summary["genotype_variants"] == 3 and summary["genotype_variants_pass"] == 2
    assert summary["genotype_skipped"]["not_snv"] == 1
    back = read_bed(tmp_path / "g")
    assert back.samples == ["a", "b"] and list(back.pos) == [100, 200]
    # b's DS 0.8 is a hard call 1 in the .bed and kept as 0.8 beside it
    assert summary["genotype_dosages"] and back.dosage[0, 1] == 1.0
    np.testing.assert_allclose(np.load(tmp_path / "g.dosage.npy")[0], [1.0, 0.8], rtol=1e-6)
    with pytest.raises(VoxseqError, match="neither per-subject VCFs nor a cohort VCF"):
        genotype_cohort(str(tmp_path / "h"), str(tmp_path / "qc2.tsv"))
