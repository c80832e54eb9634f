"""The QC stage through Snakemake on the demo cohort with its planted outliers, at two generator
seeds (opt-in: ``--runslow``, about 5 minutes per seed on 2 cores).

The demo's own scale (24 subjects + 2 outliers, full-size volumes, the default config), up to the
QC scoring rules: the tiny test cohort cannot carry this check, because its 40 mm field of view
is mostly body, so a ghost half a field of view away lands on tissue. Measured there at seed 7
(commit of this test): the ghosted subject's background differs from the cohort mean by 0.111
(mean square, normalised units) against up to 0.103 for clean subjects, i.e. not an outlier in
the data, whatever the detector.
"""

from __future__ import annotations

import pytest
from conftest import run_snakemake

from voxseq.genomics.qc import region_overlap
from voxseq.io.atomic import read_tsv


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11])
def test_planted_outliers_are_flagged(tmp_path, seed):
    """Every planted imaging outlier and the failed library flagged, at most one clean subject
    per modality, and the duplication called with at least 80 % reciprocal overlap."""
    run_snakemake(tmp_path, "--config", f"seed={seed}", "--cores", "2",
                  "--until", "imaging_qc", "genomics_qc", timeout=1800)
    res = tmp_path / "results/demo"
    truth = read_tsv(res / "demo_input/qc_truth.tsv")
    for modality in ("imaging", "genomics"):
        rows = read_tsv(res / f"{modality}/qc/qc.tsv")
        flagged = {r["subject"] for r in rows if r["flagged"] == "true"}
        planted = {t["subject"] for t in truth if t["modality"] == modality}
        must = {t["subject"] for t in truth if t["modality"] == modality
                and t["kind"] != "duplication"}
        assert must <= flagged, (modality, rows)
        assert len(flagged - planted) <= 1, (modality, rows)
        # training subjects are scored by models that did not see them, or left out
        if modality == "genomics":
            assert all("scored out of fold" in r["reason"] for r in rows if r["split"] == "train")
    dup = next(t for t in truth if t["kind"] == "duplication")
    regions = [r for r in read_tsv(res / "genomics/qc/qc_regions.tsv")
               if r["subject"] == dup["subject"]]
    assert region_overlap(regions, dup) >= 0.8, regions
