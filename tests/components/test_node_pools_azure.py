"""AKS GPU agent pools under Pulumi mocks: VM size, autoscaling, Spot, MIG, GPU driver, taints."""

from __future__ import annotations

from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "azure-eastus"
POOL = "azure-native:containerservice:AgentPool"


def test_on_demand_pool():
    spec = demo_spec(STACK)
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    pool = mocks.one(POOL).plain_inputs
    assert pool["agentPoolName"] == "a100" and pool["mode"] == "User"
    assert pool["vmSize"] == "Standard_NC24ads_A100_v4"
    assert (pool["enableAutoScaling"], pool["minCount"], pool["maxCount"], pool["count"]) == (True, 1, 4, 1)
    assert pool["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert pool["nodeLabels"]["fleetkit.dev/gpu-class"] == "a100-80gb"
    assert pool["scaleSetPriority"] == "Regular"
    assert "scaleSetEvictionPolicy" not in pool and "spotMaxPrice" not in pool
    assert pool["gpuProfile"] == {"driver": "Install"}
    assert pool["osDiskSizeGB"] == 200


def test_spot_mig_pool_with_operator_drivers_scales_to_zero():
    spec = demo_spec(STACK)
    pools = {k: v.model_dump() for k, v in spec.node_pools.items()}
    pools["a100"].update(
        spot=True,
        min_size=0,
        zones=["1", "2"],
        azure={
            "spot_max_price": 2.5,
            "spot_eviction_policy": "Deallocate",
            "mig_profile": "MIG3g",
            "gpu_driver": "None",
        },
    )
    spec = with_changes(spec, node_pools=pools)
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    pool = mocks.one(POOL).plain_inputs
    assert pool["scaleSetPriority"] == "Spot"
    assert pool["scaleSetEvictionPolicy"] == "Deallocate" and pool["spotMaxPrice"] == 2.5
    assert pool["gpuInstanceProfile"] == "MIG3g"
    assert pool["gpuProfile"] == {"driver": "None"}
    assert pool["minCount"] == 0 and pool["count"] == 0
    assert pool["availabilityZones"] == ["1", "2"]
    # AKS taints Spot nodes itself; the kit does not repeat it
    assert pool["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]
    # the GPU Operator owns drivers and the device plugin: no kit device plugin
    assert not [r for r in mocks.of_type("kubernetes:helm.sh/v3:Release") if "device-plugin" in r.name]
