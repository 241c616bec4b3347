"""Precedence: field default < stacks/fleet.yaml < stack file < --set, and model selection."""

from __future__ import annotations

import yaml

from fleetkit.loader import load_fleet


def _edit(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_demo_fleet_loads(project_root):
    fleet = load_fleet(project_root)
    regions = fleet.region_stacks()
    assert len(regions) >= 4
    assert {s.spec.cloud for s in regions.values()} == {"aws", "gcp", "azure"}
    services = fleet.services()
    assert len(services) >= 2
    kinds = fleet.stacks["aws-us-east-1"].spec.policies
    assert kinds.qos and kinds.failover and kinds.resilience.fallback and kinds.security.jwt


def test_field_default_then_fleet_then_stack_then_cli(tmp_project):
    stack = tmp_project / "stacks" / "Pulumi.aws-us-west-2.yaml"
    fleet = load_fleet(tmp_project)
    spec = fleet.stacks["aws-us-west-2"].spec
    # field default (not set anywhere)
    assert spec.models["llama-3-8b"].gpu_memory_utilization == 0.92
    # fleet file value inherited
    assert spec.models["llama-3-8b"].max_model_len == 8192
    # stack file overrides the fleet file (fleet says max 4, this stack says 6)
    assert spec.models["llama-3-8b"].replicas.max == 6
    # ... and keeps the fleet's sibling keys (deep merge)
    assert spec.models["llama-3-8b"].replicas.min == 1
    # CLI --set beats everything
    fleet = load_fleet(tmp_project, only=["aws-us-west-2"], overrides=["models.llama-3-8b.replicas.max=9"])
    assert fleet.stacks["aws-us-west-2"].spec.models["llama-3-8b"].replicas.max == 9
    # ... and applies only to the selected stack
    assert fleet.stacks["aws-us-east-1"].spec.models["llama-3-8b"].replicas.max == 4

    def set_util(doc):
        doc["config"]["fleetkit:models"]["llama-3-8b"]["gpu_memory_utilization"] = 0.95

    _edit(stack, set_util)
    assert (
        load_fleet(tmp_project).stacks["aws-us-west-2"].spec.models["llama-3-8b"].gpu_memory_utilization
        == 0.95
    )


def test_stack_overrides_fleet_policy(tmp_project):
    fleet = load_fleet(tmp_project)
    use1 = fleet.stacks["aws-us-east-1"].spec.policies.autoscaling
    assert [w.name for w in use1.models["llama-3-70b"].schedule] == [
        "business-hours"
    ]  # the stack's own window
    assert fleet.stacks["azure-eastus"].spec.policies.autoscaling.models == {}
    assert use1.default == fleet.stacks["azure-eastus"].spec.policies.autoscaling.default  # inherited
    # the rest of the policies is still the fleet's
    assert (
        fleet.stacks["azure-eastus"].spec.policies.routing
        == fleet.stacks["aws-us-east-1"].spec.policies.routing
    )


def test_stack_deploys_only_the_models_it_names(project_root):
    fleet = load_fleet(project_root)
    assert sorted(fleet.stacks["azure-eastus"].spec.models) == ["llama-3-8b"]
    assert "llama-3-70b" in fleet.stacks["aws-us-east-1"].spec.models


def test_trust_root_inherits_only_mesh(project_root):
    root = load_fleet(project_root).stacks["mesh-root"]
    assert root.spec.role == "trust-root"
    assert root.spec.mesh.mesh_id == "fleetkit-mesh"


def test_errors_point_at_the_file_that_set_the_value(tmp_project):
    from fleetkit.errors import SpecError

    def bad_fleet(doc):
        doc["fleetkit"]["models"]["llama-3-8b"]["max_model_len"] = "long"

    _edit(tmp_project / "stacks" / "fleet.yaml", bad_fleet)
    try:
        load_fleet(tmp_project)
    except SpecError as err:
        files = {p.file for p in err.problems}
        paths = {p.where for p in err.problems}
    assert files == {"stacks/fleet.yaml"}
    assert paths == {"fleetkit.models.llama-3-8b.max_model_len"}
