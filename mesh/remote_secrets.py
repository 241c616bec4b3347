"""Endpoint discovery across clusters: each cluster's reader credentials, and its peers' remote secrets.

Every member exports what a peer's istiod needs to watch its API server (server URL, CA data and a
long-lived ``istio-reader-service-account`` token — the token as a Pulumi secret). Every member
reads each peer's exports with a ``pulumi.StackReference`` and applies the peer's remote secret,
shaped exactly as ``istioctl create-remote-secret --name <peer cluster>`` emits it.

A peer that has not exported its credentials yet (it was never deployed, or the offline preview's
first pass) yields a remote secret without data plus a warning; nothing fails. The next
``pulumi up`` after the peer is up fills it in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

from fleetkit.kube import apply_manifest, resource_name
from mesh import render
from mesh.topology import (
    EXPORT_CLUSTER_NAME,
    EXPORT_READER_CA_DATA,
    EXPORT_READER_SERVER,
    EXPORT_READER_TOKEN,
    Peer,
)


@dataclass
class ReaderToken:
    secret: pulumi.CustomResource
    #: the decoded service-account token (a Pulumi secret; ``None`` until the token controller fills it)
    token: pulumi.Output[str | None]


def create_reader_token(name: str, opts: pulumi.ResourceOptions) -> ReaderToken:
    """The ``kubernetes.io/service-account-token`` Secret of the reader service account, and its token."""
    obj = render.reader_token_secret()
    secret = apply_manifest(resource_name(name, obj), obj, opts)

    def decode(data: Any) -> str | None:
        raw = (data or {}).get("token")
        return base64.b64decode(raw).decode() if raw else None

    return ReaderToken(secret=secret, token=pulumi.Output.secret(secret.data.apply(decode)))  # type: ignore[attr-defined]


@dataclass
class RemoteSecretsArgs:
    peers: list[Peer]
    #: what the secrets wait for (the ``istio-system`` namespace)
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class RemoteSecrets(pulumi.ComponentResource):
    """One stack reference and one remote secret per peer, keyed by the peer's cluster name."""

    def __init__(self, name: str, args: RemoteSecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:mesh:RemoteSecrets", name, None, opts)
        self.references: dict[str, pulumi.StackReference] = {}
        self.secrets: dict[str, pulumi.CustomResource] = {}
        for peer in args.peers:
            # the resource name is the reference name itself: unique per stack, and what the offline
            # preview resolves (its last '/'-segment is the peer stack)
            ref = pulumi.StackReference(peer.ref, opts=pulumi.ResourceOptions(parent=self))
            self.references[peer.cluster_name] = ref
            obj = render.remote_secret(peer.cluster_name, None)
            obj["stringData"] = pulumi.Output.secret(
                pulumi.Output.all(
                    ref.get_output(EXPORT_READER_SERVER),
                    ref.get_output(EXPORT_READER_CA_DATA),
                    ref.get_output(EXPORT_READER_TOKEN),
                    ref.get_output(EXPORT_CLUSTER_NAME),
                ).apply(_string_data_of(peer))
            )
            self.secrets[peer.cluster_name] = apply_manifest(
                resource_name(name, obj), obj, pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
            )
        self.register_outputs({"remote_secrets": sorted(self.secrets)})


def _string_data_of(peer: Peer) -> Callable[[list[Any]], dict[str, str]]:
    def build(values: list[Any]) -> dict[str, str]:
        return _string_data(peer, *values)

    return build


def _string_data(peer: Peer, server: str | None, ca_data: str | None, token: str | None,
                 exported_name: str | None) -> dict[str, str]:
    if exported_name is not None and exported_name != peer.cluster_name:
        pulumi.log.warn(f"stack {peer.ref} exports mesh cluster name {exported_name!r} but the fleet names it "
                        f"{peer.cluster_name!r}; run `pulumi up` on {peer.stack} so both agree")
    if not (server and ca_data and token):
        pulumi.log.warn(f"stack {peer.ref} has not exported its mesh reader credentials yet; the remote secret "
                        f"for {peer.cluster_name} stays empty until you run `pulumi up` here after {peer.stack} is up")
        return {}
    data: dict[str, str] = render.remote_secret(
        peer.cluster_name, render.remote_kubeconfig(peer.cluster_name, server, ca_data, token))["stringData"]
    return data
