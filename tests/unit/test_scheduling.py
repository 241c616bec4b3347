"""Pure tests of node labels, taint spellings, pod scheduling and the device-plugin decision."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit import foundation, pools, report, scheduling
from fleetkit.loader import load_fleet
from fleetkit.spec import RegionStackSpec, Taint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(ROOT)


def spec_of(fleet, stack: str) -> RegionStackSpec:
    spec = fleet.stacks[stack].spec
    assert isinstance(spec, RegionStackSpec)
    return spec


def changed(spec: RegionStackSpec, path: list[str], value) -> RegionStackSpec:
    data = spec.model_dump()
    cur = data
    for key in path[:-1]:
        if cur.get(key) is None:
            cur[key] = {}
        cur = cur[key]
    cur[path[-1]] = value
    return RegionStackSpec.model_validate(data)


def test_taint_spellings_per_cloud():
    taints = [
        Taint(key="nvidia.com/gpu", value="present"),
        Taint(key="dedicated", value="", effect="NoExecute"),
    ]
    assert scheduling.eks_taints(taints) == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"},
        {"key": "dedicated", "value": "", "effect": "NO_EXECUTE"},
    ]
    assert scheduling.gke_taints(taints)[0]["effect"] == "NO_SCHEDULE"
    assert scheduling.aks_taints(taints) == ["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"]


def test_pod_scheduling_matches_the_pool(fleet):
    spec = spec_of(fleet, "aws-us-east-1")
    sched = scheduling.pod_scheduling(spec, "l4")
    assert sched.node_selector == {"fleetkit.dev/pool": "l4"}
    assert sched.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert scheduling.node_labels(spec, "l4")["fleetkit.dev/pool"] == "l4"


def test_aks_spot_pool_needs_the_spot_toleration(fleet):
    spec = changed(spec_of(fleet, "azure-eastus"), ["node_pools", "a100", "spot"], True)
    tolerations = scheduling.pod_scheduling(spec, "a100").tolerations
    assert {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    } in tolerations
    # spot on EKS/GKE adds no taint of its own
    gke = spec_of(fleet, "gcp-europe-west4")
    assert len(scheduling.pod_scheduling(gke, "h100").tolerations) == 1


def test_toleration_without_value_uses_exists():
    assert scheduling.toleration(Taint(key="gpu", value="")) == {
        "key": "gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
    }


def test_unknown_pool_is_a_key_error(fleet):
    with pytest.raises(KeyError, match="no node pool 'nope'"):
        scheduling.pod_scheduling(spec_of(fleet, "aws-us-east-1"), "nope")


def test_node_labels_per_cloud(fleet):
    aws = changed(
        spec_of(fleet, "aws-us-east-1"),
        ["node_pools", "l40s", "aws", "ami_type"],
        "BOTTLEROCKET_x86_64_NVIDIA",
    )
    l4, l40s = scheduling.node_labels(aws, "l4"), scheduling.node_labels(aws, "l40s")
    assert l4["fleetkit.dev/gpu-class"] == "l4" and l4["k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    # the device plugin label only where the kit installs the plugin (AL2023, not Bottlerocket)
    assert l4["nvidia.com/gpu.present"] == "true"
    assert "nvidia.com/gpu.present" not in l40s
    gcp = scheduling.node_labels(spec_of(fleet, "gcp-europe-west4"), "h100")
    assert gcp == {"fleetkit.dev/gpu-class": "h100", "fleetkit.dev/pool": "h100"}


def test_device_plugin_decision(fleet):
    assert scheduling.needs_device_plugin(spec_of(fleet, "aws-us-east-1"))  # l4 is AL2023
    assert scheduling.device_plugin_pools(spec_of(fleet, "aws-us-east-1")) == ["l4", "l40s"]
    assert scheduling.needs_device_plugin(spec_of(fleet, "azure-eastus"))  # AKS installs no plugin
    assert not scheduling.needs_device_plugin(spec_of(fleet, "gcp-europe-west4"))  # GKE deploys its own
    aws = spec_of(fleet, "aws-us-west-2")
    only_bottlerocket = aws.model_dump()
    for pool in only_bottlerocket["node_pools"].values():
        pool["aws"] = {"ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}
    assert not scheduling.needs_device_plugin(RegionStackSpec.model_validate(only_bottlerocket))
    operator = changed(spec_of(fleet, "azure-eastus"), ["node_pools", "a100", "azure", "gpu_driver"], "None")
    assert not scheduling.needs_device_plugin(operator)
    never = changed(spec_of(fleet, "aws-us-east-1"), ["addons", "nvidia_device_plugin"], "never")
    assert not scheduling.needs_device_plugin(never)
    always = changed(spec_of(fleet, "gcp-europe-west4"), ["addons", "nvidia_device_plugin"], "always")
    assert scheduling.device_plugin_pools(always) == ["h100", "l4"]


def test_device_plugin_tolerates_every_pool_it_runs_on(fleet):
    sched = scheduling.device_plugin_scheduling(spec_of(fleet, "aws-us-east-1"))
    assert sched.node_selector == {"nvidia.com/gpu.present": "true"}
    assert sched.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_pure_modules_do_not_import_pulumi():
    code = (
        "import sys, fleetkit.scheduling, fleetkit.infra_checks, fleetkit.loader; "
        "assert not [m for m in sys.modules if m == 'pulumi' or m.startswith('pulumi_')], 'pulumi imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_backend_settings_are_parameters_of_the_sdk_readers():
    from pulumi_terraform import state

    readers = {
        "s3": state.get_s3_reference,
        "azurerm": state.get_azure_rm_reference,
        "remote": state.get_remote_reference,
        "local": state.get_local_reference,
    }
    for backend, reader in readers.items():
        params = set(inspect.signature(reader).parameters)
        assert foundation.BACKEND_SETTINGS[backend] <= params, backend
    assert foundation.coerce_backend_setting("encrypt", "true") is True
    assert foundation.coerce_backend_setting("max_retries", "5") == 5
    assert foundation.coerce_backend_setting("bucket", "b") == "b"


def test_gce_bundled_local_ssds():
    from fleetkit import catalog

    assert pools.gce_bundled_local_ssds(catalog.lookup("gcp", "a3-highgpu-8g")) == 16
    assert pools.gce_bundled_local_ssds(catalog.lookup("gcp", "a2-ultragpu-2g")) == 2
    assert pools.gce_bundled_local_ssds(catalog.lookup("gcp", "g2-standard-48")) == 0


@pytest.mark.parametrize("stack", ["aws-us-east-1", "aws-us-west-2", "gcp-europe-west4", "azure-eastus"])
def test_capacity_plan_of_the_demo_stacks(fleet, stack):
    plan = report.capacity_plan(fleet, stack)
    spec = spec_of(fleet, stack)
    assert [row.pool for row in plan.pools] == sorted(spec.node_pools)
    assert sorted(p.model for p in plan.placements) == sorted(spec.models)
    assert plan.problems == ()
    assert all(p.fits for p in plan.placements)


def test_capacity_plan_rejects_the_trust_root(fleet):
    with pytest.raises(TypeError, match="not a region stack"):
        report.capacity_plan(fleet, "mesh-root")
