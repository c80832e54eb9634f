"""A modality's QC results for the cohort: ``qc.tsv``, the latent map, the summary block."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.io.atomic import read_tsv, write_json, write_tsv
from voxseq.qc.plots import latent_map, score_strip

log = logging.getLogger(__name__)

QC_COLUMNS = ("subject", "split", "score", "flagged", "reason", "error")


def colour_values(sheet_rows: Sequence[dict], subjects: Sequence[str], colour_by: str) -> tuple:
    """The sheet column that colours the latent map: ``colour_by`` when any subject has a value,
    else ``class``, else none (all "")."""
    rows = {r["subject"]: r for r in sheet_rows}
    for column in dict.fromkeys([colour_by, "batch", "class"]):
        values = [rows.get(s, {}).get(column, "") for s in subjects]
        if any(values):
            return column, values
    return "", [""] * len(subjects)


def flagged_subjects(tables: Sequence[str | Path] | None) -> list[str]:
    """The subjects flagged in ``qc.tsv`` tables (``qc.exclude_flagged``), in table order;
    None or []: none."""
    out: list[str] = []
    for table in tables or []:
        out += [r["subject"] for r in read_tsv(table) if r["flagged"] == "true"]
    return out


def without_flagged(subjects: dict[str, str], tables: Sequence[str | Path] | None) -> dict:
    """``subjects`` (subject -> path) less those flagged in ``tables`` (logged); the
    ``qc.exclude_flagged`` filter of the training rules. None or []: unchanged."""
    drop = set(flagged_subjects(tables)) & set(subjects)
    if drop:
        log.warning(
            "QC: %d flagged subject(s) kept out of training: %s", len(drop), ", ".join(sorted(drop))
        )
    return {s: p for s, p in subjects.items() if s not in drop}


def read_truth(path: str | None, modality: str) -> list[dict]:
    """The demo's planted defects of ``modality`` (``qc_truth.tsv``); [] without one."""
    if not path or not Path(path).is_file():
        return []
    return [r for r in read_tsv(path) if r["modality"] == modality]


def duplication_recovery(regions: Sequence[dict], truth: Sequence[dict]) -> dict:
    """How well the called regions recover the demo's planted duplications (copy-number gains).

    Parameters
    ----------
    regions
        Called regions (``subject``, ``contig``, ``start``, ``end``), every subject's.
    truth
        :func:`read_truth` rows of the genomics modality; those of ``kind`` ``duplication``
        are scored against the regions called in their subject.

    Returns
    -------
    dict
        ``qc_duplication_overlap`` (the largest reciprocal overlap of one region with the planted
        interval, :func:`voxseq.genomics.qc.region_overlap`) and ``qc_duplication_covered`` (the
        fraction of it that the subject's regions cover), each rounded to 3 decimals, of the
        last planted duplication; empty without one.
    """
    from voxseq.genomics.qc import covered_fraction, region_overlap  # pysam: genomics env only

    out = {}
    for t in truth:
        if t["kind"] == "duplication":
            mine = [r for r in regions if r["subject"] == t["subject"]]
            want = {"contig": t["contig"], "start": int(t["start"]), "end": int(t["end"])}
            out["qc_duplication_overlap"] = round(region_overlap(mine, want), 3)
            out["qc_duplication_covered"] = round(covered_fraction(mine, want), 3)
    return out


def write_cohort_qc(
    modality: str,
    rows: list[dict],
    codes: np.ndarray,
    sheet_rows: Sequence[dict],
    threshold: float,
    colour_by: str,
    outputs: dict[str, str],
    truth: Sequence[dict] = (),
    extra: dict | None = None,
) -> dict:
    """Write ``qc.tsv``, ``latent.tsv``, the score strip and latent map figures and ``qc.json``.

    ``qc.json`` (read by the summary): ``qc_flagged`` (subject ids), ``qc_scored``,
    ``qc_threshold``, and with a planted ``truth`` (the demo), which planted subjects were
    flagged and which clean ones were. ``extra`` adds modality-specific keys.
    """
    split = {r["subject"]: r.get("split", "") for r in sheet_rows}
    table = [
        {
            "subject": r["subject"],
            "split": split.get(r["subject"], ""),
            "score": "" if math.isnan(r["score"]) else round(r["score"], 3),
            "flagged": "true" if r["flagged"] else "false",
            "reason": r["reason"],
            "error": round(r["error"], 6),
        }
        for r in rows
    ]
    write_tsv(outputs["table"], table, QC_COLUMNS)
    subjects = [r["subject"] for r in rows]
    flagged = [r["subject"] for r in rows if r["flagged"]]
    column, values = colour_values(sheet_rows, subjects, colour_by)
    coords = latent_map(
        codes,
        subjects,
        values,
        outputs["latent_png"],
        f"{modality} QC: latent codes (PCA), coloured by {column or 'nothing'}",
        flagged=flagged,
        legend_title=column,
    )
    write_tsv(
        outputs["latent"],
        [
            {
                "subject": s,
                column or "colour": v,
                "pc1": round(float(a), 5),
                "pc2": round(float(b), 5),
            }
            for s, v, (a, b) in zip(subjects, values, coords, strict=True)
        ],
        ["subject", column or "colour", "pc1", "pc2"],
    )
    score_strip(
        [{**r, "group": split.get(r["subject"], "")} for r in rows],
        threshold,
        outputs["scores_png"],
        f"{modality} QC: robust reconstruction-error scores",
    )
    summary = {
        "qc_flagged": flagged,
        "qc_scored": int(sum(not math.isnan(r["score"]) for r in rows)),
        "qc_threshold": threshold,
    }
    if truth:
        planted = sorted({t["subject"] for t in truth})
        summary["qc_planted"] = planted
        summary["qc_planted_flagged"] = [s for s in planted if s in flagged]
        summary["qc_clean_flagged"] = [s for s in flagged if s not in planted]
    summary.update(extra or {})
    write_json(outputs["json"], summary)
    return summary
