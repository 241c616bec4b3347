"""Checks of a resolved stack's capacity: each model fits its pool's GPUs, each pool's cache its weights.

Checks layer: reads a :class:`~fleetkit.resolve.ResolvedStack` (the fit of every model is computed
once, by the resolve step) and returns :class:`~fleetkit.errors.Issue` rows with tuple paths in the
stack spec; the loader locates them to the file that set the value.

* the ``capacity.*`` rules of :func:`fleetkit.capacity.check_fit` (tensor_parallel valid for the
  node, replica fits the GPUs), under ``("models", <model>)``;
* ``pool.cache-too-small`` (:func:`check_cache_fit`): the weights of every model placed on a pool —
  all versions, since a node may hold all of them at once (the prefetch DaemonSet of a ``hot`` model
  warms every node; a canary or a rollout puts the next version beside the current one) — must fit
  the pool's node cache (:mod:`fleetkit.node_cache`). Otherwise ``weights-sync`` fails with "not
  enough cache space" and the model can never start. The message offers the fixes: instance-store
  RAID0 on AL2023 where the instance type has NVMe, or the ``root_volume_gib`` that would fit.
"""

from __future__ import annotations

from fleetkit.errors import Issue
from fleetkit.node_cache import cache_fixes, disk_words
from fleetkit.resolve import ResolvedStack

RULE_CACHE_TOO_SMALL = "pool.cache-too-small"

_GIB = 2**30


def check_fit(stack: ResolvedStack) -> list[Issue]:
    """The resolved fit of every model on its pool, under ``("models", <model>)``."""
    return [i.under("models", name) for name, m in stack.models.items() for i in m.fit]


def check_cache_fit(stack: ResolvedStack) -> list[Issue]:
    """Rule ``pool.cache-too-small`` for every pool of a region stack that has models."""
    spec = stack.spec
    out: list[Issue] = []
    for pool in stack.pools.values():
        placed = [m for m in stack.models_on(pool.name) if m.weights_bytes is not None]
        if pool.instance is None or not placed:
            continue  # an unknown type is reported as pool.unknown-instance-type
        need = sum(m.weights_bytes or 0 for m in placed)
        cap = pool.cache_bytes
        if need <= cap:
            continue
        each = ", ".join(f"{m.name} {(m.weights_bytes or 0) / _GIB:,.1f} GiB" for m in placed)
        out.append(
            Issue(
                ("node_pools", pool.name),
                RULE_CACHE_TOO_SMALL,
                f"the weights of the models on pool '{pool.name}' ({each}; {need / _GIB:,.1f} GiB together, all may "
                f"share a node) exceed its node cache of {cap / _GIB:,.1f} GiB "
                f"({disk_words(spec, pool.name, pool.instance)}): weights-sync would fail and the model never "
                f"start; fix: {cache_fixes(spec, pool.name, pool.instance, need)}",
                pool.instance_type,
            )
        )
    return out
