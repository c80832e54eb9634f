"""A compact terminal for local runs: what a person needs to follow a run, on a screen or two.

Snakemake prints about 15 lines per job (the job block, its finish, the scheduler's "Select jobs
to execute..."), so the 109-job demo fills 1,500 lines. :class:`CompactFilter` keeps the run
header and job table, progress at every 10 %, every warning and error (failed jobs in full) and
what the jobs themselves print (one line per training epoch); it drops the per-job blocks from
the terminal only: Snakemake's log file (``.snakemake/log/``) keeps them. The config's
``terminal: snakemake`` keeps Snakemake's own terminal output.
"""

from __future__ import annotations

import logging

#: Snakemake log events (``record.event``) that the compact terminal drops.
DROPPED_EVENTS = frozenset({"job_info", "job_started", "job_finished", "shellcmd"})
_SCHEDULER_CHATTER = ("Select jobs to execute...", "Execute ")


class CompactFilter(logging.Filter):
    """Filter for Snakemake's logger; see the module docstring.

    Parameters
    ----------
    step
        Show progress when the done fraction crosses a multiple of ``step`` (and at the end).
    """

    def __init__(self, step: float = 0.1) -> None:
        super().__init__()
        self.step = step

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        event = str(getattr(record, "event", "") or "")
        if event in DROPPED_EVENTS:
            return False
        if event == "progress":
            done, total = int(record.done), int(record.total)
            if done >= total:
                return True
            return int(done / total / self.step) > int((done - 1) / total / self.step)
        msg = record.msg if isinstance(record.msg, str) else ""
        return not (msg.startswith(_SCHEDULER_CHATTER) and msg.endswith("..."))


def install(logger: logging.Logger, style: str) -> None:
    """Add :class:`CompactFilter` to the terminal handlers of Snakemake's ``logger`` (not its
    log file, which keeps every job block) unless ``style`` is ``snakemake``."""
    if style != "compact":
        return
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            continue
        if not any(isinstance(f, CompactFilter) for f in handler.filters):
            handler.addFilter(CompactFilter())
