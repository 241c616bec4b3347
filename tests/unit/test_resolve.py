"""The resolve step: each pool and model of a stack resolved once, read by checks, plan and components."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.model_plan import plan_model
from fleetkit import capacity, catalog, node_cache
from fleetkit.capacity_checks import check_cache_fit, check_fit
from fleetkit.capacity_plan import PlanModel, PlanPool, plan_rows
from fleetkit.fleet_checks import check_stack
from fleetkit.loader import load_fleet
from fleetkit.pools import gpu_class_of
from fleetkit.report import capacity_plan
from fleetkit.resolve import ResolvedStack, model_size, resolve
from fleetkit.scheduling import device_plugin_scheduling, needs_device_plugin, node_labels, pod_scheduling
from fleetkit.spec import RegionStackSpec
from policies.context import UNKNOWN_GPU_CLASS

ROOT = Path(__file__).resolve().parents[2]
STACK = "aws-us-east-1"


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(ROOT)


def spec_of(fleet, stack: str = STACK) -> RegionStackSpec:
    spec = fleet.stacks[stack].spec
    assert isinstance(spec, RegionStackSpec)
    return spec


def changed(spec: RegionStackSpec, **models: dict) -> RegionStackSpec:
    data = spec.model_dump()
    for name, fields in models.items():
        data["models"][name].update(fields)
    return RegionStackSpec.model_validate(data)


def test_one_resolution_per_pool_and_model(fleet):
    spec = spec_of(fleet)
    stack = resolve(spec)
    assert list(stack.pools) == sorted(spec.node_pools)
    assert list(stack.models) == sorted(spec.models)
    for name, pool in stack.pools.items():
        entry = catalog.lookup(spec.cloud, spec.node_pools[name].instance_type)
        assert entry is not None and pool.instance == entry
        assert pool.gpu_class == gpu_class_of(spec, name) == entry.gpu_class
        assert pool.gpus_per_node == entry.gpu_count
        assert pool.cache_bytes == node_cache.max_cache_bytes(spec, name, entry)
        assert dict(pool.node_labels) == node_labels(spec, name)
        assert pool.scheduling == pod_scheduling(spec, name)
    for name, model in stack.models.items():
        # the model holds the very pool object of the stack, not a second resolution of it
        assert model.pool is stack.pools[spec.models[name].pool or ""]
        assert model.service == spec.service_of(name)
        assert model.size == model_size(spec.models[name])
        assert model.gpus_per_pod == spec.models[name].tensor_parallel * spec.models[name].pipeline_parallel
        assert model.fit == ()  # the demo fits
        assert model.needed_gib == capacity.required_gib(model.size, spec.models[name].tensor_parallel)


def test_the_loaded_stack_resolves_once_and_only_region_stacks(fleet):
    st = fleet.stacks[STACK]
    assert st.resolved is st.resolved
    assert isinstance(st.resolved, ResolvedStack) and st.resolved.spec is st.spec
    with pytest.raises(TypeError, match="not a region stack"):
        _ = fleet.stacks["mesh-root"].resolved


def test_the_fit_is_computed_once_for_checks_plan_and_services(monkeypatch):
    calls: list[str] = []
    real = capacity.check_fit

    def counting(**kw):
        calls.append(kw["model"])
        return real(**kw)

    monkeypatch.setattr(capacity, "check_fit", counting)
    fleet = load_fleet(ROOT)  # the loader runs the checks: every model's fit is resolved here
    region = {n: st for n, st in fleet.stacks.items() if isinstance(st.spec, RegionStackSpec)}
    placed = sum(len(st.spec.models) for st in region.values())  # type: ignore[union-attr]
    assert len(calls) == placed
    for name in region:
        check_stack(fleet, name)
        capacity_plan(fleet, name)
        fleet.context_for(name)
    assert len(calls) == placed  # read back from the resolved stacks, never recomputed


def test_fit_issue_paths_stay_tuples_until_located(fleet):
    spec = changed(spec_of(fleet), **{"llama-3-8b": {"tensor_parallel": 8}})  # g6.12xlarge has 4 GPUs
    stack = resolve(spec)
    fit = stack.models["llama-3-8b"].fit
    assert [i.rule for i in fit] == [capacity.RULE_TP_EXCEEDS_GPUS]
    assert fit[0].path == ("tensor_parallel",) and fit[0].value == 8
    (issue,) = check_fit(stack)
    assert issue.path == ("models", "llama-3-8b", "tensor_parallel")
    assert all(isinstance(i.path, tuple) for i in check_fit(stack))


def test_unknown_pool_and_unknown_type_resolve_without_raising(fleet):
    data = spec_of(fleet).model_dump()
    data["node_pools"]["l4"]["instance_type"] = "g6.13xlarge"
    data["models"]["llama-3-70b"]["pool"] = "nope"
    stack = resolve(RegionStackSpec.model_validate(data))
    assert stack.pools["l4"].instance is None and stack.pools["l4"].gpu_class == UNKNOWN_GPU_CLASS
    assert stack.pools["l4"].cache_bytes == 0
    assert stack.models["llama-3-70b"].pool is None
    assert stack.models["llama-3-70b"].gpu_class == UNKNOWN_GPU_CLASS
    assert stack.models["llama-3-8b"].fit == ()  # not judged on an unknown type
    assert check_cache_fit(stack) == [] or all(i.path[0] == "node_pools" for i in check_cache_fit(stack))


def test_the_plan_reads_the_resolved_pool(fleet):
    stack = fleet.stacks[STACK].resolved
    plan = plan_model(stack, "llama-3-8b", fleet.context_for(STACK), stack=STACK)
    pool = stack.models["llama-3-8b"].pool
    assert pool is not None
    assert plan.scheduling is pool.scheduling
    assert plan.max_cache_bytes == pool.cache_bytes
    assert plan.gpu_class == pool.gpu_class and plan.instance is pool.instance
    assert plan.size.gpus == stack.models["llama-3-8b"].gpus_per_pod


def test_plan_rows_use_given_fits_and_check_the_rest(monkeypatch):
    calls: list[str] = []
    real = capacity.check_fit

    def counting(**kw):
        calls.append(kw["model"])
        return real(**kw)

    monkeypatch.setattr("fleetkit.capacity_plan.check_fit", counting)
    size = capacity.ModelSize(8, "bfloat16")
    pools = {"l4": PlanPool("g6.12xlarge", 0, 2)}
    models = {"a": PlanModel("l4", 1, size), "b": PlanModel("l4", 1, size)}
    plan = plan_rows(file="f.yaml", cloud="aws", pools=pools, models=models, fits={"a": ()})
    assert calls == ["b"] and plan.problems == ()


def test_one_owner_of_the_fit_formula_and_the_local_ssd_size():
    g6e = catalog.lookup("aws", "g6e.12xlarge")
    assert g6e is not None
    size = capacity.ModelSize(70, "bfloat16")
    base = capacity.weights_gib(size) + capacity.kv_cache_gib(size)
    assert capacity.required_gib(size, 4) == catalog.replica_need_gib(base, 4, capacity.OVERHEAD_GIB_PER_GPU)
    assert capacity.available_gib(g6e, 4, 0.9) == catalog.usable_gib(g6e, 4, 0.9)
    fits = capacity.required_gib(size, 4) <= capacity.available_gib(g6e, 4, 0.9)
    assert (
        catalog.fits(
            g6e, base, 4, per_gpu_overhead_gib=capacity.OVERHEAD_GIB_PER_GPU, gpu_memory_utilization=0.9
        )
        is fits
    )
    a3 = catalog.lookup("gcp", "a3-highgpu-8g")
    assert a3 is not None
    assert a3.local_nvme_gb == round(16 * catalog.GCE_LOCAL_SSD_GIB * 2**30 / 10**9)


def test_placement_carries_the_stack_level_sections(fleet):
    for name in ("aws-us-east-1", "gcp-europe-west4", "azure-eastus"):
        spec = spec_of(fleet, name)
        placement = fleet.stacks[name].resolved.placement
        assert (placement.cloud, placement.region, placement.namespace) == (
            spec.cloud,
            spec.region,
            spec.namespace,
        )
        assert placement.cluster is spec.cluster and placement.mesh is spec.mesh
        assert placement.addons is spec.addons and placement.images is spec.images
        assert placement.account is spec.account and placement.protection is spec.protection
        assert placement.lb_idle_seconds == spec.lb_idle_seconds()
        assert placement.pool_zones == tuple(sorted({z for p in spec.node_pools.values() for z in p.zones}))
        if needs_device_plugin(spec):
            assert placement.device_plugin == device_plugin_scheduling(spec)
        else:
            assert placement.device_plugin is None
    # AL2023 GPU nodes on EKS lack the plugin; GKE deploys its own
    assert fleet.stacks["aws-us-east-1"].resolved.placement.device_plugin is not None
    assert fleet.stacks["gcp-europe-west4"].resolved.placement.device_plugin is None


def test_engine_args_are_resolved_with_the_model_and_the_plan_adds_only_the_collector(fleet):
    stack = fleet.stacks[STACK].resolved
    model = stack.models["llama-3-8b"]
    assert model.engine is not None and model.engine_problem is None
    assert model.engine.model_path == f"/models/{model.weights.cache_relpath}"
    assert model.engine.served_model_names == [model.spec.served_name]
    assert model.engine.tensor_parallel_size == model.spec.tensor_parallel
    assert model.engine.priority_scheduling == (stack.policies.qos is not None)
    assert model.engine.otlp_traces_endpoint is None
    ctx = fleet.context_for(STACK)
    plan = plan_model(stack, "llama-3-8b", ctx, stack=STACK)
    assert plan.engine.otlp_traces_endpoint == stack.policies.telemetry.otlp_endpoint(ctx)
    assert plan.engine.model_copy(update={"otlp_traces_endpoint": None}) == model.engine
    assert plan.weights == model.weights


def test_bad_extra_args_resolve_to_no_engine_and_the_plan_says_why(fleet):
    spec = changed(spec_of(fleet), **{"llama-3-8b": {"extra_args": ["--tensor-parallel-size", "2"]}})
    stack = resolve(spec)  # total: the check reports the flag, the resolve step does not raise
    model = stack.models["llama-3-8b"]
    assert model.engine is None and "set that field instead" in (model.engine_problem or "")
    with pytest.raises(ValueError, match="set that field instead"):
        plan_model(stack, "llama-3-8b", fleet.context_for(STACK), stack=STACK)
