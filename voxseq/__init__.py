"""voxseq: imaging + genomics cohorts to trained PyTorch models and cohort-wide predictions."""

from __future__ import annotations

__version__ = "0.1.0"


class VoxseqError(Exception):
    """An input problem the user can fix.

    The message names the subject, the file and the problem.
    """
