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
    distance 1; null without planted motifs). With the association (inputs ``association``,
    ``genotypes``) a ``genetics`` block (:func:`genetics_block`); with the subject model
    (input ``subject_model``, its metrics) a ``subject_model`` block
    (:func:`subject_model_block`).
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
    if "synthesis" in inputs:
        summary.setdefault("imaging", {}).update(
            synthesis_block(inputs["synthesis"], inputs.get("synthesis_dice")))
    if "association" in inputs:
        summary["genetics"] = genetics_block(inputs["association"], inputs.get("genotypes"),
                                             inputs.get("qtl_truth"))
    if "subject_model" in inputs:
        summary["subject_model"] = subject_model_block(inputs["subject_model"])
    summary["stage_seconds"] = stage_times(bench_dir)
    summary["total_stage_seconds"] = round(sum(summary["stage_seconds"].values()), 2)
    write_json(out, summary)
    return summary


def subject_model_block(metrics: str | Path) -> dict:
    """The subject model's summary from its metrics JSON
    (:func:`voxseq.subject_model.evaluate.evaluate`): ``target``, ``n_both`` (subjects with
    both modalities, on whom the four models are compared), ``counts``, ``oof_auroc`` and
    ``balanced_accuracy`` per model (imaging, genomics, late, intermediate), ``fusion`` and
    ``fusion_gain``: the fused model's AUROC minus the better single modality's on the same
    subjects, ``versus`` (that modality), ``ci95`` (paired bootstrap) and ``n_bootstrap``;
    ``comparisons``: the same for both fusions."""
    m = json.loads(Path(metrics).read_text())
    both = m["both"]

    def gain(c: dict) -> dict:
        return {"versus": c["versus"], "difference": c["difference"],
                "ci95": [c["low"], c["high"]], "n": c["n"], "n_bootstrap": c["n_bootstrap"]}

    return {"target": m.get("target"), "classes": m["classes"], "n_both": m["counts"]["both"],
            "counts": m["counts"],
            "oof_auroc": {k: v["auroc"] for k, v in both.items()},
            "balanced_accuracy": {k: v["balanced_accuracy"] for k, v in both.items()},
            "fusion": m["fusion"],
            "fusion_gain": gain(m["comparison"][m["fusion"]])
            if m["fusion"] in m["comparison"] else None,
            "comparisons": {k: gain(c) for k, c in m["comparison"].items()}}


def genetics_block(association: str | Path, genotypes: str | Path | None = None,
                   qtl_truth: str | Path | None = None) -> dict:
    """``summary.json``'s ``genetics`` block from ``association.json`` and ``genotypes.json``.

    Keys: ``subjects``, ``variants_tested``, ``covariates``, ``pcs``; ``genotype_qc``
    (``variants``, ``variants_pass``, ``samples``, ``samples_pass``, ``skipped``; None without
    ``genotypes``); ``phenotypes``: phenotype -> ``top_variant``, ``top_p``, ``top_beta``,
    ``lambda_gc``, ``tested``, ``hits`` (p < 5e-8). With the demo's ``qtl_truth.tsv``:
    ``planted_qtl`` (``id``, ``phenotype``, ``recovered``: the top variant of its phenotype with
    p < 0.05 / tested).
    """
    a = json.loads(Path(association).read_text())
    qc = None
    if genotypes:
        g = json.loads(Path(genotypes).read_text())
        qc = {k: g[f"genotype_{k}"] for k in
              ("variants", "variants_pass", "samples", "samples_pass", "skipped")}
    keys = ("top_variant", "top_p", "top_beta", "lambda_gc", "tested", "hits")
    out = {
        "subjects": a["association_subjects"],
        "variants_tested": a["association_variants"],
        "covariates": a["association_covariates"],
        "pcs": a["association_pcs"],
        "genotype_qc": qc,
        "phenotypes": {name: {k: v.get(k) for k in keys}
                       for name, v in a["association_phenotypes"].items()},
    }
    if qtl_truth:
        from voxseq.io.atomic import read_tsv

        q = read_tsv(qtl_truth)[0]
        top = out["phenotypes"].get(q["phenotype"]) or {}
        out["planted_qtl"] = {"id": q["id"], "phenotype": q["phenotype"], "recovered": bool(
            top.get("top_variant") == q["id"] and top.get("top_p") is not None
            and top["top_p"] < 0.05 / max(top.get("tested") or 1, 1))}
    return out


def synthesis_block(metrics: str | Path, dice: str | Path | None = None) -> dict:
    """The imaging block's synthesis keys from ``synthesis/metrics.json`` (and ``dice.json``).

    ``synthesis_channel``, ``synthesis_kept`` (``gan`` or ``l1``), ``synthesis_validation``
    (generator -> validation SSIM), ``synthesis_n_scored`` (test subjects), and per method
    (``gan``, ``l1``, ``copy``, ``zero``): ``synthesis_ssim`` (``lesion``, ``outside``,
    ``body``), ``synthesis_psnr``, ``synthesis_mae``, ``synthesis_phantom_regions`` (summed
    over the lesion-free scored subjects: the planted check); with ``dice``:
    ``synthesis_dice`` (method, ``real`` included -> label -> mean Dice),
    ``synthesis_dice_drop`` (method -> label -> real minus the method's) and the planted check,
    ``synthesis_lesion_free_subjects`` and ``synthesis_lesion_free_voxels`` (method -> voxels
    the segmentation calls lesion on those subjects with the method's channel in place).
    """
    m = json.loads(Path(metrics).read_text())
    means = m["means"]
    free = [r for r in m["subjects"] if r.get("lesion_free") in (True, "True", "true")]
    out = {
        "synthesis_channel": m["target"],
        "synthesis_kept": m["kept"],
        "synthesis_validation": m.get("validation"),
        "synthesis_n_scored": len({r["subject"] for r in m["subjects"]}),
        "synthesis_ssim": {k: {p: v.get(f"ssim_{p}") for p in ("lesion", "outside", "body")}
                           for k, v in means.items() if v},
        "synthesis_psnr": {k: v.get("psnr") for k, v in means.items() if v},
        "synthesis_mae": {k: v.get("mae") for k, v in means.items() if v},
        "synthesis_n_lesion_free": len({r["subject"] for r in free}),
        "synthesis_phantom_regions": {
            k: int(sum(float(r["phantom_regions"]) for r in free if r["method"] == k))
            for k, v in means.items() if v
        },
    }
    if dice:
        d = json.loads(Path(dice).read_text())
        out["synthesis_dice"] = d["means"]
        out["synthesis_dice_drop"] = d["drop"]
        out["synthesis_lesion_free_subjects"] = len(d.get("lesion_free_subjects") or [])
        out["synthesis_lesion_free_voxels"] = d.get("lesion_free_voxels")
    return out


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def headline_values(summary: dict) -> dict:
    """The headline numbers of ``summary.json``: the one source of the lines printed when a run
    ends (:func:`headline`) and of the results page's cards
    (:func:`voxseq.report.headline_numbers`).

    Parameters
    ----------
    summary
        ``summary.json`` content.

    Returns
    -------
    dict
        ``cohort``; ``imaging``, ``classifier``, ``genomics``, ``motifs`` and ``architectures``:
        a dict of numbers each, or None where the run has none (no ``imaging`` or ``genomics``
        block, no ``classify_classes``, no motif discovery, no architecture comparison);
        ``genetics`` (subjects, variants tested, phenotype -> its top hit, the demo's planted
        QTL) or None; ``subject_model`` (:func:`subject_model_block`) or None; ``warnings``
        (modality -> list of str); ``stage_seconds`` (stage ->
        seconds) and ``total_stage_seconds``. Counts the summary lacks are 0 (``n_subjects`` and
        ``n_test_labelled`` stay None), other numbers None.
    """
    img, gen = summary.get("imaging"), summary.get("genomics")
    out: dict = {"cohort": summary.get("cohort"), "imaging": None, "classifier": None,
                 "genomics": None, "motifs": None, "architectures": None}
    if img:
        out["imaging"] = {
            "n_subjects": img.get("n_subjects"), "n_labelled": img.get("n_labelled", 0),
            "n_test_labelled": img.get("n_test_labelled"),
            "test_dice_mean": img.get("test_dice_mean"),
            "test_dice_per_label": img.get("test_dice_per_label") or {},
        }
        if img.get("classify_classes"):
            out["classifier"] = {
                "oof_auroc": img.get("classify_oof_auroc"),
                "oof_auroc_ci95": img.get("classify_oof_auroc_ci95") or [None, None],
                "n_oof": img.get("classify_n_oof", 0),
                "test_auroc": img.get("classify_test_auroc"),
                "n_test": img.get("classify_n_test", 0),
                "balanced_accuracy": img.get("classify_balanced_accuracy"),
            }
    if gen:
        out["genomics"] = {
            "n_subjects": gen.get("n_subjects"), "n_tracks": gen.get("n_tracks", 0),
            "test_pearson_mean": gen.get("test_pearson_mean"),
            "test_pearson_log1p_mean": gen.get("test_pearson_log1p_mean"),
            "test_contigs": gen.get("test_contigs") or [],
            "vep_auroc": gen.get("vep_auroc"),
            "vep_n_effect": gen.get("vep_n_effect", gen.get("vep_n_motif_breaking", 0)) or 0,
            "vep_n_neutral": gen.get("vep_n_neutral", 0),
            "n_variants": gen.get("n_variants", 0),
            "n_variants_scored": gen.get("n_variants_scored", 0),
            "vep_spearman": gen.get("vep_spearman"),
            "vep_n_spearman": gen.get("vep_n_spearman", 0),
        }
        if gen.get("motifs_recovered") is not None:
            out["motifs"] = {"recovered": gen["motifs_recovered"],
                             "planted": gen.get("motifs_planted"),
                             "found": gen.get("motifs_found")}
        if gen.get("test_pearson_by_arch"):
            out["architectures"] = {"test_pearson": gen["test_pearson_by_arch"],
                                    "chosen": gen.get("arch")}
    out["synthesis"] = None
    if img and img.get("synthesis_channel"):
        out["synthesis"] = {k[len("synthesis_"):]: v for k, v in img.items()
                            if k.startswith("synthesis_")}
        out["synthesis"]["n_synthetic"] = img.get("n_synthetic")
    if gx := summary.get("genetics"):
        out["genetics"] = {"subjects": gx.get("subjects"),
                           "variants_tested": gx.get("variants_tested"),
                           "phenotypes": gx.get("phenotypes") or {},
                           "planted_qtl": gx.get("planted_qtl")}
    else:
        out["genetics"] = None
    out["subject_model"] = summary.get("subject_model")
    out["warnings"] = {name: (block or {}).get("warnings") or []
                       for name, block in (("imaging", img), ("genomics", gen))}
    out["stage_seconds"] = summary.get("stage_seconds") or {}
    out["total_stage_seconds"] = summary.get("total_stage_seconds")
    return out


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


def genetics_line(gx: dict) -> str:
    """The association's headline: per phenotype its top variant, p and lambda GC; whether the
    demo's planted QTL was recovered."""
    parts = [f"{name} top {v['top_variant']} p {_num(v['top_p'], '.2g')} "
             f"(lambda GC {_num(v['lambda_gc'], '.2f')})"
             for name, v in gx["phenotypes"].items()]
    line = (f"  genetics: {gx['subjects']} subjects x {gx['variants_tested']} variants; "
            + "; ".join(parts))
    if q := gx.get("planted_qtl"):
        line += (f"; planted QTL {q['id']} ({q['phenotype']}) "
                 + ("recovered" if q["recovered"] else "NOT recovered"))
    return line


def synthesis_line(syn: dict) -> str:
    """The synthesis's headline: the channel, how many subjects it filled, each method's test
    lesion SSIM and lesion-label Dice (the last label), the kept generator, the planted check."""
    methods = [m for m in ("gan", "l1", "copy", "zero") if m in syn["ssim"]]
    names = {"gan": "GAN", "l1": "L1", "copy": "copy", "zero": "zero-fill"}
    ssim = ", ".join(f"{names[m]} {_num(syn['ssim'][m]['lesion'])}" for m in methods)
    line = (f"  synthesis: {syn['channel']} for {syn.get('n_synthetic') or 0} subjects "
            f"(kept {names[syn['kept']]}); lesion SSIM on {syn['n_scored']} test subjects: {ssim}")
    if dice := syn.get("dice"):
        label = next(reversed(dice["real"]))
        line += f"; {label} Dice " + ", ".join(
            f"{'real' if m == 'real' else names[m]} {_num(v[label])}" for m, v in dice.items())
    if syn.get("lesion_free_subjects"):
        vox = syn["lesion_free_voxels"]
        line += (f"; lesion voxels segmented on {syn['lesion_free_subjects']} lesion-free: "
                 f"{vox.get(syn['kept'], 0)} synthesised, {vox.get('real', 0)} real")
    return line


def subject_model_line(sm: dict) -> str:
    """The headline line of the subject model: each model's out-of-fold AUROC and the fused
    model's gain over the better single modality with its paired 95 % interval."""
    aucs = ", ".join(f"{k} {_num(v)}" for k, v in sm["oof_auroc"].items())
    line = f"  subject model ({sm['target']}): out-of-fold AUROC {aucs} ({sm['n_both']} subjects)"
    if g := sm.get("fusion_gain"):
        line += (f"; {sm['fusion']} - {g['versus']} {g['difference']:+.3f} "
                 f"[95% {g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]")
    return line


def headline(summary_path: str | Path, models: dict[str, str] | None = None) -> list[str]:
    """The lines printed when a run ends: where the results are and the headline metrics
    (:func:`headline_values`).

    Parameters
    ----------
    summary_path
        ``results/<cohort>/summary.json``.
    models
        modality -> bundle folder used (trained or applied), to say where the models are.
    """
    path = Path(summary_path)
    h = headline_values(json.loads(path.read_text()))
    lines = [f"voxseq: cohort {h['cohort']}: results in {path.parent}/ (summary: {path})"]
    if (img := h["imaging"]) is not None:
        per = ", ".join(f"{k} {_num(v)}" for k, v in img["test_dice_per_label"].items())
        lines.append(
            f"  imaging: {img['n_subjects']} subjects, "
            f"test Dice {_num(img['test_dice_mean'])}"
            + (f" ({per})" if per else "")
            + f" over {img['n_test_labelled']} labelled test subjects"
        )
    if (cls := h["classifier"]) is not None:
        lines.append(
            f"  imaging classifier: AUROC {_num(cls['oof_auroc'])} out-of-fold "
            f"({cls['n_oof']} subjects), {_num(cls['test_auroc'])} on test "
            f"({cls['n_test']} subjects), balanced accuracy {_num(cls['balanced_accuracy'])}"
        )
    if (gen := h["genomics"]) is not None:
        lines.append(
            f"  genomics: {gen['n_subjects']} subjects, test Pearson "
            f"{_num(gen['test_pearson_mean'])} (log1p {_num(gen['test_pearson_log1p_mean'])}) "
            f"on {', '.join(gen['test_contigs'])}, variant-effect AUROC {_num(gen['vep_auroc'])}"
            + (f", Spearman {_num(gen['vep_spearman'])}" if gen["vep_spearman"] is not None
               else "")
        )
    if (motifs := h["motifs"]) is not None:
        lines.append(
            f"  genomics motifs: {motifs['recovered']} of {motifs['planted']} planted "
            f"recovered ({motifs['found']} discovered, motifs/motifs.meme)"
        )
    if (arch := h["architectures"]) is not None:
        lines.append(
            "  genomics architectures (test Pearson at training): "
            + ", ".join(f"{a} {_num(v)}" for a, v in arch["test_pearson"].items())
            + f"; chosen {arch['chosen']} (best validation)"
        )
    if (syn := h["synthesis"]) is not None:
        lines.append(synthesis_line(syn))
    if (gx := h["genetics"]) is not None:
        lines.append(genetics_line(gx))
    if (sm := h["subject_model"]) is not None:
        lines.append(subject_model_line(sm))
    for name, warnings in h["warnings"].items():
        lines += warning_lines(name, warnings)
    if models:
        lines.append("  models: " + ", ".join(f"{k} {v}" for k, v in models.items()))
    lines.append(
        f"  stage time {h['total_stage_seconds'] or 0:.0f} s; figures: snakemake --report "
        "report.html (add the same --configfile)"
    )
    return lines
