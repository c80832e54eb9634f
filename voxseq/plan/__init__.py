"""The run plan: every decision the workflow makes before any job, made once, in the package.

``build_plan(config, workdir)`` checks the config and the sample sheet and returns a frozen
:class:`RunPlan`: the resolved inputs, each subject's split, the imaging channels and
preprocessing, one :class:`TaskPlan` per task (on or off, train here or apply a bundle, the
subjects it fits on, folds, architectures) and the :class:`Layout` that owns every path.
``workflow/rules/common.smk`` builds it once per DAG and only looks things up in it; the rule
``run_plan`` writes ``RunPlan.to_dict()`` to ``results/<cohort>/plan.json``.
"""

from voxseq.plan.build import build_plan
from voxseq.plan.layout import Layout
from voxseq.plan.model import RunPlan, TaskPlan

__all__ = ["Layout", "RunPlan", "TaskPlan", "build_plan"]
