"""The demo cohort: images, labels, BAMs, VCFs and an ordinary sample sheet pointing at them.

With ``outliers=True`` two extra subjects follow the regular ones (ids from
:func:`outlier_ids`): scans that arrived broken and unannotated, for quality control. Each has an
image but no label file and an empty class cell, and a BAM and VCF when genomics is on; they are
drawn with indices ``n`` and ``n + 1``, so the regular subjects' data do not change. The first
has motion ghosting and a duplication, the second inverted contrast and a failed library (see
:mod:`voxseq.demo.imaging` and :mod:`voxseq.demo.genomics`). The truth is written to
``qc_truth.tsv`` (columns ``QC_TRUTH_COLUMNS``): one row per subject and modality, ``kind`` one
of ``motion_ghosting``, ``inverted_contrast``, ``duplication``, ``failed_library``; ``contig``,
``start``, ``end`` (0-based, half-open) only for the duplication.

Every subject gets ``age`` and ``sex`` covariates; with both modalities, a planted lesion QTL
(:mod:`voxseq.demo.qtl`, truth in ``genomics/qtl_truth.tsv``) links the two, and a planted
``outcome`` column depends on both (:mod:`voxseq.demo.outcome`, truth in ``outcome_truth.tsv``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from voxseq.demo.imaging import ImagingDemoConfig, generate_imaging
from voxseq.demo.outcome import OUTCOME_COLUMN
from voxseq.io.atomic import write_tsv
from voxseq.io.sheet import COLUMNS, channel_columns

log = logging.getLogger(__name__)

DEMO_COVARIATES = ("age", "sex")
QC_TRUTH_COLUMNS = ("subject", "modality", "kind", "contig", "start", "end")
OUTLIER_KINDS = (
    {"imaging": "motion_ghosting", "genomics": "duplication"},
    {"imaging": "inverted_contrast", "genomics": "failed_library"},
)


def outlier_ids(subjects: list[str], n: int = 2) -> list[str]:
    """Ids of ``n`` extra subjects that continue the numbering of the last id.

    The last id's trailing digits are incremented with their zero-padding kept (``demo024`` ->
    ``demo025``, ``demo026``); an id without trailing digits gets ``<last>_qc1``, ``<last>_qc2``.
    Ids already in ``subjects`` are skipped.
    """
    if not subjects:
        raise ValueError("outlier_ids: no subjects to continue")
    last = subjects[-1]
    m = re.fullmatch(r"(.*?)(\d+)", last)
    if m:
        prefix, digits = m.groups()
        width, k = len(digits), int(digits)

        def make(j: int) -> str:
            return f"{prefix}{k + j:0{width}d}"
    else:

        def make(j: int) -> str:
            return f"{last}_qc{j}"

    taken, out, j = set(subjects), [], 1
    while len(out) < n:
        sid = make(j)
        if sid not in taken:
            out.append(sid)
            taken.add(sid)
        j += 1
    return out


def labelled_indices(seed: int, n: int, label_fraction: float) -> set[int]:
    """Indices of the demo subjects that get a label (deterministic from the seed)."""
    rng = np.random.default_rng([seed, 3])
    return set(rng.permutation(n)[: int(round(label_fraction * n))].tolist())


def demo_gaps(
    seed: int,
    subjects: list[str],
    fractions: dict[str, float],
    imaging_channels: int,
    missing_fraction: float,
    lesion_free: int,
    labelled: set[int],
    qtl: bool = True,
) -> tuple[dict[str, list[str]], list[str]]:
    """Which regular demo subjects miss their last further image, and which are lesion-free.

    ``round(missing_fraction * len(subjects))`` subjects miss it (none with one image), drawn
    from ``[seed, 13]`` among those the seed's split (``fractions``, as the run plan assigns it)
    does not put in test, so every test subject keeps its real channel for scoring; the first
    ``lesion_free`` labelled test subjects that keep every channel and, when the lesion QTL is
    planted (``qtl``: both modalities), carry none of its ALT alleles
    (:func:`voxseq.demo.qtl.qtl_dosage`) are drawn without lesions. A carrier without lesions
    would contradict the QTL the association is to recover (its ALT alleles add lesions).

    Returns
    -------
    (subject -> [channel name], lesion-free subjects)
    """
    from voxseq.demo.imaging import demo_channel_names
    from voxseq.io.sheet import assign_splits

    rows = assign_splits([{"subject": s, "split": ""} for s in subjects], seed, dict(fractions))
    split = {r["subject"]: r["split"] for r in rows}
    missing: dict[str, list[str]] = {}
    if imaging_channels > 1 and missing_fraction > 0:
        last = demo_channel_names(imaging_channels)[-1]
        pool = [s for s in subjects if split[s] != "test"]
        order = np.random.default_rng([seed, 13]).permutation(len(pool))
        k = min(int(round(missing_fraction * len(subjects))), len(pool))
        missing = {pool[i]: [last] for i in sorted(order[:k].tolist())}
    from voxseq.demo.qtl import qtl_dosage

    free = [
        s for i, s in enumerate(subjects)
        if split[s] == "test" and s not in missing and i in labelled
        and not (qtl and qtl_dosage(seed, i))
    ][:lesion_free]
    return missing, free


def make_demo_cohort(
    outdir: str | Path,
    subjects: list[str],
    seed: int,
    imaging: bool = True,
    genomics: bool = True,
    small: bool = False,
    shift: float = 0.0,
    label_fraction: float = 1.0,
    reference_seed: int | None = None,
    outliers: bool = False,
    imaging_channels: int = 1,
    missing: dict[str, list[str]] | None = None,
    lesion_free: list[str] = (),
) -> Path:
    """Generate the demo cohort in ``outdir`` and write ``outdir/samples.tsv``.

    Parameters
    ----------
    subjects
        Subject ids, in order (subject ``i`` is drawn from ``(seed, i)``).
    small
        Tiny volumes and genome, for tests.
    shift
        Move the scanner (and coverage) distribution, to mimic a new cohort.
    label_fraction
        Share of subjects whose label file is listed in the sheet (the others are unlabelled).
    reference_seed
        Seed of the demo genome (default ``seed``); see :func:`generate_genomics`.
    outliers
        Append the two quality-control outlier subjects and write ``qc_truth.tsv`` (see the
        module docstring). With ``small`` the duplication is 40 % of the longest contig (the
        120 kb default does not fit in the 16 kb contigs).
    imaging_channels
        Images a subject: ``image``, then ``image_t2`` and ``image_flair`` columns (MRI-like
        contrasts of the same anatomy; see :func:`voxseq.demo.imaging.make_subject`).
    missing, lesion_free
        Subject -> further channel names it lacks (empty sheet cells, no file), and subjects
        drawn without lesions (:func:`demo_gaps`); both off by default.

    Returns
    -------
    Path of the sample sheet. Its paths are relative to ``outdir``, like a user's sheet.
    """
    outdir = Path(outdir)
    extra = outlier_ids(subjects, len(OUTLIER_KINDS)) if outliers else []
    # modality -> {extra subject: kind}; empty without outliers
    kinds = {
        mod: {s: k[mod] for s, k in zip(extra, OUTLIER_KINDS, strict=False)}
        for mod in ("imaging", "genomics")
    }
    everyone = list(subjects) + extra
    from voxseq.demo.qtl import demo_covariates, qtl_dosage

    rows = {s: {"subject": s, **demo_covariates(seed, i)} for i, s in enumerate(everyone)}
    # the planted QTL links the modalities: only with both (else every file is as without it);
    # the outliers do not carry it
    dosages = ({s: qtl_dosage(seed, i) for i, s in enumerate(subjects)}
               if imaging and genomics else None)
    truth = []
    if imaging:
        cfg = ImagingDemoConfig.small() if small else ImagingDemoConfig()
        made = generate_imaging(
            outdir, everyone, seed, cfg.shifted(shift), kinds["imaging"], imaging_channels,
            missing=missing, lesion_free=lesion_free, qtl_dosages=dosages,
        )
        columns = channel_columns(made[everyone[0]])
        labelled = labelled_indices(seed, len(subjects), label_fraction)
        n_lab = len(labelled)
        for i, s in enumerate(subjects):
            rows[s].update({c: made[s][c] for c in ("image", *columns)})
            rows[s]["label"] = made[s]["label"] if i in labelled else ""
            rows[s]["class"] = made[s]["class"]
            rows[s]["batch"] = made[s]["batch"]  # the scanner: colours the QC latent map
        for s in extra:  # broken and unannotated: no label, no class
            rows[s].update({c: made[s][c] for c in ("image", *columns)})
            rows[s].update({"label": "", "class": "", "batch": made[s]["batch"]})
            truth.append({"subject": s, "modality": "imaging", "kind": kinds["imaging"][s]})
        log.info("imaging: %d subjects, %d labelled", len(subjects), n_lab)
    if genomics:
        from voxseq.demo.genomics import generate_genomics

        made = generate_genomics(
            outdir,
            everyone,
            seed,
            small=small,
            shift=shift,
            reference_seed=reference_seed,
            anomalies=kinds["genomics"],
            qtl_dosages=dosages,
        )
        for s in everyone:
            rows[s].update(bam=made[s]["bam"], vcf=made[s]["vcf"])
        if imaging:  # the planted outcome needs both modalities (voxseq.demo.outcome)
            _plant_outcome(outdir, rows, subjects, made)
        for s in extra:
            where = {k: made[s][k] for k in ("contig", "start", "end") if k in made[s]}
            truth.append(
                {"subject": s, "modality": "genomics", "kind": kinds["genomics"][s], **where}
            )
        log.info("genomics: %d subjects", len(subjects))
    if outliers:
        truth.sort(key=lambda r: (extra.index(r["subject"]), r["modality"] != "imaging"))
        log.info("quality-control outliers: %s", ", ".join(extra))
        write_tsv(outdir / "qc_truth.tsv", truth, QC_TRUTH_COLUMNS)
    sheet = outdir / "samples.tsv"
    image_columns = channel_columns(next(iter(rows.values()))) if rows else []
    outcome = [OUTCOME_COLUMN] if imaging and genomics else []
    write_tsv(sheet, list(rows.values()),
              [*(c for c in COLUMNS if c != "split"), *image_columns, *outcome,
               *DEMO_COVARIATES])
    return sheet


def _plant_outcome(outdir: Path, rows: dict[str, dict], subjects: list[str], made: dict) -> None:
    """The ``outcome`` column of the regular subjects (the outliers' empty) and its truth."""
    from voxseq.demo.genomics import GenomicsDemoConfig
    from voxseq.demo.outcome import OUTCOME_MOTIF, plant_outcomes, write_outcome_truth

    truth = plant_outcomes({s: rows[s]["class"] for s in subjects},
                           {s: made[s]["motif_weights"][OUTCOME_MOTIF] for s in subjects},
                           GenomicsDemoConfig().motif_weight_sigma)
    by_subject = {t["subject"]: t["outcome"] for t in truth}
    for s, row in rows.items():
        row[OUTCOME_COLUMN] = by_subject.get(s, "")
    write_outcome_truth(outdir / "outcome_truth.tsv", truth)
    log.info("planted outcome: %d yes of %d", sum(t["outcome"] == "yes" for t in truth),
             len(truth))
