"""Data-parallel training: PyTorch's DistributedDataParallel, started by torchrun's launcher.

A training rule with ``train.gpus: N`` (N > 1) calls :func:`launch`, which starts N processes
through :func:`torch.distributed.launcher.api.elastic_launch` (the engine of the ``torchrun``
command, single node, rendezvous on a free local port, as ``torchrun --standalone``). Each
process joins the process group (NCCL on CUDA, gloo on the CPU), takes GPU ``LOCAL_RANK`` and
runs the same training function; :func:`voxseq.fit.fit` then gives every rank a distinct shard of
each global batch, averages gradients (DDP), and lets rank 0 alone validate and write files.
When the script itself was started by ``torchrun`` (``WORLD_SIZE`` is set, e.g. several nodes
under ``srun``), :func:`launch` runs the function in place: the ranks already exist.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from voxseq import VoxseqError
from voxseq.scripting import progress_handler

log = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside data-parallel training."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in rank 0 (and in every one-process run): the process that writes files."""
    return rank_and_world()[0] == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def init_from_env() -> bool:
    """Join the process group described by torchrun's variables (``WORLD_SIZE`` > 1).

    Returns True when this process is one rank of several. NCCL when CUDA is available, gloo
    otherwise; on CUDA the process takes device ``LOCAL_RANK``.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank())
        # rank 0 validates while the others wait: allow a long validation
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=2))
    return True


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (itself in a one-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: float) -> float:
    """The mean of a scalar over the ranks (itself in a one-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _configure_logging(log_file: str | None, threads: int) -> None:
    """Inside a launched rank: rank 0 appends INFO to the rule's log and sends the progress lines
    to stderr; every rank sends warnings to stderr (prefixed with its rank)."""
    rank = int(os.environ.get("RANK", 0))
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s",
                            "%H:%M:%S")
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(fmt)
    root.addHandler(err)
    progress = logging.getLogger("voxseq.progress")
    progress.handlers.clear()
    if rank == 0:
        if log_file:
            fh = logging.FileHandler(log_file, mode="a")
            fh.setFormatter(fmt)
            root.addHandler(fh)
        progress.addHandler(progress_handler())
    else:
        progress.propagate = False
    torch.set_num_threads(max(threads, 1))


def _rank_main(fn: Callable[..., Any], args: tuple, kwargs: dict, log_file: str | None,
               threads: int) -> Any:
    """What each launched process runs: logging, the process group, ``fn``, clean exit."""
    _configure_logging(log_file, threads)
    init_from_env()
    try:
        return fn(*args, **kwargs)
    except VoxseqError as exc:
        logging.getLogger(__name__).error("%s", exc)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., Any], *args: Any, nproc: int = 1, threads: int = 1,
           log_file: str | None = None, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` on ``nproc`` data-parallel ranks; return rank 0's result.

    ``nproc`` 1, or a process that torchrun already started (``WORLD_SIZE`` set): ``fn`` runs
    here. Otherwise torchrun's launcher starts ``nproc`` processes on this node (``spawn``, so
    ``fn`` and its arguments must be importable/picklable), each with ``threads // nproc`` CPU
    threads; rank 0 logs to ``log_file``. A failing rank stops them all; the error is re-raised
    as :class:`VoxseqError` naming the rank.
    """
    if "WORLD_SIZE" in os.environ:
        init_from_env()
        return fn(*args, **kwargs)
    if nproc <= 1:
        return fn(*args, **kwargs)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"voxseq-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    per_rank = max(threads // nproc, 1)
    log.info("data-parallel training: %d processes (torchrun launcher), %d CPU threads each",
             nproc, per_rank)
    for handler in logging.getLogger().handlers:
        handler.flush()
    # spawned ranks re-import the parent's __main__ file unless it is hidden: a Snakemake rule
    # script cannot run again outside Snakemake (no `snakemake` object), and need not
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None  # multiprocessing reads the attribute, so it must exist
    try:
        results = elastic_launch(config, _rank_main)(fn, args, kwargs, log_file, per_rank)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise VoxseqError(
            f"data-parallel training: rank {rank} of {nproc} failed (exit code "
            f"{failure.exitcode}); its error is in the log above"
        ) from None
    finally:
        main.__dict__.update(saved)
    return results[0]
