"""Bad infrastructure input gives one clear spec error each: file, path, rule and value.

Each case edits one stack file of a throwaway copy of the demo ``stacks/`` and loads the fleet with
:func:`fleetkit.loader.load_fleet`, which must raise :class:`SpecError` naming the rule, the path and
the file that set the bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.spec import RegionStackSpec

USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
USW2 = "stacks/Pulumi.aws-us-west-2.yaml"
EUW4 = "stacks/Pulumi.gcp-europe-west4.yaml"
EUS = "stacks/Pulumi.azure-eastus.yaml"

Edit = Callable[[dict[str, Any]], None]


def edit_stack(root: Path, rel: str, fn: Edit) -> None:
    path = root / rel
    doc = yaml.safe_load(path.read_text())
    fn(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def problems_of(root: Path) -> list[Any]:
    with pytest.raises(SpecError) as info:
        load_fleet(root)
    return info.value.problems


def pool(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return cfg["fleetkit:node_pools"][name]


def _set_region(cfg: dict[str, Any], region: str) -> None:
    cfg["fleetkit:region"] = region
    cfg["gcp:region"] = region


def _foundation(backend: str, config: dict[str, str], outputs: dict[str, str]) -> Edit:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["fleetkit:cluster"]["foundation"] = {"backend": backend, "config": config, "outputs": outputs}

    return fn


def _rename_aks_pool(cfg: dict[str, Any]) -> None:
    cfg["fleetkit:node_pools"]["a100-gpu"] = cfg["fleetkit:node_pools"].pop("a100")
    cfg["fleetkit:models"]["llama-3-8b"]["pool"] = "a100-gpu"


# (id, file, edit, rule, path, value or None)
CASES: list[tuple[str, str, Edit, str, str, Any]] = [
    (
        "unknown-instance-type",
        USE1,
        lambda c: pool(c, "l4").update(instance_type="g6.12xlarg"),
        "pool.unknown-instance-type",
        "fleetkit:node_pools.l4.instance_type",
        "g6.12xlarg",
    ),
    (
        "gpu-not-offered-in-region",
        EUW4,
        lambda c: _set_region(c, "southamerica-west1"),
        "pool.gpu-not-offered",
        "fleetkit:node_pools.h100.instance_type",
        "a3-highgpu-8g",
    ),
    (
        "tp-larger-than-gpus-per-node",
        USW2,
        lambda c: c["fleetkit:models"]["llama-3-8b"].update(tensor_parallel=8),
        "capacity.tp-exceeds-gpus",
        "fleetkit:models.llama-3-8b.tensor_parallel",
        8,
    ),
    (
        "model-does-not-fit",
        USW2,
        lambda c: c["fleetkit:models"].update({"llama-3-70b": {"pool": "a10g"}}),
        "capacity.does-not-fit",
        "fleetkit:models.llama-3-70b.pool",
        "a10g",
    ),
    (
        "min-greater-than-max",
        USE1,
        lambda c: pool(c, "l4").update(min_size=5, max_size=2),
        "spec.value_error",
        "fleetkit:node_pools.l4.min_size",
        5,
    ),
    (
        "adopt-and-create",
        USE1,
        lambda c: c["fleetkit:cluster"].update(adopt={"kubernetes_version": "1.33"}),
        "spec.value_error",
        "fleetkit:cluster.adopt",
        "adopt",
    ),
    (
        "zone-of-another-region",
        USE1,
        lambda c: pool(c, "l4").update(zones=["us-east-1a", "us-west-2b"]),
        "pool.zone-not-in-region",
        "fleetkit:node_pools.l4.zones[1]",
        "us-west-2b",
    ),
    (
        "azure-zone-spelling",
        EUS,
        lambda c: pool(c, "a100").update(zones=["eastus-1"]),
        "pool.zone-not-in-region",
        "fleetkit:node_pools.a100.zones[0]",
        "eastus-1",
    ),
    (
        "mig-on-a-gpu-without-mig",
        EUS,
        lambda c: pool(c, "a100").update(
            instance_type="Standard_NC64as_T4_v3", azure={"mig_profile": "MIG1g"}
        ),
        "pool.mig-unsupported",
        "fleetkit:node_pools.a100.azure.mig_profile",
        "MIG1g",
    ),
    (
        "local-ssd-on-a-bundling-type",
        EUW4,
        lambda c: pool(c, "h100").update(gcp={"local_ssd_count": 2}),
        "pool.local-ssd-bundled",
        "fleetkit:node_pools.h100.gcp.local_ssd_count",
        2,
    ),
    (
        "bottlerocket-instance-store",
        USE1,
        lambda c: pool(c, "l40s").update(
            aws={"ami_type": "BOTTLEROCKET_x86_64_NVIDIA", "instance_store_cache": True}
        ),
        "pool.instance-store-unsupported",
        "fleetkit:node_pools.l40s.aws.instance_store_cache",
        True,
    ),
    # issue 14.1: both 70B versions (~261 GiB) on Bottlerocket's 200 GiB data volume (cache 80 GiB)
    (
        "weights-exceed-node-cache",
        USE1,
        lambda c: pool(c, "l40s").update(aws={"ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}),
        "pool.cache-too-small",
        "fleetkit:node_pools.l40s",
        "g6e.12xlarge",
    ),
    # issue 14.8: AKS ignores spot settings on a Regular pool
    (
        "azure-spot-options-without-spot",
        EUS,
        lambda c: pool(c, "a100").update(azure={"spot_max_price": -1, "spot_eviction_policy": "Delete"}),
        "pool.spot-options-without-spot",
        "fleetkit:node_pools.a100.azure.spot_eviction_policy",
        ["spot_eviction_policy", "spot_max_price"],
    ),
    # issue 14.7: a public API endpoint open to the internet, explicitly or by leaving the list empty
    (
        "api-endpoint-open-to-internet",
        USE1,
        lambda c: c["fleetkit:cluster"]["create"].update(authorized_networks=["0.0.0.0/0"]),
        "cluster.api-open-to-internet",
        "fleetkit:cluster.create.authorized_networks",
        ["0.0.0.0/0"],
    ),
    (
        "api-endpoint-without-ranges",
        EUW4,
        lambda c: c["fleetkit:cluster"]["create"].pop("authorized_networks"),
        "cluster.api-open-to-internet",
        "fleetkit:cluster.create.authorized_networks",
        [],
    ),
    # issue 14.2: a min-0 pool with no node autoscaler never scales up
    (
        "scale-from-zero-without-autoscaler",
        USE1,
        lambda c: c.setdefault("fleetkit:addons", {}).update(node_autoscaler="none"),
        "pool.scale-from-zero-needs-autoscaler",
        "fleetkit:node_pools.l40s.min_size",
        0,
    ),
    # issue 14.5: the old Azure form - an HPA on a custom metric with no prometheus-adapter
    (
        "hpa-without-adapter",
        EUS,
        lambda c: c.update(
            {"fleetkit:policies": {"autoscaling": {"default": {"engine": "hpa", "kv_cache_target": None}}}}
        ),
        "autoscaling.hpa-needs-adapter",
        "fleetkit:policies.autoscaling.default.engine",
        "hpa",
    ),
    (
        "arm-ami-on-x86",
        USE1,
        lambda c: pool(c, "l4").update(aws={"ami_type": "AL2023_ARM_64_NVIDIA"}),
        "pool.ami-arch",
        "fleetkit:node_pools.l4.aws.ami_type",
        "AL2023_ARM_64_NVIDIA",
    ),
    (
        "reserved-label",
        EUW4,
        lambda c: pool(c, "l4").update(labels={"cloud.google.com/gke-spot": "true"}),
        "pool.reserved-label",
        "fleetkit:node_pools.l4.labels.cloud.google.com/gke-spot",
        "cloud.google.com/gke-spot",
    ),
    ("aks-pool-name", EUS, _rename_aks_pool, "pool.aks-name", "fleetkit:node_pools.a100-gpu", "a100-gpu"),
    (
        "kubernetes-too-old",
        USE1,
        lambda c: c["fleetkit:cluster"]["create"].update(kubernetes_version="1.31"),
        "mesh.kubernetes-too-old",
        "fleetkit:cluster.create.kubernetes_version",
        "1.31",
    ),
    (
        "gcp-without-project",
        EUW4,
        lambda c: c.pop("fleetkit:account"),
        "account.gcp-project",
        "fleetkit:account.gcp_project",
        None,
    ),
    (
        "gke-two-subnets",
        EUW4,
        lambda c: c["fleetkit:cluster"]["create"].update(subnet_ids=["a", "b"]),
        "cluster.subnets",
        "fleetkit:cluster.create.subnet_ids",
        ["a", "b"],
    ),
    (
        "foundation-gcs",
        EUW4,
        _foundation("gcs", {"bucket": "tf", "prefix": "net"}, {"vpc_id": "network_name"}),
        "foundation.unsupported-backend",
        "fleetkit:cluster.foundation.backend",
        "gcs",
    ),
    (
        "foundation-credential-in-config",
        USE1,
        _foundation("s3", {"bucket": "tf", "key": "net.tfstate", "secret_key": "x"}, {"vpc_id": "vpc_id"}),
        "foundation.secret-in-config",
        "fleetkit:cluster.foundation.config.secret_key",
        "***",
    ),
    (
        "foundation-unknown-input",
        USE1,
        _foundation("s3", {"bucket": "tf", "key": "net.tfstate"}, {"vpc": "vpc_id"}),
        "foundation.unknown-input",
        "fleetkit:cluster.foundation.outputs.vpc",
        "vpc",
    ),
    (
        "foundation-missing-setting",
        USE1,
        _foundation("s3", {"bucket": "tf"}, {"vpc_id": "vpc_id"}),
        "foundation.missing-setting",
        "fleetkit:cluster.foundation.config",
        None,
    ),
    (
        "azure-adopt-without-resource-group",
        EUS,
        lambda c: (c.pop("fleetkit:account"), c["fleetkit:cluster"].update(create=None, adopt={})),
        "cluster.azure-resource-group",
        "fleetkit:cluster.adopt.resource_group",
        None,
    ),
]


@pytest.mark.parametrize(
    ("file", "edit", "rule", "path", "value"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_infra_input_is_one_clear_error(
    tmp_project: Path, file: str, edit: Edit, rule: str, path: str, value: Any
) -> None:
    edit_stack(tmp_project, file, edit)
    problems = problems_of(tmp_project)
    matching = [p for p in problems if p.rule == rule]
    assert matching, f"no {rule} among: {[p.render() for p in problems]}"
    p = matching[0]
    assert (p.file, p.where) == (file, path), p.render()
    if value is not None:
        assert p.value == value
    assert p.message and rule in p.render() and file in p.render()


def test_every_problem_is_reported_at_once(tmp_project: Path) -> None:
    def many(c: dict[str, Any]) -> None:
        pool(c, "l4").update(zones=["eu-west-1a"], aws={"ami_type": "AL2023_ARM_64_NVIDIA"})
        c["fleetkit:cluster"]["create"].update(kubernetes_version="1.30")

    edit_stack(tmp_project, USE1, many)
    rules = {p.rule for p in problems_of(tmp_project)}
    assert {"pool.zone-not-in-region", "pool.ami-arch", "mesh.kubernetes-too-old"} <= rules


def test_a_pool_option_from_the_fleet_file_points_at_the_fleet_file(tmp_project: Path) -> None:
    fleet = tmp_project / "stacks" / "fleet.yaml"
    doc = yaml.safe_load(fleet.read_text())
    doc["fleetkit"]["cluster"] = {"create": {"kubernetes_version": "1.29"}}
    fleet.write_text(yaml.safe_dump(doc, sort_keys=False))
    # stacks that do not set the version themselves inherit the bad one from the fleet file
    edit_stack(tmp_project, USE1, lambda c: c["fleetkit:cluster"]["create"].pop("kubernetes_version"))
    found = [p for p in problems_of(tmp_project) if p.rule == "mesh.kubernetes-too-old"]
    assert any(
        p.file == "stacks/fleet.yaml" and p.where == "fleetkit.cluster.create.kubernetes_version"
        for p in found
    ), [p.render() for p in found]


def test_the_demo_fleet_has_no_infra_problems(project_root: Path) -> None:
    from fleetkit.infra_checks import check_infra

    fleet = load_fleet(project_root)
    for st in fleet.region_stacks().values():
        assert isinstance(st.spec, RegionStackSpec)
        assert check_infra(st.resolved) == []


def test_a_valid_foundation_passes(tmp_project: Path) -> None:
    edit_stack(
        tmp_project,
        USE1,
        _foundation(
            "s3",
            {
                "bucket": "tf-state",
                "key": "network/terraform.tfstate",
                "region": "us-east-1",
                "encrypt": "true",
            },
            {"vpc_id": "vpc_id", "subnet_ids": "private_subnets"},
        ),
    )
    fleet = load_fleet(tmp_project)
    assert fleet.stacks["aws-us-east-1"].spec.cluster.foundation is not None
