"""Imaging input channels: which images of a subject are read, in which order, under which names.

A subject's channels come either from the sample sheet's image columns (``image``, then each
``image_<name>`` column in the sheet's order, one 3D volume per file) or from the volumes of a 4D
``image`` file, in file order. Their names are ``imaging.channels`` when the config sets them,
else ``image`` then each column's ``<name>``. Every stage keeps that order: the stores' channel
axis, the networks' input channels and the bundles' ``channels`` record.

Kept free of torch: the workflow resolves the channels when it builds the DAG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from voxseq import VoxseqError
from voxseq.io.sheet import CHANNEL_COLUMN_RE

DEFAULT_CHANNEL = "image"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
GRID_MODES = ("check", "resample")


def cohort_channels(columns: Sequence[str], configured: Sequence[str] | None) -> list[str]:
    """The cohort's channel names.

    Parameters
    ----------
    columns
        The sheet's ``image_<name>`` columns, in order (:func:`voxseq.io.sheet.channel_columns`).
    configured
        ``imaging.channels`` (None: from the sheet).

    Returns
    -------
    With image columns: ``configured`` (whose names after the first must be the columns'
    ``<name>``s, in order), else ``["image", *names]``. Without: ``configured`` (the volumes of
    each subject's 4D image, in order) or ``["image"]``.

    Raises
    ------
    VoxseqError
        On duplicate or malformed names, or names that contradict the sheet's columns.
    """
    names = [CHANNEL_COLUMN_RE.match(c).group(1) for c in columns]
    if configured is not None:
        configured = [str(c) for c in configured]
        bad = [c for c in configured if not NAME_RE.match(c)]
        if not configured or bad:
            raise VoxseqError(
                f"imaging.channels {configured}: give one or more names of letters, digits, "
                "'_', '-' or '.' (at most 32 characters each)"
            )
        if len(set(configured)) != len(configured):
            raise VoxseqError(f"imaging.channels {configured}: names must be distinct")
        if columns and configured[1:] != names:
            raise VoxseqError(
                f"imaging.channels {configured} does not match the sample sheet's image "
                f"columns: after 'image' (channel {configured[0]!r}) the sheet has "
                f"{list(columns)}, i.e. channels {names}; list them in that order, or drop "
                "imaging.channels to name them after the columns"
            )
        return configured
    return [DEFAULT_CHANNEL, *names]


def subject_images(row: Mapping[str, str], columns: Sequence[str]) -> list[tuple[str, str]]:
    """A subject's image files as ``(column, path)``: ``image`` first, then the others."""
    return [("image", row["image"]), *((c, row[c]) for c in columns)]


def check_bundle_channels(theirs: Sequence[str] | None, ours: Sequence[str], where: str) -> None:
    """Refuse to apply a bundle trained on other channels (names and order must be equal).

    ``theirs`` is the bundle's ``preprocessing.channels`` (None: a bundle from before channels
    were recorded, trained on one image).
    """
    theirs = list(theirs or [DEFAULT_CHANNEL])
    if theirs != list(ours):
        raise VoxseqError(
            f"{where}: the bundle was trained on channels {theirs}, this cohort has "
            f"{list(ours)}. A model reads its channels by position: give the sheet the same "
            "image columns in the same order (image, then image_<name>), or set "
            f"imaging.channels: {theirs} when the names differ but the images are the same "
            "sequences"
        )
