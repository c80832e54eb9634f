"""Glue for rule scripts: logging to the rule's log file, clear errors for bad input."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from voxseq import VoxseqError


def progress_handler() -> logging.Handler:
    """Bare progress lines on stderr, below WARNING only (warnings are printed once, by the
    root logger's stderr handler)."""
    ph = logging.StreamHandler(sys.stderr)
    ph.setLevel(logging.INFO)
    ph.addFilter(lambda record: record.levelno < logging.WARNING)
    ph.setFormatter(logging.Formatter("%(message)s"))
    return ph


@contextlib.contextmanager
def rule_logging(snakemake, threads: int | None = None) -> Iterator[logging.Logger]:
    """Log INFO to the rule's ``log[0]`` and warnings to stderr; turn a :class:`VoxseqError`
    into a one-line message (on stderr and in the log) and exit status 1.

    The ``voxseq.progress`` logger (one line per training epoch) also goes to stderr, which
    Snakemake shows on the terminal in local runs (and the cluster job's log under SLURM).

    Also caps torch's CPU threads at the rule's ``threads`` when the script has imported torch
    (others never pay for importing it).
    """
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if snakemake.log:
        fh = logging.FileHandler(snakemake.log[0], mode="w")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setLevel(logging.WARNING)
    sh.setFormatter(fmt)
    root.addHandler(sh)
    logging.getLogger("voxseq.progress").addHandler(progress_handler())
    n = threads if threads is not None else snakemake.threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(int(n or 1), 1))
    log = logging.getLogger(f"voxseq.rule.{snakemake.rule}")
    try:
        yield log
    except VoxseqError as exc:
        log.error("%s", exc)
        sys.stderr.flush()
        sys.exit(1)
    except Exception:
        log.exception("rule %s failed", snakemake.rule)
        raise


def optional_input(smk, name: str) -> str | None:
    """The one file of an optional named input (given as a list of 0 or 1 file), or None."""
    files = smk.input.get(name)
    if isinstance(files, str):
        return files
    return files[0] if files else None
