"""The GPU capacity plan of a stack: rows per pool and per model for ``fleetkit plan-capacity``.

Pure, over plain values (:class:`PlanPool`, :class:`PlanModel`), so the CLI, the report and tests can
call it. Each model's fit is :func:`fleetkit.capacity.check_fit` (a resolved stack passes the fits it
already computed, :mod:`fleetkit.resolve`); a pool's GPU budget is checked at ``max_nodes``
(rule ``capacity.pool-too-small``). :func:`render_plan_table` draws the rows as a rich table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.table import Table

from fleetkit import catalog
from fleetkit.capacity import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    RULE_POOL_TOO_SMALL,
    RULE_UNKNOWN_INSTANCE,
    RULE_UNKNOWN_POOL,
    ModelSize,
    available_gib,
    check_fit,
    required_gib,
)
from fleetkit.catalog import GpuInstanceType
from fleetkit.errors import Issue


class PlanPool(NamedTuple):
    """A GPU node pool as the plan needs it; a plain ``(instance_type, min_nodes, max_nodes)`` works."""

    instance_type: str
    min_nodes: int
    max_nodes: int


class PlanModel(NamedTuple):
    """A model placement; a plain ``(pool, tensor_parallel, size, replicas_min, replicas_max)`` works."""

    pool: str
    tensor_parallel: int
    size: ModelSize
    replicas_min: int = 1
    replicas_max: int = 1
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION


@dataclass(frozen=True)
class Placement:
    """One model on one pool: GPUs per replica, replica range and memory headroom per replica."""

    model: str
    pool: str
    instance_type: str
    gpus_per_replica: int
    replicas_min: int
    replicas_max: int
    needed_gib: float
    available_gib: float
    headroom_gib: float
    headroom_pct: float

    @property
    def fits(self) -> bool:
        return self.headroom_gib >= 0


@dataclass(frozen=True)
class PoolRow:
    """One node pool: its machine, node range, the models on it and the GPUs they claim."""

    pool: str
    instance_type: str
    gpu_model: str
    gpus_per_node: int
    gpu_memory_gib: float
    nodes_min: int
    nodes_max: int
    models: tuple[str, ...]
    #: GPUs the pool's models claim at their minimum / maximum replica counts.
    gpus_needed_min: int
    gpus_needed_max: int

    @property
    def gpus_min(self) -> int:
        return self.nodes_min * self.gpus_per_node

    @property
    def gpus_max(self) -> int:
        return self.nodes_max * self.gpus_per_node


@dataclass(frozen=True)
class CapacityPlan:
    """Rows for the capacity table plus every problem found while computing them."""

    cloud: str
    pools: tuple[PoolRow, ...]
    placements: tuple[Placement, ...]
    problems: tuple[Issue, ...] = field(default=())


def _as_pool(value: PlanPool | tuple[Any, ...]) -> PlanPool:
    return value if isinstance(value, PlanPool) else PlanPool(*value)


def _as_model(value: PlanModel | tuple[Any, ...]) -> PlanModel:
    return value if isinstance(value, PlanModel) else PlanModel(*value)


def plan_rows(
    *,
    file: str,
    cloud: str,
    pools: Mapping[str, PlanPool | tuple[Any, ...]],
    models: Mapping[str, PlanModel | tuple[Any, ...]],
    models_path: tuple[str, ...] = ("models",),
    pools_path: tuple[str, ...] = ("node_pools",),
    fits: Mapping[str, Sequence[Issue]] | None = None,
) -> CapacityPlan:
    """Capacity rows per pool and per model, with the problems ``check_fit`` and the pool budget find.

    ``pools`` maps pool name to ``PlanPool`` (or a plain tuple of its fields); ``models`` maps model
    name to ``PlanModel`` (or tuple). Rows come out sorted by name. A pool's GPU budget is checked
    at ``max_nodes``: the models' ``replicas_max × tensor_parallel`` GPUs must not exceed
    ``max_nodes × GPUs per node`` (rule ``capacity.pool-too-small``; a lower bound, since replicas
    cannot span nodes).

    ``fits`` maps model name to the issues :func:`check_fit` already found for it (the resolve step
    computes them once, :mod:`fleetkit.resolve`); models missing from it are checked here.

    Issue paths follow the stack spec: ``(*models_path, <model>, "pool"|"tensor_parallel")`` and
    ``(*pools_path, <pool>, "instance_type"|"max_size")``, formatted only when reported in ``file``.
    """
    problems: list[Issue] = []
    resolved: dict[str, tuple[PlanPool, GpuInstanceType]] = {}
    for name in sorted(pools):
        spec = _as_pool(pools[name])
        inst = catalog.lookup(cloud, spec.instance_type)
        if inst is None:
            close = catalog.suggest(cloud, spec.instance_type)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(
                Issue(
                    (*pools_path, name, "instance_type"),
                    RULE_UNKNOWN_INSTANCE,
                    f"pool '{name}': {spec.instance_type!r} is not a GPU type fleetkit knows on {cloud}{hint}",
                    spec.instance_type,
                )
            )
            continue
        resolved[name] = (spec, inst)

    placements: list[Placement] = []
    by_pool: dict[str, list[tuple[str, PlanModel]]] = {name: [] for name in resolved}
    for name in sorted(models):
        m = _as_model(models[name])
        if m.pool not in resolved:
            if m.pool not in pools:
                known = ", ".join(sorted(pools)) or "none"
                problems.append(
                    Issue(
                        (*models_path, name, "pool"),
                        RULE_UNKNOWN_POOL,
                        f"model '{name}' is placed on pool '{m.pool}', which is not defined (pools: {known})",
                        m.pool,
                    )
                )
            continue
        _, inst = resolved[m.pool]
        fit = fits.get(name) if fits is not None else None
        if fit is None:
            fit = check_fit(
                model=name,
                pool=m.pool,
                cloud=cloud,
                instance=inst,
                tensor_parallel=m.tensor_parallel,
                size=m.size,
                gpu_memory_utilization=m.gpu_memory_utilization,
            )
        problems.extend(i.under(*models_path, name) for i in fit)
        by_pool[m.pool].append((name, m))
        tp = max(m.tensor_parallel, 1)
        try:
            needed = required_gib(m.size, tp)
        except ValueError:
            needed = math.nan
        avail = available_gib(inst, tp, m.gpu_memory_utilization)
        headroom = avail - needed
        placements.append(
            Placement(
                model=name,
                pool=m.pool,
                instance_type=inst.name,
                gpus_per_replica=tp,
                replicas_min=m.replicas_min,
                replicas_max=m.replicas_max,
                needed_gib=needed,
                available_gib=avail,
                headroom_gib=headroom,
                headroom_pct=100.0 * headroom / avail if avail else math.nan,
            )
        )

    rows: list[PoolRow] = []
    for name, (spec, inst) in resolved.items():
        placed = by_pool[name]
        need_min = sum(max(m.tensor_parallel, 1) * m.replicas_min for _, m in placed)
        need_max = sum(max(m.tensor_parallel, 1) * m.replicas_max for _, m in placed)
        row = PoolRow(
            pool=name,
            instance_type=inst.name,
            gpu_model=inst.gpu_model,
            gpus_per_node=inst.gpu_count,
            gpu_memory_gib=inst.gpu_memory_gib,
            nodes_min=spec.min_nodes,
            nodes_max=spec.max_nodes,
            models=tuple(n for n, _ in placed),
            gpus_needed_min=need_min,
            gpus_needed_max=need_max,
        )
        rows.append(row)
        if need_max > row.gpus_max:
            nodes = math.ceil(need_max / inst.gpu_count)
            problems.append(
                Issue(
                    (*pools_path, name, "max_size"),
                    RULE_POOL_TOO_SMALL,
                    f"pool '{name}' ({inst.name}, {inst.gpu_count} GPUs per node) has at most "
                    f"{row.gpus_max} GPUs but its models claim {need_max} at maximum replicas "
                    f"({', '.join(row.models)}); max_size must be at least {nodes}",
                    spec.max_nodes,
                )
            )

    return CapacityPlan(
        cloud=cloud,
        pools=tuple(rows),
        placements=tuple(placements),
        problems=tuple(i.located(file, i.path) for i in problems),
    )


def _range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def render_plan_table(plan: CapacityPlan, title: str | None = None) -> Table:
    """A readable table of the plan: one row per model, grouped under its pool."""
    table = Table(title=title or f"GPU capacity ({plan.cloud})", show_lines=False, header_style="bold")
    for col, justify in (
        ("Pool", "left"),
        ("Instance", "left"),
        ("GPUs/node", "right"),
        ("GPU mem", "right"),
        ("Nodes", "right"),
        ("GPUs used/max", "right"),
        ("Model", "left"),
        ("TP", "right"),
        ("Replicas", "right"),
        ("Needed", "right"),
        ("Available", "right"),
        ("Headroom", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]

    by_pool: dict[str, list[Placement]] = {}
    for p in plan.placements:
        by_pool.setdefault(p.pool, []).append(p)

    for row in plan.pools:
        pool_cells = [
            row.pool,
            row.instance_type,
            str(row.gpus_per_node),
            f"{row.gpu_memory_gib:.1f} GiB",
            _range(row.nodes_min, row.nodes_max),
            _budget_cell(row),
        ]
        placed = by_pool.get(row.pool, [])
        if not placed:
            table.add_row(*pool_cells, "—", "", "", "", "", "")
        for i, p in enumerate(placed):
            cells = pool_cells if i == 0 else [""] * len(pool_cells)
            table.add_row(*cells, *_placement_cells(p), end_section=(i == len(placed) - 1))
    return table


def _budget_cell(row: PoolRow) -> str:
    text = f"{row.gpus_needed_max}/{row.gpus_max}"
    return f"[red]{text}[/red]" if row.gpus_needed_max > row.gpus_max else text


def _placement_cells(p: Placement) -> list[str]:
    if math.isnan(p.needed_gib):
        return [p.model, str(p.gpus_per_replica), _range(p.replicas_min, p.replicas_max), "?", "", ""]
    colour = "green" if p.headroom_pct >= 10 else ("yellow" if p.fits else "red")
    headroom = f"[{colour}]{p.headroom_gib:+.1f} GiB ({p.headroom_pct:+.0f}%)[/{colour}]"
    return [
        p.model,
        str(p.gpus_per_replica),
        _range(p.replicas_min, p.replicas_max),
        f"{p.needed_gib:.1f} GiB",
        f"{p.available_gib:.1f} GiB",
        headroom,
    ]
