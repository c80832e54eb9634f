"""What synthesis can do for a cohort: which missing channels can be trained, and whether a
synthesis bundle fits the cohort's channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from voxseq import VoxseqError


def synthesis_plan(
    available: Mapping[str, Sequence[str]],
    splits: Mapping[str, str],
    channels: Sequence[str],
    max_missing_share: float = 0.5,
    min_train: int = 2,
) -> dict[str, dict]:
    """Decide, per channel that some subject misses, whether its synthesis can train.

    Parameters
    ----------
    available
        subject -> the channels that subject has (imaging subjects only).
    splits
        subject -> ``train`` / ``val`` / ``test``.
    channels
        The cohort's channel names (:func:`voxseq.imaging.channels.cohort_channels`).
    max_missing_share
        Refuse a channel missing for more than this share of the subjects.
    min_train
        Refuse a channel with fewer complete training subjects (every channel present).

    Returns
    -------
    channel -> ``train`` (bool), ``reason`` (why not, else ""), ``subjects``, ``missing``
    (count), ``missing_subjects`` (sorted), ``complete_train`` (count); only channels some
    subject misses appear.
    """
    if not 0.0 <= max_missing_share <= 1.0:
        raise VoxseqError(
            f"synthesis max_missing_share {max_missing_share}: give a share in [0, 1]"
        )
    n = len(available)
    complete = sorted(s for s, have in available.items() if set(channels) <= set(have))
    complete_train = [s for s in complete if splits.get(s) == "train"]
    out = {}
    for ch in channels:
        missing = sorted(s for s, have in available.items() if ch not in have)
        if not missing:
            continue
        reasons = []
        if len(missing) > max_missing_share * n:
            reasons.append(
                f"missing for {len(missing)} of {n} subjects ({len(missing) / n:.0%}), more "
                f"than synthesis max_missing_share {max_missing_share:.0%}"
            )
        if len(complete_train) < min_train:
            reasons.append(
                f"{len(complete_train)} complete training subjects (every channel present), "
                f"fewer than synthesis min_train {min_train}"
            )
        out[ch] = {
            "train": not reasons,
            "reason": "; ".join(reasons),
            "subjects": n,
            "missing": len(missing),
            "missing_subjects": missing,
            "complete_train": len(complete_train),
        }
    return out


def check_synthesis_plan(plan: Mapping[str, dict]) -> None:
    """Raise for the channels :func:`synthesis_plan` refused, naming counts and subjects."""
    refused = {ch: p for ch, p in plan.items() if not p["train"]}
    if refused:
        parts = [
            f"channel {ch}: {p['reason']} (missing for {p['missing_subjects'][:10]})"
            for ch, p in refused.items()
        ]
        raise VoxseqError("synthesis cannot train: " + "; ".join(parts))


def check_synthesis_bundle(meta: Mapping, cohort_channels: Sequence[str], where: str) -> None:
    """Refuse a synthesis bundle whose channels do not fit the cohort: every input channel and
    the output channel must be among the cohort's channels, named alike.

    Parameters
    ----------
    meta
        The bundle's ``bundle.json`` content.
    cohort_channels
        The cohort's channel names.
    where
        The bundle and cohort, for the message.
    """
    pre = meta.get("preprocessing", {})
    if pre.get("task") != "synthesis":
        raise VoxseqError(f"{where}: not a synthesis bundle (task {pre.get('task')!r})")
    wanted = [*pre["input_channels"], pre["output_channel"]]
    absent = [c for c in wanted if c not in cohort_channels]
    if absent:
        raise VoxseqError(
            f"{where}: the synthesis bundle reads channels {list(pre['input_channels'])} and "
            f"synthesises {pre['output_channel']!r}; this cohort has channels "
            f"{list(cohort_channels)} (no {absent}). Name the sheet's image columns as the "
            "bundle's channels, or set imaging.channels"
        )
