"""Spec checks of a stack's models: engine arguments (``extra_args``) and GPUs per pod.

Checks layer: pure, no engine. Returns :class:`~fleetkit.errors.Issue` rows with paths relative to the
stack spec (``("models", name, …)``); the loader locates them to the file that set the value.
The typed ``vllm serve`` arguments themselves live in :mod:`fleetkit.engine_args`.
"""

from __future__ import annotations

from fleetkit import catalog
from fleetkit.engine_args import extra_args_issues
from fleetkit.errors import Issue
from fleetkit.spec import RegionStackSpec

RULE_GPUS_PER_POD = "model.gpus-per-pod"


def check_models(spec: RegionStackSpec) -> list[Issue]:
    """Engine-argument and per-pod GPU checks for every model of a region stack."""
    out: list[Issue] = []
    for name, model in sorted(spec.models.items()):
        for issue in extra_args_issues(list(model.extra_args)):
            out.append(issue.under("models", name, "extra_args"))
        pool = spec.node_pools.get(model.pool or "")
        entry = catalog.lookup(spec.cloud, pool.instance_type) if pool else None
        gpus = model.tensor_parallel * model.pipeline_parallel
        # tensor_parallel alone beyond the node is reported by the capacity check
        if entry is not None and model.pipeline_parallel > 1 and gpus > entry.gpu_count:
            out.append(
                Issue(
                    ("models", name, "pipeline_parallel"),
                    RULE_GPUS_PER_POD,
                    f"one pod needs tensor_parallel x pipeline_parallel = {gpus} GPUs but {pool.instance_type} "  # type: ignore[union-attr]
                    f"(pool {model.pool!r}) has {entry.gpu_count}; the kit runs a model on one node",
                    model.pipeline_parallel,
                )
            )
    return out
