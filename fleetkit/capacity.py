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

The capacity plan of a whole stack (rows per pool and model) is :mod:`fleetkit.capacity_plan`.

Rules reported as :class:`~fleetkit.errors.Issue` (rule ids in ``RULE_*``): tensor_parallel must
be at least 1, no larger than the node's GPU count and divide it; the replica must fit. Messages
name the model, the pool, the numbers and the smallest catalog entry of the same cloud that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    return catalog.replica_need_gib(
        weights_gib(size) + kv_cache_gib(size), tensor_parallel, OVERHEAD_GIB_PER_GPU
    )


def available_gib(
    instance: GpuInstanceType,
    tensor_parallel: int,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> float:
    """GPU memory vLLM may use for one replica on ``instance``, GiB."""
    return catalog.usable_gib(instance, tensor_parallel, gpu_memory_utilization)


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

    needed = catalog.replica_need_gib(weights + kv, tensor_parallel, OVERHEAD_GIB_PER_GPU)
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
