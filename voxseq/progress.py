"""The terminal's training progress lines (the ``voxseq.progress`` logger): when one is shown,
and how durations and the best epoch are written in it (see :func:`voxseq.fit.fit`)."""

from __future__ import annotations

import math

#: The terminal's progress line: at most every this fraction of the epochs...
PROGRESS_FRACTION = 0.1
#: ... and at most every this many seconds (both must have passed), plus the last epoch.
PROGRESS_SECONDS = 30.0


class ProgressPace:
    """When the terminal gets an epoch's progress line: once at least ``fraction`` of the
    ``epochs`` *and* ``seconds`` have passed since the previous line (whichever is rarer), and
    for the last epoch."""

    def __init__(
        self,
        epochs: int,
        start: float,
        fraction: float = PROGRESS_FRACTION,
        seconds: float = PROGRESS_SECONDS,
    ) -> None:
        self.epochs, self.every = epochs, max(math.ceil(fraction * epochs), 1)
        self.seconds, self.shown_at = seconds, start
        self.shown_epoch: int | None = None

    def due(self, epoch: int, now: float) -> bool:
        """Whether 0-based ``epoch`` (finished at ``now``) gets a line; records it if so."""
        last = epoch == self.epochs - 1
        if self.shown_epoch is None:  # count the epochs from the start of this run
            self.shown_epoch = epoch - 1
        if not last and (
            epoch - self.shown_epoch < self.every or now - self.shown_at < self.seconds
        ):
            return False
        self.shown_epoch, self.shown_at = epoch, now
        return True


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def best_text(score: float, epoch: int) -> str:
    """`` (best 0.8123, epoch 7)``, or nothing before an epoch may be selected."""
    return f" (best {score:.4f}, epoch {epoch + 1})" if epoch >= 0 else ""
