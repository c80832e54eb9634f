"""The run plan's inputs: the sample sheet and reference a run reads, the demo's planned rows,
and every subject's split, decided before any job."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from voxseq import VoxseqError
from voxseq.plan.layout import Layout


def at_workdir(workdir: Path, path: str) -> Path:
    """``path`` as the workflow sees it: relative to the working directory (kept as written
    when that is the current directory, so messages name the path the user wrote)."""
    p = Path(path)
    if p.is_absolute() or workdir.resolve() == Path.cwd():
        return p
    return workdir / p


def resolve_inputs(config: dict, layout: Layout, workdir: Path) -> tuple[str, str | None]:
    """The sample sheet and reference this run reads: the demo writes its own; any other cohort
    must name both (a relative path is resolved against the working directory)."""
    demo, genomics = config["demo"]["enabled"], config["genomics"]["enabled"]
    ref = config["genomics"].get("reference")
    if demo:
        if config.get("samples"):
            raise VoxseqError(
                f"config samples: {config['samples']!r} is set while demo.enabled is true; "
                "the demo writes its own sample sheet. To run your own cohort, set "
                "demo: {enabled: false}"
            )
        demo_ref = layout("demo_reference")
        if genomics and ref and ref != demo_ref:
            raise VoxseqError(
                f"config genomics.reference: {ref!r} is set while demo.enabled is true; the "
                f"demo writes and uses its own reference ({demo_ref}). Set "
                "demo: {enabled: false} to use yours"
            )
        return layout("demo_sheet"), demo_ref if genomics else None
    sheet = config.get("samples")
    if not sheet:
        raise VoxseqError(
            "config samples: not set. With demo.enabled false the config must name the "
            "cohort's sample sheet (a TSV; a relative path is resolved against the working "
            "directory, i.e. where snakemake runs or its --directory)"
        )
    tried = at_workdir(workdir, sheet)
    if not tried.is_file():
        raise VoxseqError(
            f"config samples: sample sheet {sheet}: file not found (looked for "
            f"{tried.resolve()}; a relative path is resolved against the working "
            f"directory {workdir.resolve()}, i.e. where snakemake runs or its --directory)"
        )
    if genomics and not ref:
        raise VoxseqError(
            "config genomics.reference: not set. With genomics.enabled the config must name "
            "the reference FASTA the BAM/CRAM files were aligned to"
        )
    return sheet, ref if genomics else None


def demo_ids(config: dict) -> tuple[list[str], list[str]]:
    """The demo's subject ids: ``n_subjects`` regular ones, then the QC outliers (if any)."""
    from voxseq.demo.cohort import outlier_ids

    regular = [f"{config['cohort']}{i + 1:03d}" for i in range(config["demo"]["n_subjects"])]
    return regular, outlier_ids(regular) if config["demo"]["outliers"] else []


def demo_rows(config: dict, layout: Layout) -> dict[str, dict[str, str]]:
    """The rows the demo rule writes (known before it runs, so the DAG is complete). The
    regular subjects' classes (and, with both modalities, outcomes) are drawn by the demo
    (every one gets one; the cells are empty here); the outliers have none."""
    from voxseq.demo.cohort import labelled_indices
    from voxseq.demo.imaging import demo_channel_names
    from voxseq.demo.layout import genomics_files, imaging_files
    from voxseq.demo.qtl import demo_covariates

    d = config["demo"]
    regular, outliers = demo_ids(config)
    labelled = labelled_indices(config["seed"], len(regular), d["label_fraction"])
    missing, _ = demo_gaps(config, regular, labelled) if d["imaging"] else ({}, [])
    extra = demo_channel_names(d["imaging_channels"])[1:] if d["imaging"] else []
    base = layout("demo_dir")
    rows = {}
    for i, sid in enumerate(regular + outliers):
        row = {"subject": sid, "image": "", "label": "", "bam": "", "vcf": ""}
        if d["imaging"]:
            files = imaging_files(sid, extra)
            row.update({k: f"{base}/{v}" for k, v in files.items()})
            if i not in labelled:
                row["label"] = ""
            for name in missing.get(sid, ()):
                row[f"image_{name}"] = ""
        if d["genomics"]:
            row.update({k: f"{base}/{v}" for k, v in genomics_files(sid).items()})
        if sid in outliers:
            row["class"] = ""
        if d["imaging"] and d["genomics"]:  # the planted outcome (voxseq.demo.outcome)
            row["outcome"] = ""
        row.update(demo_covariates(config["seed"], i))  # as the demo writes them
        rows[sid] = row
    return rows


def demo_gaps(config: dict, regular: list[str], labelled: set[int] | None = None):
    """The demo's missing images and lesion-free subjects (:func:`voxseq.demo.cohort.demo_gaps`)
    as the demo rule draws them."""
    from voxseq.demo.cohort import demo_gaps as draw
    from voxseq.demo.cohort import labelled_indices

    d = config["demo"]
    if labelled is None:
        labelled = labelled_indices(config["seed"], len(regular), d["label_fraction"])
    return draw(
        config["seed"], regular, config["splits"], d["imaging_channels"], d["missing_fraction"],
        d["lesion_free"], labelled, qtl=bool(d["imaging"] and d["genomics"]),
    )


def load_subjects(config: dict, layout: Layout, sheet: str, workdir: Path) -> dict[str, dict]:
    """subject -> sheet row (the demo's planned rows, or the validated sample sheet)."""
    if config["demo"]["enabled"]:
        return demo_rows(config, layout)
    from voxseq.io.sheet import read_sheet

    return {r["subject"]: r for r in read_sheet(at_workdir(workdir, sheet))}


def dag_splits(
    subjects: Mapping[str, Mapping[str, str]], seed: int, fractions: Mapping[str, float]
) -> dict[str, str]:
    """Each subject's split, known before any job runs: the sheet's, else the same hash-based
    assignment cohort_sheet writes (so rules can depend on the training subjects alone)."""
    from voxseq.io.sheet import assign_splits

    rows = [{"subject": s, "split": r.get("split", "")} for s, r in subjects.items()]
    return {r["subject"]: r["split"] for r in assign_splits(rows, seed, dict(fractions))}
