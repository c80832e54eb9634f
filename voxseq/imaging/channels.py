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


def check_bundle_channels(
    theirs: Sequence[str] | None,
    ours: Sequence[str],
    where: str,
    columns: Sequence[str] | None = None,
) -> None:
    """Refuse to apply a bundle trained on other channels (names and order must be equal),
    suggesting only a change that :func:`cohort_channels` and ingest then accept.

    ``theirs`` is the bundle's ``preprocessing.channels`` (None: a bundle from before channels
    were recorded, trained on one image). ``columns``: the sheet's ``image_<name>`` columns
    (None: not known, then both ways of giving channels are described).
    """
    theirs = list(theirs or [DEFAULT_CHANNEL])
    if theirs != list(ours):
        raise VoxseqError(
            f"{where}: the bundle was trained on channels {theirs}, this cohort has "
            f"{list(ours)}. A model reads its channels by position: "
            f"{_channel_fix(theirs, list(ours), columns)}"
        )


def _channel_fix(theirs: list[str], ours: list[str], columns: Sequence[str] | None) -> str:
    """What makes a cohort with channels ``ours`` give the bundle its ``theirs``."""
    wanted = ", ".join(["image", *(f"image_{n}" for n in theirs[1:])])
    sheet = (f"give every subject the bundle's {len(theirs)} image(s) as sheet columns {wanted} "
             "(one 3D file each, in that order)")
    four_d = (f"or one 4D 'image' file of {len(theirs)} volumes per subject with "
              f"imaging.channels: {theirs}")
    if len(theirs) != len(ours):
        return f"{sheet}, {four_d}; a channel the cohort lacks cannot be renamed into it"
    if theirs[1:] == ours[1:]:  # only the first image's name differs
        return f"set imaging.channels: {theirs} if the images are the same sequences"
    if columns:  # names from the sheet's columns: rename the columns, not the config
        return (f"if the images are the same sequences, rename the sheet's columns "
                f"{list(columns)} to {wanted.split(', ')[1:]} (imaging.channels cannot rename "
                "sheet columns)")
    if columns is not None:  # 4D volumes named by imaging.channels
        return f"set imaging.channels: {theirs} if the volumes are the same sequences"
    return (f"if the images are the same sequences, name them as the bundle does: sheet columns "
            f"{wanted}, or (4D images) imaging.channels: {theirs}")
