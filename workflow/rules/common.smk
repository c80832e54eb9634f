# Wiring: the run plan (voxseq.plan, built once: every check and decision made before any job),
# wildcard constraints, the rules' input functions (voxseq.plan.wiring: lookups in the plan) and
# the start and end of a run. Rules stay free of lambdas.
import os
import sys

from snakemake.exceptions import WorkflowError

sys.path.insert(0, workflow.basedir)  # the voxseq package ships beside the Snakefile

from voxseq import VoxseqError  # noqa: E402
from voxseq.config import user_splits  # noqa: E402
from voxseq.genomics.archs import GENOMICS_ARCHS  # noqa: E402
from voxseq.io.sheet import SUBJECT_PATTERN  # noqa: E402
from voxseq.plan import build_plan  # noqa: E402
from voxseq.plan.wiring import (  # noqa: E402
    RuleInputs,
    bundle_files,
    bundle_outputs,
    ingest_mem_mb,
    per_attempt,
)

try:
    # the splits block as the user wrote it, not completed from the default config key by key
    config["splits"] = (
        user_splits(
            config,
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
        )
        or config["splits"]
    )
    PLAN = build_plan(config, os.getcwd())
except VoxseqError as exc:
    raise WorkflowError(str(exc)) from None
# the resolved config: the demo's sheet and reference filled in
config.update(PLAN.config)
for _note in PLAN.notes:  # e.g. settings an applied bundle replaces: said once
    print(f"voxseq: {_note}", file=sys.stderr)

L = PLAN.layout  # every path: L("name", subject=...), L.each, L.log, L.bench
IN = RuleInputs(
    PLAN, ancient
)  # every input function: IN.label, IN.imaging_sources, ...
COHORT = PLAN.cohort
SEG = PLAN.task("segmentation")
CLS = PLAN.task("classifier")
SEQ = PLAN.task("sequence_model")
IQC = PLAN.task("imaging_qc")
GQC = PLAN.task("genomics_qc")
QC_TASKS = {"imaging": IQC, "genomics": GQC}
GEN = PLAN.genetics
SEQ_TRAIN = IN.sequence_training()  # the sequence model's training job(s)


wildcard_constraints:
    subject=SUBJECT_PATTERN.strip("^$"),
    fold=r"\d+",
    arch="|".join(GENOMICS_ARCHS),


def on_start():
    """Before the first job: in a local run, a requested CUDA device must exist (on a cluster
    the GPU nodes have it, not the login node); a compact terminal (config ``terminal``).
    """
    from snakemake.logging import logger as snakemake_logger

    from voxseq.config import check_devices
    from voxseq.terminal import install as install_terminal

    if workflow.local_exec:
        try:
            check_devices(config)
        except VoxseqError as exc:
            raise WorkflowError(str(exc)) from None
    install_terminal(snakemake_logger, config["terminal"])


onstart:
    on_start()


onsuccess:
    print("\n".join(IN.headline()), flush=True)
