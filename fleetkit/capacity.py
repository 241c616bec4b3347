"""GPU memory sizing: does a model fit the node pool it is placed on?

Pure functions over plain values (no stack-spec models, no engine), so the spec validator, the
``plan-capacity`` CLI and tests can all call them.

The estimate, per replica (one vLLM engine spanning ``tensor_parallel`` GPUs of one node)::

    needed    = weights + kv_cache + OVERHEAD_GIB_PER_GPU * tensor_parallel
    available = gpu_memory_gib * tensor_parallel * gpu_memory_utilization

* **weights** — declared ``weights_bytes`` when given (most accurate: the size of the checkpoint's
  safetensors), else ``params_billion * 1e9 * bytes_per_param(dtype)`` (see ``BYTES_PER_PARAM``).
  4-bit formats count half a byte a parameter; real checkpoints are a few percent larger (scales,
  unquantized embeddings), so declare ``weights_bytes`` for tight fits.
* **kv_cache** — the KV-cache room a replica must keep to be useful, in GiB: the declared
  ``kv_cache_gib``, else ``DEFAULT_KV_CACHE_FRACTION`` of the weights with a floor of
  ``MIN_KV_CACHE_GIB``. When ``max_model_len`` and ``kv_bytes_per_token`` are both known, at least
  one full-length sequence must fit (vLLM refuses to start otherwise). Without
  ``kv_bytes_per_token`` (which needs the model architecture, see :func:`kv_bytes_per_token`),
  ``max_model_len`` is informational only.
* **overhead** — ``OVERHEAD_GIB_PER_GPU`` per GPU for the CUDA context, activation peak of the
  profiling run, CUDA graphs and NCCL buffers.
* **available** — vLLM caps its own use of each GPU at ``--gpu-memory-utilization`` (default 0.92,
  ``DEFAULT_GPU_MEMORY_UTILIZATION``); weights, activations and KV cache all come out of that share.

Rules reported as :class:`~fleetkit.errors.Issue` (rule ids in ``RULE_*``): tensor_parallel must
be at least 1, no larger than the node's GPU count and divide it; the replica must fit. Messages
name the model, the pool, the numbers and the smallest catalog entry of the same cloud that fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.table import Table

from fleetkit import catalog
from fleetkit.catalog import GpuInstanceType
from fleetkit.errors import Issue

_GIB = 2**30

#: vLLM's ``--gpu-memory-utilization`` default (vllm/config/cache.py), a fraction of each GPU.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
#: KV-cache room kept per replica when none is declared, as a fraction of the weights' size.
DEFAULT_KV_CACHE_FRACTION = 0.20
#: Floor for the default KV-cache room, GiB per replica (small models still need some batch room).
MIN_KV_CACHE_GIB = 1.0
#: Fixed non-KV, non-weight memory per GPU, GiB: CUDA context, activations, CUDA graphs, NCCL.
OVERHEAD_GIB_PER_GPU = 1.5

#: Bytes per parameter by dtype / quantization name (lower case). ``auto`` follows the checkpoint,
#: which for current LLMs is bfloat16/float16.
BYTES_PER_PARAM: Mapping[str, float] = {
    "auto": 2.0,
    "bfloat16": 2.0,
    "bf16": 2.0,
    "float16": 2.0,
    "fp16": 2.0,
    "half": 2.0,
    "float32": 4.0,
    "fp32": 4.0,
    "float": 4.0,
    "fp8": 1.0,
    "fp8_e4m3": 1.0,
    "fp8_e5m2": 1.0,
    "float8": 1.0,
    "int8": 1.0,
    "w8a8": 1.0,
    "int4": 0.5,
    "awq": 0.5,
    "gptq": 0.5,
    "w4a16": 0.5,
    "nvfp4": 0.5,
    "mxfp4": 0.5,
    "bitsandbytes-4bit": 0.5,
}

RULE_TP_INVALID = "capacity.tp-invalid"
RULE_TP_EXCEEDS_GPUS = "capacity.tp-exceeds-gpus"
RULE_TP_NOT_DIVISOR = "capacity.tp-not-divisor"
RULE_DOES_NOT_FIT = "capacity.does-not-fit"
RULE_SIZE_UNKNOWN = "capacity.size-unknown"
RULE_WRONG_CLOUD = "capacity.instance-cloud-mismatch"
RULE_UNKNOWN_POOL = "capacity.unknown-pool"
RULE_UNKNOWN_INSTANCE = "capacity.unknown-instance-type"
RULE_POOL_TOO_SMALL = "capacity.pool-too-small"


@dataclass(frozen=True)
class ModelSize:
    """What fleetkit needs to know about a model to size it. Give params + dtype, or weights_bytes."""

    #: Parameter count in billions (e.g. 70 for Llama-3-70B). Ignored when ``weights_bytes`` is set.
    params_billion: float | None
    #: Weight dtype or quantization (``bfloat16``, ``fp8``, ``awq``…), a key of ``BYTES_PER_PARAM``.
    dtype: str
    #: Declared size of the weights in bytes; overrides params × dtype.
    weights_bytes: int | None = None
    #: KV-cache room per replica in GiB; None for the default (see the module docstring).
    kv_cache_gib: float | None = None
    #: Context length served (``--max-model-len``), tokens.
    max_model_len: int | None = None
    #: KV-cache bytes one token takes across all layers (see :func:`kv_bytes_per_token`).
    kv_bytes_per_token: int | None = None


def bytes_per_param(dtype: str) -> float:
    """Bytes one parameter takes in ``dtype``; ValueError for a dtype fleetkit does not know."""
    key = dtype.strip().lower()
    if key not in BYTES_PER_PARAM:
        known = ", ".join(sorted(BYTES_PER_PARAM))
        raise ValueError(f"unknown dtype {dtype!r}; known: {known}")
    return BYTES_PER_PARAM[key]


def kv_bytes_per_token(
    num_layers: int, num_kv_heads: int, head_dim: int, kv_cache_dtype: str = "auto"
) -> int:
    """KV-cache bytes per token: keys and values for every layer and KV head.

    Read the numbers from the model's ``config.json`` (``num_hidden_layers``, ``num_key_value_heads``,
    ``head_dim`` or ``hidden_size / num_attention_heads``). Llama-3-8B: 32 × 8 × 128 → 128 KiB.
    """
    return int(2 * num_layers * num_kv_heads * head_dim * bytes_per_param(kv_cache_dtype))


def weights_gib(size: ModelSize) -> float:
    """Size of the weights in GiB. ValueError when neither weights_bytes nor params is given."""
    if size.weights_bytes is not None:
        return size.weights_bytes / _GIB
    if size.params_billion is None:
        raise ValueError("model size unknown: give params_billion (with dtype) or weights_bytes")
    return size.params_billion * 1e9 * bytes_per_param(size.dtype) / _GIB


def kv_cache_gib(size: ModelSize) -> float:
    """KV-cache room per replica in GiB (declared, or the documented default)."""
    if size.kv_cache_gib is not None:
        kv = size.kv_cache_gib
    else:
        kv = max(MIN_KV_CACHE_GIB, DEFAULT_KV_CACHE_FRACTION * weights_gib(size))
    if size.max_model_len and size.kv_bytes_per_token:
        kv = max(kv, size.max_model_len * size.kv_bytes_per_token / _GIB)
    return kv


def required_gib(size: ModelSize, tensor_parallel: int) -> float:
    """GPU memory one replica needs in GiB, summed over its ``tensor_parallel`` GPUs."""
    return weights_gib(size) + kv_cache_gib(size) + OVERHEAD_GIB_PER_GPU * max(tensor_parallel, 1)


def available_gib(
    instance: GpuInstanceType,
    tensor_parallel: int,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> float:
    """GPU memory vLLM may use for one replica on ``instance``, GiB."""
    return instance.gpu_memory_gib * tensor_parallel * gpu_memory_utilization


def _gib(x: float) -> str:
    return f"{x:,.1f} GiB"


def smallest_fit(
    cloud: str,
    size: ModelSize,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> tuple[GpuInstanceType, int] | None:
    """The smallest catalog entry on ``cloud`` that holds one replica, with the tensor_parallel to use."""
    base = weights_gib(size) + kv_cache_gib(size)
    knobs: dict[str, float] = {
        "per_gpu_overhead_gib": OVERHEAD_GIB_PER_GPU,
        "gpu_memory_utilization": gpu_memory_utilization,
    }
    best = catalog.smallest_fitting(cloud, base, None, **knobs)
    if best is None:
        return None
    tp = catalog.min_tensor_parallel(best, base, **knobs)
    assert tp is not None  # smallest_fitting only returns entries with a fitting tensor_parallel
    return best, tp


def _hint(instance: GpuInstanceType, cloud: str, size: ModelSize, util: float) -> str:
    """The cheapest fix: a tensor_parallel that fits the same pool, else the smallest fitting type."""
    same_pool_tp = catalog.min_tensor_parallel(
        instance,
        weights_gib(size) + kv_cache_gib(size),
        per_gpu_overhead_gib=OVERHEAD_GIB_PER_GPU,
        gpu_memory_utilization=util,
    )
    if same_pool_tp is not None:
        return f"tensor_parallel {same_pool_tp} on the same pool would fit"
    found = smallest_fit(cloud, size, util)
    if found is None:
        return (
            f"no {cloud} type in the catalog holds it on one node; use a smaller dtype "
            "(fp8, awq) or multi-node serving"
        )
    t, tp = found
    return (
        f"smallest {cloud} type that fits: {t.name} ({t.gpu_count} x {t.gpu_model} "
        f"{_gib(t.gpu_memory_gib)}) with tensor_parallel {tp}"
    )


def check_fit(
    *,
    model: str,
    pool: str,
    cloud: str,
    instance: GpuInstanceType,
    tensor_parallel: int,
    size: ModelSize,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> list[Issue]:
    """Issues with placing ``model`` on ``pool`` (an ``instance`` node pool); empty when it fits.

    Paths are relative to the model entry: ``("tensor_parallel",)`` for tensor-parallel rules and
    ``("pool",)`` for the fit itself (the caller puts them under ``("models", <model>)``).
    """
    tp_path: tuple[str, ...] = ("tensor_parallel",)
    pool_path: tuple[str, ...] = ("pool",)
    where = f"pool '{pool}' ({instance.name})"
    problems: list[Issue] = []

    if instance.cloud != cloud.strip().lower():
        problems.append(
            Issue(
                pool_path,
                RULE_WRONG_CLOUD,
                f"model '{model}' is placed on {where}, a {instance.cloud} type, in a {cloud} stack",
                pool,
            )
        )
        return problems

    try:
        weights = weights_gib(size)
        kv = kv_cache_gib(size)
    except ValueError as exc:
        problems.append(Issue(pool_path, RULE_SIZE_UNKNOWN, f"cannot size model '{model}': {exc}"))
        return problems

    util = gpu_memory_utilization
    if tensor_parallel < 1:
        problems.append(
            Issue(tp_path, RULE_TP_INVALID, "tensor_parallel must be at least 1", tensor_parallel)
        )
        return problems

    options = ", ".join(str(n) for n in instance.tensor_parallel_options())
    if tensor_parallel > instance.gpu_count:
        problems.append(
            Issue(
                tp_path,
                RULE_TP_EXCEEDS_GPUS,
                f"model '{model}' needs {tensor_parallel} GPUs on one node but {where} has "
                f"{instance.gpu_count}; valid tensor_parallel there: {options}; "
                f"{_hint(instance, cloud, size, util)}",
                tensor_parallel,
            )
        )
        return problems  # the fit cannot be judged with GPUs the node does not have

    if instance.gpu_count % tensor_parallel:
        problems.append(
            Issue(
                tp_path,
                RULE_TP_NOT_DIVISOR,
                f"tensor_parallel {tensor_parallel} of model '{model}' does not divide the "
                f"{instance.gpu_count} GPUs of {where}, so GPUs would sit idle on every node; "
                f"valid values: {options}",
                tensor_parallel,
            )
        )

    needed = weights + kv + OVERHEAD_GIB_PER_GPU * tensor_parallel
    avail = available_gib(instance, tensor_parallel, util)
    if needed > avail:
        problems.append(
            Issue(
                pool_path,
                RULE_DOES_NOT_FIT,
                f"model '{model}' needs {_gib(needed)} of GPU memory per replica "
                f"({_gib(weights)} weights + {_gib(kv)} KV cache + {_gib(OVERHEAD_GIB_PER_GPU)} x "
                f"{tensor_parallel} GPU overhead) but {where} offers {_gib(avail)} with tensor_parallel "
                f"{tensor_parallel} ({tensor_parallel} x {instance.gpu_model} {_gib(instance.gpu_memory_gib)}"
                f" x gpu_memory_utilization {util:g}); {_hint(instance, cloud, size, util)}",
                pool,
            )
        )
    return problems


# --------------------------------------------------------------------------------------------------
# Capacity plan (rows for ``fleetkit plan-capacity``)
# --------------------------------------------------------------------------------------------------


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
) -> CapacityPlan:
    """Capacity rows per pool and per model, with the problems ``check_fit`` and the pool budget find.

    ``pools`` maps pool name to ``PlanPool`` (or a plain tuple of its fields); ``models`` maps model
    name to ``PlanModel`` (or tuple). Rows come out sorted by name. A pool's GPU budget is checked
    at ``max_nodes``: the models' ``replicas_max × tensor_parallel`` GPUs must not exceed
    ``max_nodes × GPUs per node`` (rule ``capacity.pool-too-small``; a lower bound, since replicas
    cannot span nodes).

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
        problems.extend(
            i.under(*models_path, name)
            for i in check_fit(
                model=name,
                pool=m.pool,
                cloud=cloud,
                instance=inst,
                tensor_parallel=m.tensor_parallel,
                size=m.size,
                gpu_memory_utilization=m.gpu_memory_utilization,
            )
        )
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
