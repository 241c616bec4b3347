"""Plausible outputs for the offline preview: what a cloud would return for each resource and call.

Each cloud area registers, per Pulumi type token, a function returning the *output* properties a real
provider would add to a resource's inputs (ids, ARNs, endpoints, CA data), and, per function token,
the result of a provider call (``invoke``). Values are deterministic: derived from the stack and the
resource name only, so two previews are byte-identical.

An invoke with no registered mock is an error (a mock that silently accepts anything hides bugs);
a resource type with no registered outputs gets its inputs back plus a deterministic id.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MockResource:
    type: str
    name: str
    inputs: dict[str, Any]
    stack: str
    project: str


OutputsFn = Callable[[MockResource], dict[str, Any]]
InvokeFn = Callable[[dict[str, Any], str], dict[str, Any]]

RESOURCE_OUTPUTS: dict[str, OutputsFn] = {}
INVOKES: dict[str, InvokeFn] = {}


def resource_outputs(*type_tokens: str) -> Callable[[OutputsFn], OutputsFn]:
    """Register the outputs function for one or more resource type tokens."""

    def deco(fn: OutputsFn) -> OutputsFn:
        for tok in type_tokens:
            if tok in RESOURCE_OUTPUTS:
                raise ValueError(f"mock outputs for {tok} registered twice")
            RESOURCE_OUTPUTS[tok] = fn
        return fn

    return deco


def invoke(*tokens: str) -> Callable[[InvokeFn], InvokeFn]:
    """Register the result of a provider function (args, stack) -> result."""

    def deco(fn: InvokeFn) -> InvokeFn:
        for tok in tokens:
            if tok in INVOKES:
                raise ValueError(f"mock invoke for {tok} registered twice")
            INVOKES[tok] = fn
        return fn

    return deco


def digest(*parts: str, length: int = 12) -> str:
    """A short deterministic hex string for ids."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def fake_account(stack: str) -> str:
    return str(int(digest("account", stack, length=10), 16) % 10**12).zfill(12)


def fake_ip(*parts: str) -> str:
    h = bytes.fromhex(digest(*parts, length=6))
    return f"203.0.{h[0] % 250 + 1}.{h[1] % 250 + 1}"


def fake_ca_data(*parts: str) -> str:
    """Base64 of a (fake, clearly labelled) PEM block: the shape of a cluster CA, no real key material."""
    body = base64.b64encode(f"fleetkit-preview-ca:{'/'.join(parts)}".encode()).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()
