"""The cohort summary: headline metrics per modality and wall time per stage."""

from __future__ import annotations

import json
from pathlib import Path

from voxseq.io.atomic import read_tsv, write_json

MAX_HEADLINE_WARNINGS = 3  # warnings printed in full when a run ends


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
    """Write ``summary.json``: ``imaging.*`` and ``genomics.*`` metrics plus ``stage_seconds``.

    ``genomics.warnings`` lists the genomics cohort's warnings (small val / test splits,
    near-empty libraries, Pearsons that cannot be computed; empty when none). With
    ``genomics.model.compare`` (input ``genomics_compare``, :mod:`voxseq.genomics.compare`),
    ``genomics.arch`` (the chosen architecture), ``genomics.arch_criterion``,
    ``genomics.val_pearson_by_arch`` and ``genomics.test_pearson_by_arch`` (architecture ->
    mean Pearson on the val / test contigs' windows at training) join the genomics block, and
    with motif discovery (input ``genomics_motifs``, :mod:`voxseq.genomics.interpret`)
    ``motifs_found``, ``motifs_planted`` and ``motifs_recovered`` (planted motifs within Hamming
    distance 1; null without planted motifs).
    """
    summary: dict = {"cohort": cohort}
    for modality in ("imaging", "genomics"):
        if modality in inputs:
            summary[modality] = json.loads(Path(inputs[modality]).read_text())
        if f"{modality}_qc" in inputs:  # the QC flags join the modality's block
            summary.setdefault(modality, {}).update(
                json.loads(Path(inputs[f"{modality}_qc"]).read_text())
            )
    if "genomics" in inputs:  # absent from a cohort.json written before warnings existed
        summary["genomics"].setdefault("warnings", [])
    if "genomics_compare" in inputs:
        c = json.loads(Path(inputs["genomics_compare"]).read_text())
        summary.setdefault("genomics", {}).update({
            "arch": c["arch"], "arch_criterion": c["criterion"],
            "val_pearson_by_arch": c["val_pearson_by_arch"],
            "test_pearson_by_arch": c["test_pearson_by_arch"],
        })
    if "genomics_motifs" in inputs:  # motif discovery (genomics_interpret)
        m = json.loads(Path(inputs["genomics_motifs"]).read_text())
        summary.setdefault("genomics", {}).update(
            {k: m[k] for k in ("motifs_found", "motifs_planted", "motifs_recovered")})
    summary["stage_seconds"] = stage_times(bench_dir)
    summary["total_stage_seconds"] = round(sum(summary["stage_seconds"].values()), 2)
    write_json(out, summary)
    return summary


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def warning_lines(modality: str, warnings: list[str]) -> list[str]:
    """Headline lines for a modality's warnings: the count, then the first few in full."""
    if not warnings:
        return []
    n = len(warnings)
    lines = [
        f"  {modality}: {n} warning{'s' if n > 1 else ''} (all in summary.json and the report):"
    ]
    lines += [f"    - {w}" for w in warnings[:MAX_HEADLINE_WARNINGS]]
    if n > MAX_HEADLINE_WARNINGS:
        lines.append(f"    ... and {n - MAX_HEADLINE_WARNINGS} more")
    return lines


def headline(summary_path: str | Path, models: dict[str, str] | None = None) -> list[str]:
    """The lines printed when a run ends: where the results are and the headline metrics.

    Parameters
    ----------
    summary_path
        ``results/<cohort>/summary.json``.
    models
        modality -> bundle folder used (trained or applied), to say where the models are.
    """
    path = Path(summary_path)
    s = json.loads(path.read_text())
    lines = [f"voxseq: cohort {s.get('cohort')}: results in {path.parent}/ (summary: {path})"]
    img, gen = s.get("imaging"), s.get("genomics")
    if img:
        per = ", ".join(f"{k} {_num(v)}" for k, v in (img.get("test_dice_per_label") or {}).items())
        lines.append(
            f"  imaging: {img.get('n_subjects')} subjects, "
            f"test Dice {_num(img.get('test_dice_mean'))}"
            + (f" ({per})" if per else "")
            + f" over {img.get('n_test_labelled')} labelled test subjects"
        )
    if img and img.get("classify_classes"):
        lines.append(
            f"  imaging classifier: AUROC {_num(img.get('classify_oof_auroc'))} out-of-fold "
            f"({img.get('classify_n_oof', 0)} subjects), "
            f"{_num(img.get('classify_test_auroc'))} on test "
            f"({img.get('classify_n_test', 0)} subjects), balanced accuracy "
            f"{_num(img.get('classify_balanced_accuracy'))}"
        )
    if gen:
        lines.append(
            f"  genomics: {gen.get('n_subjects')} subjects, test Pearson "
            f"{_num(gen.get('test_pearson_mean'))} "
            f"(log1p {_num(gen.get('test_pearson_log1p_mean'))}) "
            f"on {', '.join(gen.get('test_contigs') or [])}, variant-effect AUROC "
            f"{_num(gen.get('vep_auroc'))}"
            + (f", Spearman {_num(gen['vep_spearman'])}" if gen.get("vep_spearman") is not None
               else "")
        )
    if gen and gen.get("motifs_recovered") is not None:
        lines.append(
            f"  genomics motifs: {gen['motifs_recovered']} of {gen.get('motifs_planted')} planted "
            f"recovered ({gen.get('motifs_found')} discovered, motifs/motifs.meme)"
        )
    if gen and gen.get("test_pearson_by_arch"):
        lines.append(
            "  genomics architectures (test Pearson at training): "
            + ", ".join(f"{a} {_num(v)}" for a, v in gen["test_pearson_by_arch"].items())
            + f"; chosen {gen.get('arch')} (best validation)"
        )
    for name, block in (("imaging", img), ("genomics", gen)):
        lines += warning_lines(name, (block or {}).get("warnings") or [])
    if models:
        lines.append("  models: " + ", ".join(f"{k} {v}" for k, v in models.items()))
    lines.append(
        f"  stage time {s.get('total_stage_seconds', 0):.0f} s; figures: snakemake --report "
        "report.html (add the same --configfile)"
    )
    return lines
