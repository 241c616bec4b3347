"""The program reads the current stack's values from Pulumi config; `--set` reaches it leaf by leaf."""

from __future__ import annotations

from fleetkit.loader import load_fleet
from fleetkit.preview import preview_fleet


def _objects(preview, kind):
    return {o["metadata"]["name"]: o for o in preview.manifests() if o["kind"] == kind}


def test_nested_set_changes_one_leaf_and_keeps_inherited_siblings(project_root):
    sets = ["models.llama-3-8b.replicas.max=7", "policies.security.require_jwt=false"]
    fleet = load_fleet(project_root, only=["azure-eastus"], overrides=sets)
    res = preview_fleet(fleet, only=["azure-eastus"], cli_sets=sets)["azure-eastus"]
    scaled = _objects(res, "ScaledObject")["llama-3-8b"]
    assert scaled["spec"]["maxReplicaCount"] == 7
    # the rest of the inherited policies is intact: routes, tiers, JWT issuer (now optional)
    assert "fleetkit-routes" in _objects(res, "VirtualService")
    assert "fleetkit-ingress-jwt" in _objects(res, "RequestAuthentication")
    assert "fleetkit-ingress-require-jwt" not in _objects(res, "AuthorizationPolicy")
