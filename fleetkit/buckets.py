"""``fleetkit validate --check-buckets``: compare each model's pinned ``weights_digest`` with the manifest
its bucket holds now.

The pin is the canonical digest of the weight-cache agent's manifest (``fleetkit-weights publish``
prints it; images/weight-cache/README.md, "Pinning"). Every node's ``sync --manifest-digest`` refuses
another manifest, so a pin that no longer matches its bucket means those nodes cannot start the model:
this check finds that before a rollout. It is opt-in because it is the only part of ``validate`` that
talks to the network; it uses the agent's own S3 client, so endpoint and credentials come from the same
places as on a node: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` or the standard AWS chain, ``AWS_REGION``.
"""

from __future__ import annotations

from typing import NamedTuple

from fleetkit.fleet import Fleet
from fleetkit.spec import RegionStackSpec


class Pin(NamedTuple):
    weights_uri: str
    digest: str
    where: list[str]  # "<stack> models.<name>" for every stack that pins it


class PinCheck(NamedTuple):
    pin: Pin
    ok: bool
    detail: str


def pinned_models(fleet: Fleet) -> tuple[list[Pin], int]:
    """(distinct pinned (weights_uri, digest) pairs in stack order, number of unpinned models)."""
    pins: dict[tuple[str, str], Pin] = {}
    unpinned = 0
    for name, stack in sorted(fleet.region_stacks().items()):
        assert isinstance(stack.spec, RegionStackSpec)
        for key, model in sorted(stack.spec.models.items()):
            if model.weights_digest is None:
                unpinned += 1
                continue
            pin = pins.setdefault(
                (model.weights_uri, model.weights_digest), Pin(model.weights_uri, model.weights_digest, [])
            )
            pin.where.append(f"{name} models.{key}")
    return list(pins.values()), unpinned


def check_pins(pins: list[Pin], max_attempts: int = 3) -> list[PinCheck]:
    """Fetch each pinned model's manifest and compare digests (network: the object store only)."""
    # The agent is its own distribution (images/weight-cache); only this opt-in check needs it.
    from fleetkit_weights.errors import WeightsError
    from fleetkit_weights.options import parse_s3_uri
    from fleetkit_weights.retry import RetryPolicy
    from fleetkit_weights.s3 import S3Client
    from fleetkit_weights.sync import fetch_manifest

    policy = RetryPolicy.from_env(max_attempts)
    client = S3Client()
    out: list[PinCheck] = []
    try:
        for pin in pins:
            try:
                man = fetch_manifest(client, parse_s3_uri(pin.weights_uri), policy)
            except (WeightsError, OSError, ValueError) as exc:
                out.append(PinCheck(pin, False, f"cannot read the manifest: {exc}"))
                continue
            if man.pin == pin.digest:
                out.append(PinCheck(pin, True, f"bucket manifest is {man.pin}"))
            else:
                out.append(PinCheck(pin, False, f"bucket manifest is {man.pin}, the spec pins {pin.digest}"))
    finally:
        client.close()
    return out
