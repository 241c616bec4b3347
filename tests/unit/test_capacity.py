"""Unit tests for GPU memory sizing and the capacity plan (pure: no engine, no network)."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from fleetkit import capacity as cap
from fleetkit import catalog
from fleetkit.capacity import ModelSize
from fleetkit.capacity_plan import CapacityPlan, PlanModel, PlanPool, plan_rows, render_plan_table
from fleetkit.catalog import GpuInstanceType
from fleetkit.errors import Issue

GIB = 2**30
FILE = "stacks/Pulumi.aws-us-east-1.yaml"

LLAMA_8B = ModelSize(params_billion=8, dtype="bfloat16")
LLAMA_70B = ModelSize(params_billion=70, dtype="bfloat16")


def inst(cloud: str, name: str) -> GpuInstanceType:
    t = catalog.lookup(cloud, name)
    assert t is not None, name
    return t


def fit(model: str, size: ModelSize, cloud: str, name: str, tp: int, **kw: float) -> list[Issue]:
    """check_fit's issues, located as the loader does: under ``models.<model>`` of FILE."""
    issues = cap.check_fit(
        model=model,
        pool="gpu",
        cloud=cloud,
        instance=inst(cloud, name),
        tensor_parallel=tp,
        size=size,
        **kw,  # type: ignore[arg-type]
    )
    return [i.under("models", model).located(FILE, i.under("models", model).path) for i in issues]


# ------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize(
    ("dtype", "expected_gib"),
    [
        ("bfloat16", 8e9 * 2 / GIB),
        ("float16", 8e9 * 2 / GIB),
        ("BF16", 8e9 * 2 / GIB),
        ("auto", 8e9 * 2 / GIB),
        ("float32", 8e9 * 4 / GIB),
        ("fp8", 8e9 / GIB),
        ("int8", 8e9 / GIB),
        ("int4", 8e9 * 0.5 / GIB),
        ("awq", 8e9 * 0.5 / GIB),
        ("gptq", 8e9 * 0.5 / GIB),
    ],
)
def test_weights_from_params_and_dtype(dtype: str, expected_gib: float) -> None:
    assert cap.weights_gib(ModelSize(8, dtype)) == pytest.approx(expected_gib)


def test_weights_known_values() -> None:
    assert cap.weights_gib(LLAMA_8B) == pytest.approx(14.90, abs=0.01)
    assert cap.weights_gib(LLAMA_70B) == pytest.approx(130.39, abs=0.01)


def test_declared_bytes_win_over_params() -> None:
    size = ModelSize(params_billion=70, dtype="bfloat16", weights_bytes=40 * GIB)
    assert cap.weights_gib(size) == pytest.approx(40.0)
    assert cap.weights_gib(ModelSize(None, "awq", weights_bytes=5 * GIB)) == pytest.approx(5.0)


def test_weights_errors() -> None:
    with pytest.raises(ValueError, match="unknown dtype 'int3'"):
        cap.weights_gib(ModelSize(8, "int3"))
    with pytest.raises(ValueError, match="model size unknown"):
        cap.weights_gib(ModelSize(None, "bfloat16"))


# ------------------------------------------------------------------------------------ KV cache


def test_kv_cache_default_fraction_and_floor() -> None:
    assert cap.kv_cache_gib(LLAMA_70B) == pytest.approx(0.2 * cap.weights_gib(LLAMA_70B))
    tiny = ModelSize(0.5, "bfloat16")  # 0.93 GiB of weights -> 0.19 GiB by fraction
    assert cap.kv_cache_gib(tiny) == cap.MIN_KV_CACHE_GIB


def test_kv_cache_declared() -> None:
    assert cap.kv_cache_gib(ModelSize(70, "bfloat16", kv_cache_gib=8)) == 8


def test_kv_cache_covers_one_full_sequence() -> None:
    per_token = cap.kv_bytes_per_token(num_layers=32, num_kv_heads=8, head_dim=128)
    assert per_token == 128 * 1024  # Llama-3-8B: 128 KiB a token
    long_ctx = ModelSize(8, "bfloat16", kv_cache_gib=2, max_model_len=131072, kv_bytes_per_token=per_token)
    assert cap.kv_cache_gib(long_ctx) == pytest.approx(16.0)  # 128k tokens x 128 KiB
    # Without the per-token size, max_model_len alone does not change the estimate.
    assert cap.kv_cache_gib(ModelSize(8, "bfloat16", kv_cache_gib=2, max_model_len=131072)) == 2
    assert cap.kv_bytes_per_token(32, 8, 128, "fp8") == 64 * 1024


def test_required_gib_adds_overhead_per_gpu() -> None:
    base = cap.weights_gib(LLAMA_70B) + cap.kv_cache_gib(LLAMA_70B)
    assert cap.required_gib(LLAMA_70B, 1) == pytest.approx(base + cap.OVERHEAD_GIB_PER_GPU)
    assert cap.required_gib(LLAMA_70B, 4) == pytest.approx(base + 4 * cap.OVERHEAD_GIB_PER_GPU)


def test_available_gib_uses_vllm_default_utilization() -> None:
    assert cap.DEFAULT_GPU_MEMORY_UTILIZATION == 0.92
    g6 = inst("aws", "g6.xlarge")
    assert cap.available_gib(g6, 1) == pytest.approx(22888 / 1024 * 0.92)
    assert cap.available_gib(inst("aws", "p5.48xlarge"), 8, 0.9) == pytest.approx(80 * 8 * 0.9)


# ------------------------------------------------------------------------------------ check_fit


def test_8b_bf16_fits_one_l4() -> None:
    assert fit("llama-8b", LLAMA_8B, "aws", "g6.xlarge", 1) == []
    assert fit("llama-8b", LLAMA_8B, "gcp", "g2-standard-8", 1) == []


def test_utilization_is_respected() -> None:
    # 19.4 GiB needed; one L4 at 0.85 offers 19.0 GiB.
    problems = fit("llama-8b", LLAMA_8B, "aws", "g6.xlarge", 1, gpu_memory_utilization=0.85)
    assert [p.rule for p in problems] == [cap.RULE_DOES_NOT_FIT]
    assert "gpu_memory_utilization 0.85" in problems[0].message


def test_70b_bf16_on_one_l4_fails_and_suggests_a_fitting_entry() -> None:
    problems = fit("llama-70b", LLAMA_70B, "aws", "g6.xlarge", 1)
    assert len(problems) == 1
    p = problems[0]
    assert (p.file, p.where, p.rule, p.value) == (FILE, "models.llama-70b.pool", cap.RULE_DOES_NOT_FIT, "gpu")
    needed = cap.required_gib(LLAMA_70B, 1)
    avail = cap.available_gib(inst("aws", "g6.xlarge"), 1)
    for text in ("'llama-70b'", "pool 'gpu'", "g6.xlarge", f"{needed:,.1f} GiB", f"{avail:,.1f} GiB"):
        assert text in p.message
    assert "smallest aws type that fits: g6e.12xlarge" in p.message
    assert "with tensor_parallel 4" in p.message
    # The suggestion is honest: placing the model there as suggested passes the check.
    assert fit("llama-70b", LLAMA_70B, "aws", "g6e.12xlarge", 4) == []
    assert p.render().startswith(f"{FILE}: models.llama-70b.pool: [capacity.does-not-fit]")


def test_does_not_fit_suggests_more_tensor_parallel_on_same_pool_first() -> None:
    problems = fit("llama-70b", LLAMA_70B, "aws", "g6e.48xlarge", 2)
    assert [p.rule for p in problems] == [cap.RULE_DOES_NOT_FIT]
    assert "tensor_parallel 4 on the same pool would fit" in problems[0].message


def test_nothing_in_the_cloud_fits() -> None:
    huge = ModelSize(1000, "bfloat16")
    problems = fit("giant", huge, "aws", "p5.48xlarge", 8)
    assert [p.rule for p in problems] == [cap.RULE_DOES_NOT_FIT]
    assert "no aws type in the catalog holds it on one node" in problems[0].message


def test_tp_exceeds_gpus() -> None:
    problems = fit("llama-70b", LLAMA_70B, "gcp", "g2-standard-24", 8)
    assert len(problems) == 1
    p = problems[0]
    assert (p.where, p.rule, p.value) == ("models.llama-70b.tensor_parallel", cap.RULE_TP_EXCEEDS_GPUS, 8)
    assert "needs 8 GPUs on one node but pool 'gpu' (g2-standard-24) has 2" in p.message
    assert "valid tensor_parallel there: 1, 2" in p.message
    assert "smallest gcp type that fits:" in p.message


def test_tp_exceeds_gpus_but_smaller_tp_fits_the_same_pool() -> None:
    problems = fit("llama-8b", LLAMA_8B, "aws", "g6.xlarge", 8)
    assert [p.rule for p in problems] == [cap.RULE_TP_EXCEEDS_GPUS]
    assert problems[0].message.endswith("tensor_parallel 1 on the same pool would fit")


def test_tp_not_divisor() -> None:
    problems = fit("llama-8b", LLAMA_8B, "aws", "g6e.12xlarge", 3)
    assert [(p.where, p.rule, p.value) for p in problems] == [
        ("models.llama-8b.tensor_parallel", cap.RULE_TP_NOT_DIVISOR, 3)
    ]
    assert (
        "does not divide the 4 GPUs" in problems[0].message and "valid values: 1, 2, 4" in problems[0].message
    )


def test_tp_not_divisor_and_too_small_reports_both() -> None:
    problems = fit("llama-70b", LLAMA_70B, "aws", "g6e.12xlarge", 3)
    assert sorted(p.rule for p in problems) == [cap.RULE_DOES_NOT_FIT, cap.RULE_TP_NOT_DIVISOR]


def test_tp_invalid() -> None:
    problems = fit("llama-8b", LLAMA_8B, "aws", "g6.xlarge", 0)
    assert [p.rule for p in problems] == [cap.RULE_TP_INVALID]


def test_unsizable_model_and_wrong_cloud() -> None:
    problems = fit("m", ModelSize(8, "int3"), "aws", "g6.xlarge", 1)
    assert [p.rule for p in problems] == [cap.RULE_SIZE_UNKNOWN]
    problems = cap.check_fit(
        model="m",
        pool="gpu",
        cloud="aws",
        instance=inst("gcp", "g2-standard-8"),
        tensor_parallel=1,
        size=LLAMA_8B,
    )
    assert [p.rule for p in problems] == [cap.RULE_WRONG_CLOUD]


def test_paths_stay_structured_until_reported() -> None:
    issues = cap.check_fit(
        model="m",
        pool="gpu",
        cloud="aws",
        instance=inst("aws", "g6.xlarge"),
        tensor_parallel=2,
        size=LLAMA_8B,
    )
    assert issues[0].path == ("tensor_parallel",)
    plan = plan_rows(
        file=FILE,
        cloud="aws",
        pools={"gpu": ("g6.xlarge", 1, 1)},
        models={"m": ("gpu", 2, LLAMA_8B)},
        models_path=("fleet", "models"),
    )
    assert [(p.file, p.where) for p in plan.problems if p.rule == cap.RULE_TP_EXCEEDS_GPUS] == [
        (FILE, "fleet.models.m.tensor_parallel")
    ]


def test_smallest_fit_per_cloud() -> None:
    found = cap.smallest_fit("aws", LLAMA_8B)
    assert found is not None and (found[0].name, found[1]) == ("g5.xlarge", 1)
    found = cap.smallest_fit("azure", LLAMA_70B)
    assert found is not None
    t, tp = found
    assert fit("llama-70b", LLAMA_70B, "azure", t.name, tp) == []
    assert cap.smallest_fit("aws", ModelSize(1000, "bfloat16")) is None


# ------------------------------------------------------------------------------------ plan rows


def _plan(**overrides: object) -> CapacityPlan:
    pools: dict[str, object] = {
        "l4": PlanPool("g6.12xlarge", 1, 2),
        "h100": ("p5.48xlarge", 0, 1),  # plain tuples are accepted too
    }
    models: dict[str, object] = {
        "llama-8b": PlanModel("l4", 1, LLAMA_8B, 1, 6),
        "llama-70b": ("h100", 4, LLAMA_70B, 1, 2),
    }
    pools.update(overrides.get("pools", {}))  # type: ignore[call-overload]
    models.update(overrides.get("models", {}))  # type: ignore[call-overload]
    return plan_rows(file=FILE, cloud="aws", pools=pools, models=models)  # type: ignore[arg-type]


def test_plan_rows_happy_path() -> None:
    plan = _plan()
    assert plan.problems == ()
    assert [r.pool for r in plan.pools] == ["h100", "l4"]
    h100, l4 = plan.pools
    assert (h100.instance_type, h100.gpus_per_node, h100.nodes_min, h100.nodes_max) == (
        "p5.48xlarge",
        8,
        0,
        1,
    )
    assert h100.models == ("llama-70b",)
    assert (h100.gpus_needed_min, h100.gpus_needed_max, h100.gpus_max) == (4, 8, 8)
    assert (l4.gpus_needed_min, l4.gpus_needed_max, l4.gpus_min, l4.gpus_max) == (1, 6, 4, 8)
    assert l4.gpu_memory_gib == pytest.approx(22888 / 1024)

    by_model = {p.model: p for p in plan.placements}
    p70 = by_model["llama-70b"]
    assert (p70.pool, p70.instance_type, p70.gpus_per_replica, p70.replicas_min, p70.replicas_max) == (
        "h100",
        "p5.48xlarge",
        4,
        1,
        2,
    )
    assert p70.needed_gib == pytest.approx(cap.required_gib(LLAMA_70B, 4))
    assert p70.available_gib == pytest.approx(80 * 4 * 0.92)
    assert p70.headroom_gib == pytest.approx(p70.available_gib - p70.needed_gib)
    assert p70.headroom_pct == pytest.approx(100 * p70.headroom_gib / p70.available_gib)
    assert p70.fits and by_model["llama-8b"].fits


def test_plan_rows_reports_budget_fit_and_references() -> None:
    plan = _plan(
        pools={"typo": ("g7.xlarge", 0, 1)},
        models={
            "llama-8b": PlanModel("l4", 1, LLAMA_8B, 1, 10),  # 10 GPUs > 2 nodes x 4
            "big": PlanModel("l4", 4, ModelSize(120, "bfloat16"), 1, 1),
            "lost": PlanModel("nowhere", 1, LLAMA_8B),
            "on-typo": PlanModel("typo", 1, LLAMA_8B),
        },
    )
    got = {(p.where, p.rule) for p in plan.problems}
    assert got == {
        ("node_pools.typo.instance_type", cap.RULE_UNKNOWN_INSTANCE),
        ("models.lost.pool", cap.RULE_UNKNOWN_POOL),
        ("models.big.pool", cap.RULE_DOES_NOT_FIT),
        ("node_pools.l4.max_size", cap.RULE_POOL_TOO_SMALL),
    }
    msgs = {p.rule: p for p in plan.problems}
    assert "did you mean g6.xlarge" in msgs[cap.RULE_UNKNOWN_INSTANCE].message
    budget = msgs[cap.RULE_POOL_TOO_SMALL]
    assert budget.value == 2 and "claim 14 at maximum replicas" in budget.message
    assert "max_size must be at least 4" in budget.message
    # A model on an unknown instance type is neither placed nor reported twice.
    assert "on-typo" not in {p.model for p in plan.placements}
    assert not next(p for p in plan.placements if p.model == "big").fits


def test_plan_rows_unsizable_model_still_gets_a_row() -> None:
    plan = _plan(models={"odd": PlanModel("l4", 1, ModelSize(8, "int3"))})
    odd = next(p for p in plan.placements if p.model == "odd")
    assert math.isnan(odd.needed_gib)
    assert any(p.rule == cap.RULE_SIZE_UNKNOWN for p in plan.problems)


def _render(plan: CapacityPlan) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(render_plan_table(plan))
    return console.export_text()


def test_render_plan_table() -> None:
    plan = _plan(pools={"idle": ("g6e.xlarge", 0, 1)})
    table = render_plan_table(plan)
    assert table.row_count == 3  # one row per model plus one for the idle pool
    text = _render(plan)
    for cell in ("p5.48xlarge", "llama-70b", "llama-8b", "idle", "1–6", "8/8", "GPU capacity (aws)"):
        assert cell in text
    assert "—" in text  # the idle pool has no model


def test_render_plan_table_marks_overcommit_and_unknown_size() -> None:
    plan = _plan(models={"odd": PlanModel("l4", 1, ModelSize(8, "int3"), 1, 10)})
    text = _render(plan)
    assert "16/8" in text  # 6 + 10 GPUs claimed at max replicas on an 8-GPU pool
    assert "?" in text
