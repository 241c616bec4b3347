"""Endpoint discovery across clusters: each cluster's reader credentials.

Every member exports what a peer's istiod needs to watch its API server (server URL, CA data and a
long-lived ``istio-reader-service-account`` token — the token as a Pulumi secret). The remote
secrets themselves are written by the fleet's peering stack (:mod:`components.peering`), which reads
every region stack; a region stack never references another region, so it comes up in one pass.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi

from fleetkit.kube import apply_manifest, resource_name
from mesh import render


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
