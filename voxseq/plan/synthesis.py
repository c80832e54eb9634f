"""The run plan's missing-sequence synthesis: which subjects miss which image channel, and whether
the run trains a synthesis model for it, applies a bundle, or stops before any job.

An empty ``image_<name>`` cell of an imaging subject is a missing channel. With
``imaging.synthesis.enabled`` ``false`` such a sheet is refused, naming the subjects and channels;
otherwise one channel may be missing (for at most ``max_missing_fraction`` of the imaging
subjects, with at least ``min_train`` complete training subjects), and it is synthesised by a
model trained here or by the bundle ``models.imaging_synthesis``. Kept free of torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from voxseq import VoxseqError
from voxseq.synthesis.plan import check_synthesis_bundle, check_synthesis_plan, synthesis_plan


def missing_channels(
    subjects: Mapping[str, Mapping[str, str]],
    imaging_subjects: Sequence[str],
    columns: Sequence[str],
    channels: Sequence[str],
) -> dict[str, tuple[str, ...]]:
    """subject -> the channel names its row leaves empty (only subjects that miss one).

    ``columns`` are the sheet's ``image_<name>`` columns, ``channels`` the cohort's names
    (``channels[0]`` is ``image``'s, ``channels[k + 1]`` column ``k``'s).
    """
    out = {}
    for s in imaging_subjects:
        gone = tuple(channels[k + 1] for k, c in enumerate(columns) if not subjects[s].get(c))
        if gone:
            out[s] = gone
    return out


def plan_synthesis(
    config: dict,
    subjects: Mapping[str, Mapping[str, str]],
    imaging_subjects: Sequence[str],
    columns: Sequence[str],
    channels: Sequence[str],
    split: Mapping[str, str],
    meta: dict | None,
    sheet: str,
) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """Check the cohort's missing channels against ``imaging.synthesis`` and the applied bundle.

    Returns
    -------
    (subject -> missing channels, the channel to synthesise or None when nothing is missing)

    Raises
    ------
    VoxseqError
        Synthesis off and a channel missing (naming subjects and channels); more than one
        channel missing in the cohort; a channel missing too often or too few complete training
        subjects (with the counts); a bundle whose channels do not fit (both lists).
    """
    cfg = config["imaging"]["synthesis"]
    missing = missing_channels(subjects, imaging_subjects, columns, channels)
    if not missing:
        return {}, None
    listed = ", ".join(f"{s} ({', '.join(c)})" for s, c in sorted(missing.items())[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    if cfg["enabled"] is False:
        raise VoxseqError(
            f"sample sheet {sheet}: {len(missing)} imaging subject(s) miss an image: {listed}"
            f"{more}. With imaging.synthesis.enabled false every imaging subject needs every "
            "image column (each is a network input channel); set it to auto to synthesise the "
            "missing channels, or give the files"
        )
    targets = sorted({c for cs in missing.values() for c in cs})
    if len(targets) > 1:
        raise VoxseqError(
            f"sample sheet {sheet}: channels {targets} are each missing for some subjects "
            f"({listed}{more}); synthesis fills one channel a cohort (from all the others)"
        )
    target = targets[0]
    if meta:
        check_synthesis_bundle(
            meta, channels,
            f"models.imaging_synthesis {config['models']['imaging_synthesis']} (cohort "
            f"{config['cohort']})",
        )
        if meta["preprocessing"]["output_channel"] != target:
            raise VoxseqError(
                f"models.imaging_synthesis {config['models']['imaging_synthesis']}: the bundle "
                f"synthesises {meta['preprocessing']['output_channel']!r}, the cohort misses "
                f"{target!r} ({listed}{more})"
            )
        return missing, target
    have = {s: [c for c in channels if c not in missing.get(s, ())] for s in imaging_subjects}
    decided = synthesis_plan(
        have, {s: split[s] for s in imaging_subjects}, channels,
        cfg["max_missing_fraction"], cfg["min_train"],
    )
    try:
        check_synthesis_plan(decided)
    except VoxseqError as exc:
        raise VoxseqError(
            f"sample sheet {sheet}: {exc}. Set imaging.synthesis.enabled: false and give every "
            "subject every image, or lower the missing share"
        ) from None
    return missing, target


def lesion_labels(config: dict) -> list[int]:
    """The label values scored as lesion (``imaging.synthesis.lesion_labels``, names of
    ``imaging.labels``)."""
    labels = list(config["imaging"]["labels"])
    names = config["imaging"]["synthesis"]["lesion_labels"]
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise VoxseqError(
            f"imaging.synthesis.lesion_labels {names}: {unknown} not among imaging.labels {labels}"
        )
    return [labels.index(n) for n in names]


def synthesis_settings(plan) -> dict:
    """What the synthesis rules read off the plan (:class:`~voxseq.plan.model.RunPlan`):

    ``target`` (the channel), ``incomplete`` (subjects missing it), ``scored`` (labelled test
    subjects that have it), ``dice`` (the first ``dice_subjects`` of them, when segmentation is
    on), ``cfg`` (the training block for :func:`voxseq.synthesis.train.train_synthesis`).
    """
    syn = plan.task("synthesis")
    if not syn.enabled:
        return {"target": None, "incomplete": [], "scored": [], "dice": [], "cfg": {}}
    config = plan.config
    c = config["imaging"]["synthesis"]
    cfg = {k: c[k] for k in ("patch_size", "model", "gan", "train", "infer")}
    cfg.update(
        lesion_labels=lesion_labels(config),
        fg_fraction=c["foreground_fraction"],
        target_spacing=plan.imaging_preprocessing["target_spacing"],
    )
    scored = list(plan.synthesis_scored)
    return {
        "target": syn.channels[0],
        "incomplete": sorted(plan.missing_channels),
        "scored": scored,
        "dice": scored[: c["dice_subjects"]] if plan.task("segmentation").enabled else [],
        "cfg": cfg,
    }
