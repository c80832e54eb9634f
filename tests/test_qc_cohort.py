"""The QC cohort summary's scoring of the demo's planted duplication, on hand-made regions."""

from __future__ import annotations

from voxseq.qc.cohort import duplication_recovery

REGIONS = [
    {"subject": "g01", "contig": "chr1", "start": 1000, "end": 3000},
    {"subject": "g01", "contig": "chr1", "start": 3500, "end": 4000},
    {"subject": "g02", "contig": "chr1", "start": 0, "end": 10000},  # another subject's call
    {"subject": "g01", "contig": "chr2", "start": 1000, "end": 4000},  # another contig
]


def test_duplication_scored_against_its_subjects_regions():
    truth = [
        {"subject": "g03", "modality": "genomics", "kind": "failed_library",
         "contig": "", "start": "", "end": ""},
        {"subject": "g01", "modality": "genomics", "kind": "duplication",
         "contig": "chr1", "start": "2000", "end": "4000"},
    ]
    out = duplication_recovery(REGIONS, truth)
    # best single region: 1000-3000 overlaps 1000 bp of the 2000 bp truth, over max(2000, 2000)
    # covered: 2000-3000 and 3500-4000 of 2000-4000
    assert out == {"qc_duplication_overlap": 0.5, "qc_duplication_covered": 0.75}
    assert list(out) == ["qc_duplication_overlap", "qc_duplication_covered"]


def test_no_planted_duplication_adds_nothing():
    assert duplication_recovery(REGIONS, []) == {}
    missed = [{"subject": "g04", "modality": "genomics", "kind": "duplication",
               "contig": "chr1", "start": "0", "end": "300"}]
    assert duplication_recovery(REGIONS, missed) == {
        "qc_duplication_overlap": 0.0, "qc_duplication_covered": 0.0}
