"""Spec checks of a stack's models: engine arguments (``extra_args``) and GPUs per pod.

Checks layer: pure, no engine; reads the resolved stack (:mod:`fleetkit.resolve`). Returns :class:`~fleetkit.errors.Issue` rows with paths relative to the
stack spec (``("models", name, …)``); the loader locates them to the file that set the value.
The typed ``vllm serve`` arguments themselves live in :mod:`fleetkit.engine_args`.
"""

from __future__ import annotations

from fleetkit.engine_args import extra_args_issues
from fleetkit.errors import Issue
from fleetkit.resolve import ResolvedStack

RULE_GPUS_PER_POD = "model.gpus-per-pod"


def check_models(stack: ResolvedStack) -> list[Issue]:
    """Engine-argument and per-pod GPU checks for every model of a resolved region stack."""
    out: list[Issue] = []
    for name, m in stack.models.items():
        model = m.spec
        for issue in extra_args_issues(list(model.extra_args)):
            out.append(issue.under("models", name, "extra_args"))
        pool = m.pool
        # tensor_parallel alone beyond the node is reported by the capacity check
        if (
            pool is not None
            and pool.instance is not None
            and model.pipeline_parallel > 1
            and m.gpus_per_pod > pool.gpus_per_node
        ):
            out.append(
                Issue(
                    ("models", name, "pipeline_parallel"),
                    RULE_GPUS_PER_POD,
                    f"one pod needs tensor_parallel x pipeline_parallel = {m.gpus_per_pod} GPUs but "
                    f"{pool.instance_type} (pool {model.pool!r}) has {pool.gpus_per_node}; the kit runs a model "
                    "on one node",
                    model.pipeline_parallel,
                )
            )
    return out
