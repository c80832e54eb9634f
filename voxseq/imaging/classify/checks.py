"""Refusals before any classifier job runs: too few classes or subjects per fold, a bundle that
does not fit the cohort."""

from __future__ import annotations

from collections.abc import Sequence

from voxseq import VoxseqError
from voxseq.imaging.classify.data import SEG_PREFIX


def check_classes(
    classes: dict[str, str], pool: Sequence[str], folds: int, sheet: str
) -> list[str]:
    """The sorted class names; refuse a single class, or (training) a class with fewer
    train + val subjects than folds.

    Parameters
    ----------
    classes
        Subject -> class, every imaging subject with a class.
    pool
        The train + val subjects with a class (the cross-validated ones).
    """
    names = sorted(set(classes.values()))
    pooled = sorted({classes[s] for s in pool})
    if len(pooled) < 2:
        raise VoxseqError(
            f"imaging.classify: the sample sheet {sheet} has a single class "
            f"({pooled or names} among {len(pool)} train/val subjects); a classifier needs two "
            "or more. Fix the class column, or set imaging.classify.enabled: false"
        )
    for name in pooled:
        n = sum(classes[s] == name for s in pool)
        if n < folds:
            raise VoxseqError(
                f"imaging.classify: class {name!r} has {n} train/val subjects in {sheet}, fewer "
                f"than imaging.classify.folds ({folds}); every fold needs one. Lower folds, or "
                "add subjects of that class"
            )
    return names


def check_bundle_fits(
    meta: dict,
    bundle: str,
    classes: set[str],
    image_channels: Sequence[str],
    plan: dict,
    sheet: str,
) -> None:
    """Refuse a classifier bundle that does not fit the cohort: a class in the sheet it does not
    know, other image channels, or other preprocessing than the cohort's normalised volumes.

    Parameters
    ----------
    classes
        The class names in the cohort's sheet (may be empty: nothing to check).
    image_channels
        The cohort's image channels (``["image"]`` for one image per subject).
    plan
        The preprocessing the cohort's volumes get (``target_spacing``, ``interpolation``,
        ``normalisation``, ``statistics``) and its segmentation ``labels``.
    """
    pre = meta["preprocessing"]
    unknown = sorted(classes - set(pre["classes"]))
    if unknown:
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the sample sheet {sheet} has class(es) "
            f"{unknown} that the classifier was not trained on; its classes are "
            f"{pre['classes']}. Rename the classes in the sheet to the bundle's, or train a "
            "classifier on this cohort"
        )
    theirs = [c for c in pre["channels"] if not c.startswith(SEG_PREFIX)]
    if list(theirs) != list(image_channels):
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the classifier takes image channels {theirs}, "
            f"the cohort has {list(image_channels)}"
        )
    seg = [c for c in pre["channels"] if c.startswith(SEG_PREFIX)]
    ours = [f"{SEG_PREFIX}{name}" for name in (plan.get("labels") or [])[1:]]
    if seg and seg != ours:
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the classifier takes segmentation channels "
            f"{seg}, this cohort's segmentation gives {ours} (imaging.labels)"
        )
    for key in ("target_spacing", "interpolation", "normalisation", "statistics"):
        if pre.get(key) != plan.get(key):
            raise VoxseqError(
                f"models.imaging_classify {bundle}: trained on volumes with {key} "
                f"{pre.get(key)!r}, this cohort's volumes get {plan.get(key)!r} (from the "
                "segmentation bundle or imaging config); the two must be normalised alike"
            )


