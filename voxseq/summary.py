"""The cohort summary: headline metrics per modality and wall time per stage."""

from __future__ import annotations

import json
from pathlib import Path

from voxseq.io.atomic import read_tsv, write_json


def stage_times(bench_dir: str | Path) -> dict[str, float]:
    """Summed wall seconds per stage from Snakemake ``benchmark:`` files.

    The stage is the benchmark's path below ``bench_dir`` without the subject part:
    ``imaging/normalise/<subject>.tsv`` -> ``imaging.normalise``; ``imaging/train.tsv`` ->
    ``imaging.train``; ``demo_cohort.tsv`` -> ``demo_cohort``.
    """
    bench_dir = Path(bench_dir)
    out: dict[str, float] = {}
    for f in sorted(bench_dir.rglob("*.tsv")):
        rel = f.relative_to(bench_dir)
        parts = rel.parts[:-1] if len(rel.parts) > 2 else (*rel.parts[:-1], rel.stem)
        key = ".".join(parts)
        rows = read_tsv(f)
        out[key] = round(out.get(key, 0.0) + sum(float(r["s"]) for r in rows[-1:]), 2)
    return out


def write_summary(out: str | Path, cohort: str, inputs: dict[str, str], bench_dir: str) -> dict:
    """Write ``summary.json``: ``imaging.*`` and ``genomics.*`` metrics plus ``stage_seconds``."""
    summary: dict = {"cohort": cohort}
    for modality in ("imaging", "genomics"):
        if modality in inputs:
            summary[modality] = json.loads(Path(inputs[modality]).read_text())
    summary["stage_seconds"] = stage_times(bench_dir)
    summary["total_stage_seconds"] = round(sum(summary["stage_seconds"].values()), 2)
    write_json(out, summary)
    return summary
