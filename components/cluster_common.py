"""What every cloud's cluster shares: pure helpers, the component's state, foundation reads, protection.

:class:`ClusterCore` is the base of :class:`components.cluster.Cluster`: it declares what the cluster
exposes, reads Terraform foundation outputs (``pulumi_terraform.state``) and builds the resource
options that ``protection`` asks for. The per-cloud builders (``components.cluster_eks``,
``cluster_gke``, ``cluster_aks``) derive from it; nothing here creates a cloud resource.

Protection (Pulumi docs, "Resource options"): ``protect`` makes the engine refuse to delete or
replace a resource; ``retain_on_delete`` makes a delete drop the resource from the state and leave
it in the cloud, which is what a create -> adopt switch needs (``runbooks/protection.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import yaml
from pulumi_terraform import state as tfstate

from fleetkit.foundation import coerce_backend_setting
from fleetkit.resolve import ResolvedPlacement
from fleetkit.spec import ClusterSpec, CreateCluster, TerraformFoundation, secret_config_key

#: Default machine types of the system (CPU) pool per cloud.
SYSTEM_INSTANCE_TYPE = {"aws": "m6i.xlarge", "gcp": "e2-standard-4", "azure": "Standard_D4ds_v5"}
#: System pool size (nodes, whole cluster): min, max.
SYSTEM_POOL_SIZE = (2, 4)
#: ``pulumi_terraform.state`` readers per backend (each takes its backend's settings as keywords)
_T = TypeVar("_T")
_TF_READERS: dict[str, Callable[..., Any]] = {
    "s3": tfstate.get_s3_reference_output,
    "azurerm": tfstate.get_azure_rm_reference_output,
    "remote": tfstate.get_remote_reference_output,
    "local": tfstate.get_local_reference_output,
}


@dataclass
class ClusterArgs:
    stack: str
    #: the stack's cloud, region, account, ``cluster`` section, pools' zones and protection (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement


# --------------------------------------------------------------------------- pure helpers
def managed_tags(stack: str, cluster_name: str) -> dict[str, str]:
    """Tags/labels every cloud resource of the stack carries (tags update in place: a rename is cheap)."""
    return {"managed-by": "fleetkit", "fleetkit-stack": stack, "fleetkit-cluster": cluster_name}


def reported(value: _T | None, what: str) -> _T:
    """A value the cloud API reports for every existing cluster, though the provider SDK types it optional."""
    if value is None:
        raise ValueError(f"the cloud API reported no {what} for the cluster")
    return value


def public_cidrs(create: CreateCluster) -> list[str]:
    """CIDRs allowed to reach a public API endpoint.

    Never empty: EKS reads a missing ``publicAccessCidrs`` as ``0.0.0.0/0`` (EKS API ``VpcConfigRequest``).
    The spec check ``cluster.api-open-to-internet`` refuses a public endpoint without ranges, so an
    empty list here is a bug in the caller, not a user mistake.
    """
    if not create.authorized_networks:
        raise ValueError(
            "a public API endpoint needs authorized_networks (checked by cluster.api-open-to-internet)"
        )
    return list(create.authorized_networks)


def kubeconfig_doc(name: str, server: str, ca_data: str, user: dict[str, Any]) -> str:
    """A one-cluster, one-user kubeconfig (JSON, which is YAML)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": user}],
    }
    return json.dumps(doc, sort_keys=True, indent=2)


def kubeconfig_cluster(kubeconfig: str) -> tuple[str, str]:
    """(server, certificate-authority-data) of a kubeconfig's current context."""
    doc = yaml.safe_load(kubeconfig)
    current = doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == current), None)
    name = ctx["cluster"] if ctx else doc["clusters"][0]["name"]
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == name)
    return cluster["server"], cluster.get("certificate-authority-data", "")


def build_foundation_args(fnd: TerraformFoundation) -> dict[str, Any]:
    """Keyword arguments of the ``pulumi_terraform.state`` reader, secrets excluded."""
    args: dict[str, Any] = {k: coerce_backend_setting(k, v) for k, v in sorted(fnd.config.items())}
    if fnd.workspace:
        if fnd.backend == "remote":
            args["workspaces"] = {"name": fnd.workspace}
        elif fnd.backend in ("s3", "azurerm"):
            args["workspace"] = fnd.workspace
    return args


def as_list(value: Any) -> list[str]:
    """A Terraform output that is one id or a list of ids, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def secret_config_output(key: str) -> pulumi.Output[str]:
    """A credential from Pulumi config, as a secret (bare names are in ``fleetkit-secrets``)."""
    namespace, name = secret_config_key(key)
    return pulumi.Config(namespace).require_secret(name)


# --------------------------------------------------------------------------- the component's base
class ClusterCore(pulumi.ComponentResource):
    """State and shared plumbing of the cluster component; the per-cloud builders fill it in."""

    endpoint: pulumi.Output[str]
    ca_data: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    network_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    #: the cluster's name in the cloud
    cloud_name: pulumi.Output[str]
    # ---- cloud handles for the node pools (None on other clouds)
    node_role_arn: pulumi.Output[str] | None = None
    subnet_ids: pulumi.Output[list[str]] | None = None
    oidc_provider_arn: pulumi.Output[str] | None = None
    gcp_project: str | None = None
    location: pulumi.Output[str] | None = None
    node_service_account: pulumi.Output[str] | None = None
    resource_group_name: pulumi.Output[str] | None = None
    vnet_subnet_id: pulumi.Output[str] | None = None
    #: AKS: the cluster identity's principal (it attaches load-balancer IPs)
    principal_id: pulumi.Output[str] | None = None
    #: GKE secondary range names from a foundation (pods, services)
    ip_ranges: tuple[pulumi.Output[str] | None, pulumi.Output[str] | None] = (None, None)

    _name: str
    _args: ClusterArgs
    _child: pulumi.ResourceOptions
    _invoke: pulumi.InvokeOutputOptions
    _tags: dict[str, str]
    _foundation: pulumi.Output[dict[str, Any]] | None
    #: what the Kubernetes provider waits for before any object is applied (EKS access policies)
    _access_ready: list[pulumi.Resource]

    # ------------------------------------------------------------------ protection
    def _cluster_opts(self, **extra: Any) -> pulumi.ResourceOptions:
        """The created cluster (and what holds it): ``protect`` and ``retain_on_delete`` per ``protection``."""
        prot = self._args.placement.protection
        return pulumi.ResourceOptions(
            parent=self, protect=prot.cluster, retain_on_delete=prot.retain_cluster, **extra
        )

    def _create_only_opts(self, **extra: Any) -> pulumi.ResourceOptions:
        """What only a created cluster has (system pool, control-plane role, IRSA provider): retained with it."""
        return pulumi.ResourceOptions(
            parent=self, retain_on_delete=self._args.placement.protection.retain_cluster, **extra
        )

    # ------------------------------------------------------------------ foundation
    def _read_foundation(self, fnd: TerraformFoundation | None) -> pulumi.Output[dict[str, Any]] | None:
        if fnd is None:
            return None
        args: dict[str, Any] = build_foundation_args(fnd)
        for setting, key in sorted(fnd.secret_config.items()):
            args[setting] = secret_config_output(key)
        reader = _TF_READERS[fnd.backend]
        return reader(**args, opts=self._invoke).outputs

    def _from_foundation(self, kit_input: str) -> pulumi.Output[Any] | None:
        fnd = self._args.placement.cluster.foundation
        if fnd is None or self._foundation is None or kit_input not in fnd.outputs:
            return None
        tf_name = fnd.outputs[kit_input]

        def pick(outputs: dict[str, Any]) -> Any:
            if tf_name not in outputs:
                raise ValueError(
                    f"cluster.foundation.outputs.{kit_input}: Terraform output {tf_name!r} is not in the "
                    f"foundation's state (outputs: {', '.join(sorted(outputs)) or 'none'})"
                )
            return outputs[tf_name]

        return self._foundation.apply(pick)

    def _cluster_name(self, cl: ClusterSpec) -> pulumi.Output[str]:
        from_tf = self._from_foundation("cluster_name") if cl.adopt is not None else None
        return from_tf.apply(str) if from_tf is not None else pulumi.Output.from_input(cl.name)

    def _subnets(self, create: CreateCluster | None) -> pulumi.Output[list[str]] | None:
        from_tf = self._from_foundation("subnet_ids")
        if from_tf is not None:
            return from_tf.apply(as_list)
        if create is not None and create.subnet_ids:
            return pulumi.Output.from_input(list(create.subnet_ids))
        return None

    def _vpc(self, create: CreateCluster | None) -> pulumi.Output[str] | None:
        from_tf = self._from_foundation("vpc_id")
        if from_tf is not None:
            return from_tf.apply(str)
        if create is not None and create.vpc_id:
            return pulumi.Output.from_input(create.vpc_id)
        return None
