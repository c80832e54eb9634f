"""Architecture comparison (``genomics.model.compare``): each architecture trains its own
candidate bundle; the best on validation (mean val Pearson R over the kept tracks) becomes the
cohort's bundle, and a table puts every candidate side by side on the val and test contigs.

The test Pearson here is the training job's, on the test contigs' windows (reverse-complement
averaged predictions, per window bins): the same basis for every candidate. The cohort's
``test_pearson_mean`` comes from ``genomics_infer`` on the chosen bundle.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

from voxseq import VoxseqError
from voxseq.bundle import read_bundle_meta
from voxseq.io.atomic import atomic_path, write_json, write_tsv
from voxseq.model_card import write_model_card

log = logging.getLogger(__name__)

CRITERION = "val_pearson_mean"


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def candidate_row(arch: str, meta: dict) -> dict:
    """One candidate's comparison row from its ``bundle.json`` content."""
    m = meta.get("metrics") or {}
    return {"arch": arch, "val_pearson_mean": _finite(m.get("val_pearson_mean")),
            "test_pearson_mean": _finite(m.get("test_pearson_mean")),
            "best_epoch": m.get("best_epoch"),
            "val_pearson": {t: _finite(v) for t, v in (m.get("val_pearson") or {}).items()},
            "test_pearson": {t: _finite(v) for t, v in (m.get("test_pearson") or {}).items()}}


def choose(rows: list[dict]) -> str:
    """The architecture with the highest finite validation score; ties and undefined scores go
    to the earlier entry (``compare`` order), so with no finite score the first is chosen."""
    if not rows:
        raise VoxseqError("genomics compare: no candidate architecture")
    best = max(range(len(rows)), key=lambda i: (rows[i][CRITERION] is not None,
                                                rows[i][CRITERION] or 0.0, -i))
    return rows[best]["arch"]


def copy_bundle(src: str | Path, dst: str | Path, selection: dict) -> None:
    """Copy a candidate bundle folder to ``dst`` atomically, adding ``selection`` (how it was
    chosen) to its ``bundle.json``; the weights and their digest are unchanged."""
    src = Path(src)
    meta = read_bundle_meta(src, "genomics")
    with atomic_path(dst, is_dir=True) as tmp:
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name != "bundle.json":
                shutil.copy2(f, tmp / f.name)
        write_json(tmp / "bundle.json", {**meta, "selection": selection})
        write_model_card(tmp, {**meta, "selection": selection})


def select_architecture(candidates: dict[str, str | Path], bundle_dir: str | Path,
                        compare_json: str | Path, compare_tsv: str | Path,
                        metrics: dict[str, str | Path] | None = None,
                        metrics_out: str | Path | None = None) -> dict:
    """Choose the best-on-validation candidate and make it the cohort's bundle.

    Parameters
    ----------
    candidates
        Architecture -> candidate bundle folder, in ``compare`` order.
    bundle_dir
        The cohort's bundle folder (``models/<cohort>/genomics``), replaced atomically.
    compare_json, compare_tsv
        The comparison: chosen architecture, criterion, val and test Pearson per architecture
        (JSON also per track; TSV one row per architecture).
    metrics, metrics_out
        Architecture -> per-epoch metrics TSV; the chosen one's is copied to ``metrics_out``
        (the training-curves figure's input).

    Returns
    -------
    dict
        The comparison JSON content.
    """
    rows = []
    for arch, path in candidates.items():
        meta = read_bundle_meta(path, "genomics")
        name = (meta.get("architecture") or {}).get("name")
        if name != arch:
            raise VoxseqError(f"genomics compare: candidate bundle {path} holds {name!r}, "
                              f"expected {arch!r}")
        rows.append(candidate_row(arch, meta))
    chosen = choose(rows)
    if all(r[CRITERION] is None for r in rows):
        log.warning("no candidate has a finite %s: the first, %s, is chosen", CRITERION, chosen)
    out = {"arch": chosen, "criterion": CRITERION,
           "val_pearson_by_arch": {r["arch"]: r["val_pearson_mean"] for r in rows},
           "test_pearson_by_arch": {r["arch"]: r["test_pearson_mean"] for r in rows},
           "test_pearson_basis": "test contigs' windows, per bin, at training (same for every "
                                 "architecture)",
           "candidates": rows}
    copy_bundle(candidates[chosen], bundle_dir,
                {"criterion": CRITERION, "compared": out["val_pearson_by_arch"]})
    if metrics and metrics_out:
        with atomic_path(metrics_out) as tmp:
            shutil.copyfile(metrics[chosen], tmp)
    write_tsv(compare_tsv, [{k: r[k] for k in ("arch", "val_pearson_mean", "test_pearson_mean",
                                               "best_epoch")} | {"chosen": r["arch"] == chosen}
                            for r in rows],
              ["arch", "val_pearson_mean", "test_pearson_mean", "best_epoch", "chosen"])
    write_json(compare_json, out)
    for r in rows:
        log.info("%s: val Pearson %s, test Pearson %s%s", r["arch"], r["val_pearson_mean"],
                 r["test_pearson_mean"], " (chosen)" if r["arch"] == chosen else "")
    return out
