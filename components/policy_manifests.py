"""``PolicyManifests``: applies the rendered serving-policy manifests through a Kubernetes provider.

(The typed policies are ``policies.PolicySet``; this component only applies what it renders. Its Pulumi
type token stays ``fleetkit:components:PolicySet``: a type token is part of every child's URN, so
changing it would replace every policy object of a deployed stack.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from fleetkit.kube import apply_manifest, resource_name


@dataclass
class PolicyManifestsArgs:
    #: plain manifest dicts from ``policies.PolicySet.render`` (sorted, deterministic)
    manifests: list[dict[str, Any]]
    #: resources the policy objects must wait for (e.g. istiod and its CRDs, KEDA)
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PolicyManifests(pulumi.ComponentResource):
    """One child resource per manifest; names are derived from kind/namespace/name, never position."""

    def __init__(self, name: str, args: PolicyManifestsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:PolicySet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        self.objects: dict[str, pulumi.CustomResource] = {}
        #: PriorityClass objects by name: pods naming one are rejected until it exists, so the model
        #: workloads depend on these (a PriorityClass is cluster-scoped and needs nothing from the mesh)
        self.priority_classes: dict[str, pulumi.CustomResource] = {}
        for obj in args.manifests:
            rname = resource_name(name, obj)
            if rname in self.objects:
                raise ValueError(f"two policy objects map to the resource name {rname!r}")
            if obj["kind"] == "PriorityClass":
                self.objects[rname] = apply_manifest(rname, obj, pulumi.ResourceOptions(parent=self))
                self.priority_classes[obj["metadata"]["name"]] = self.objects[rname]
            else:
                self.objects[rname] = apply_manifest(rname, obj, child)
        self.object_count = pulumi.Output.from_input(len(self.objects))
        self.register_outputs({"object_count": self.object_count})
