"""GKE GPU node pools under Pulumi mocks: accelerators + driver, spot, local SSD, autoscaling, taints."""

from __future__ import annotations

import pytest

from components.node_pools import build_gke_node_config
from fleetkit.resolve import resolve_pool
from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "gcp-europe-west4"
NP = "gcp:container/nodePool:NodePool"


@pytest.fixture(scope="module")
def mocks():
    spec = demo_spec(STACK)
    return run(STACK, spec, build_infra(STACK, spec))[0]


def test_l4_pool_accelerators_and_local_ssd(mocks):
    np = mocks.one(NP, "-l4-np").plain_inputs
    cfg = np["nodeConfig"]
    assert cfg["machineType"] == "g2-standard-48"
    assert cfg["guestAccelerators"] == [
        {"type": "nvidia-l4", "count": 4, "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"}}
    ]
    assert cfg["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": 2}
    assert cfg["spot"] is False
    assert cfg["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert cfg["labels"] == {"fleetkit.dev/gpu-class": "l4", "fleetkit.dev/pool": "l4"}
    assert np["autoscaling"] == {"totalMinNodeCount": 1, "totalMaxNodeCount": 3, "locationPolicy": "ANY"}
    assert np["namePrefix"] == "l4-" and np["cluster"] == "fleetkit-euw4"


def test_h100_spot_pool_uses_bundled_ssds_and_scales_to_zero(mocks):
    np = mocks.one(NP, "-h100-np").plain_inputs
    cfg = np["nodeConfig"]
    assert cfg["guestAccelerators"][0]["type"] == "nvidia-h100-80gb"
    assert cfg["guestAccelerators"][0]["count"] == 8
    assert cfg["spot"] is True
    assert cfg["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": 16}
    assert np["autoscaling"]["totalMinNodeCount"] == 0
    assert np["initialNodeCount"] == 0


def test_driver_left_to_the_gpu_operator():
    spec = demo_spec(STACK)
    pools = {k: v.model_dump() for k, v in spec.node_pools.items()}
    pools["l4"]["gcp"] = {"gpu_driver_version": "INSTALLATION_DISABLED"}
    pools["l4"]["zones"] = ["europe-west4-a", "europe-west4-b"]
    spec = with_changes(spec, node_pools=pools)
    cfg = build_gke_node_config(resolve_pool(spec, "l4"))
    assert cfg["guest_accelerators"][0]["gpu_driver_installation_config"] == {
        "gpu_driver_version": "INSTALLATION_DISABLED"
    }
    assert cfg["shielded_instance_config"]["enable_secure_boot"] is False
    assert "ephemeral_storage_local_ssd_config" not in cfg  # g2 bundles none and none were asked for
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    np = mocks.one(NP, "-l4-np").plain_inputs
    assert np["nodeLocations"] == ["europe-west4-a", "europe-west4-b"]
    assert np["initialNodeCount"] == 1  # 1 node over 2 zones, rounded up per zone
