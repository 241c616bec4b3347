"""``ModelService``: one vLLM model of a region stack — identity, weight cache, server, monitoring.

A thin shell over :mod:`components.model_plan` (the model's facts, from the resolved stack),
:mod:`components.model_render` and :mod:`components.model_observability` (pure builders) and :mod:`components.identity`
(cloud identity). Children, all named from the component name and the object kind/name:

* the cloud identity that may read the model's weights prefix (IAM role + policy, GCP service
  account + Workload Identity binding, or Azure identity + federated credential);
* Kubernetes objects in the model namespace: ServiceAccount, Deployment, PodDisruptionBudget,
  the prefetch DaemonSet for ``hot`` models, PodMonitor, PrometheusRule, and on GCP/Azure the
  S3 key Secret when the keys are in Pulumi config.

The model's Service, DestinationRule subsets and autoscaler are rendered by the policy layer
(``policies.traffic`` / ``policies.autoscaling``) and select these pods by their labels.

``FleetDashboard`` ships the Grafana dashboard of the whole fleet once per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.handles import ClusterHandle
from components.identity import WeightsIdentityArgs, create_weights_identity
from components.model_observability import build_dashboard_configmap
from components.model_plan import plan_model
from components.model_render import render_model
from fleetkit.kube import apply_manifest, resource_name
from fleetkit.resolve import ResolvedStack
from policies.context import RenderContext

TYPE = "fleetkit:components:ModelService"


@dataclass
class ModelServiceArgs:
    stack: str
    #: the stack's resolved pools and models (:mod:`fleetkit.resolve`)
    resolved: ResolvedStack
    #: the model (a key of ``resolved.models``)
    model_name: str
    context: RenderContext
    #: the stack's cluster (OIDC issuer / provider for workload identity)
    cluster: ClusterHandle
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class ModelService(pulumi.ComponentResource):
    """Create with ``opts`` carrying the cluster's Kubernetes provider (``provider=``)."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        try:
            plan = plan_model(args.resolved, args.model_name, args.context, stack=args.stack)
        except ValueError as err:  # e.g. extra_args repeating a typed flag (also a loader check)
            raise pulumi.RunError(f"models.{args.model_name}: {err}") from None
        child = pulumi.ResourceOptions(parent=self)

        identity = create_weights_identity(
            f"{name}-weights",
            WeightsIdentityArgs(
                stack=args.stack,
                placement=args.resolved.placement,
                model_name=args.model_name,
                namespace=plan.namespace,
                service_account=plan.name,
                weights=plan.weights,
                cluster=args.cluster,
            ),
            child,
        )

        manifests = render_model(plan, identity.workload)
        if identity.secret is not None:
            manifests.insert(0, identity.secret)
        base = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.objects: dict[str, pulumi.CustomResource] = {}
        first: list[pulumi.Resource] = []  # ServiceAccount and Secret: the pods need them
        for obj in manifests:
            rname = resource_name(name, obj)
            kind = obj["kind"]
            if kind in ("Deployment", "DaemonSet"):
                obj_opts = pulumi.ResourceOptions.merge(
                    base, pulumi.ResourceOptions(depends_on=[*first, *identity.resources])
                )
            else:
                obj_opts = base
            if kind == "Secret":
                obj_opts = pulumi.ResourceOptions.merge(
                    obj_opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
                )
            resource = apply_manifest(rname, obj, obj_opts)
            if kind in ("ServiceAccount", "Secret"):
                first.append(resource)
            self.objects[rname] = resource

        self.plan = plan
        self.deployment_name = pulumi.Output.from_input(plan.name)
        self.served_names = pulumi.Output.from_input(plan.served_names)
        self.gpus_per_replica = pulumi.Output.from_input(plan.size.gpus)
        self.identity = identity.outputs
        self.register_outputs(
            {
                "deployment_name": self.deployment_name,
                "served_names": self.served_names,
                "gpus_per_replica": self.gpus_per_replica,
                **self.identity,
            }
        )


@dataclass
class FleetDashboardArgs:
    #: namespace Grafana's dashboard sidecar watches (the ConfigMap is labelled grafana_dashboard: "1")
    namespace: str
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class FleetDashboard(pulumi.ComponentResource):
    """The fleet's vLLM dashboard as a ConfigMap; create one per cluster."""

    def __init__(self, name: str, args: FleetDashboardArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:FleetDashboard", name, None, opts)
        obj = build_dashboard_configmap(args.namespace)
        self.config_map = apply_manifest(
            resource_name(name, obj),
            obj,
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.config_map_name = pulumi.Output.from_input(obj["metadata"]["name"])
        self.register_outputs({"config_map_name": self.config_map_name})
