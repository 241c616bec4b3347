"""What ``__main__.py`` runs: load the spec of the current stack and build its top-level component.

Under a real ``pulumi up`` the current stack's ``fleetkit:*`` values come from Pulumi's config (so
``pulumi config set`` and secrets work) and replace what the stack file says; the fleet file and the
other stacks are read from ``stacks/`` for fleet-wide context. The program does not know whether a
real engine or the offline preview runs it: the preview feeds Pulumi's config from the stack file the
same way Pulumi does (objects as JSON strings) and answers on Pulumi's mock runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, is_config_secret

from fleetkit.errors import SECRET_VALUE, Issue, SpecError
from fleetkit.fleet import Fleet
from fleetkit.loader import load_fleet
from fleetkit.spec import PeeringStackSpec, RegionStackSpec
from fleetkit.stack_files import secret_in_spec_message
from fleetkit.yamlio import load_yaml_file
from mesh.trust import TrustRoot, TrustRootArgs

NAMESPACE = "fleetkit"


def _config_overrides(root: Path, stack: str) -> list[str]:
    """``--set``-style items for the ``fleetkit:*`` config values that differ from the stack file.

    Values equal to the file's are left to the file, so problems point at the file's lines. A secret
    config value never becomes a setting (its value would be quoted back in a problem): a secret under
    ``fleetkit:`` is refused, naming the key only; credentials live under ``fleetkit-secrets:`` and are
    read, as secrets, only where the spec names them (``kubeconfig_secret``, ``secret_config``).
    """
    rel = f"stacks/Pulumi.{stack}.yaml"
    doc, _ = load_yaml_file(root / "stacks" / f"Pulumi.{stack}.yaml", stack)
    in_file = (doc or {}).get("config", {}) if isinstance(doc, dict) else {}
    items = []
    refused = []
    for key, raw in sorted(CONFIG.get().items()):
        if not key.startswith(f"{NAMESPACE}:"):
            continue
        name = key.split(":", 1)[1]
        if is_config_secret(key):
            refused.append(
                Issue.at(
                    rel,
                    f"config.{key}",
                    "config.secret-in-spec-namespace",
                    secret_in_spec_message(name),
                    SECRET_VALUE,
                )
            )
            continue
        try:
            value: Any = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            value = raw
        before = in_file.get(key) if isinstance(in_file, dict) else None
        items += [f"{path}={json.dumps(v)}" for path, v in _changed_leaves(name, before, value)]
    if refused:
        raise pulumi.RunError(SpecError(refused).render())
    return items


def _changed_leaves(path: str, before: Any, after: Any) -> list[tuple[str, Any]]:
    """Paths (dotted) whose values differ, descending into mappings so inherited siblings survive."""
    if before == after:
        return []
    if isinstance(after, dict) and after and isinstance(before, dict):
        out: list[tuple[str, Any]] = []
        for k, v in after.items():
            out += _changed_leaves(f"{path}.{k}", before.get(k), v)
        return out
    if isinstance(after, dict) and after and before is None:
        out = []
        for k, v in after.items():
            out += _changed_leaves(f"{path}.{k}", None, v)
        return out
    return [(path, after)]


#: fleets already loaded and validated in this process, by the state of the stack files (the offline
#: preview runs the program once or twice per stack; every run would otherwise reload the fleet)
_LOADED: dict[tuple[object, ...], Fleet] = {}


def _fingerprint(root: Path) -> tuple[object, ...]:
    stacks = root / "stacks"
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in stacks.glob("*.yaml")))


def load_current_stack(root: Path) -> Fleet:
    stack = pulumi.get_stack()
    overrides = _config_overrides(root, stack)
    # without overrides the fleet is the same whichever stack asks; with them it is this stack's own
    key = (str(root), _fingerprint(root), stack if overrides else None, tuple(overrides))
    if key in _LOADED and stack in _LOADED[key].stacks:
        return _LOADED[key]
    try:
        fleet = load_fleet(root, only=[stack], overrides=overrides, override_label="pulumi config")
    except SpecError as err:
        # a RunError prints its message without a Python traceback
        raise pulumi.RunError(err.render()) from None
    if len(_LOADED) > 8:
        _LOADED.clear()
    _LOADED[key] = fleet
    return fleet


#: Logical name of each role's top-level component. Stable (no stack name): ``pulumi stack rename``
#: keeps every URN's name, so nothing is replaced. Stacks deployed when the name was the stack's carry
#: an alias to it; the engine derives the children's aliases from the name prefix.
ROOT_NAMES = {"region": "region", "trust-root": "trust-root", "peering": "peering"}


def root_options(stack: str) -> pulumi.ResourceOptions:
    """Options of the top-level component: the alias from the earlier, stack-named, root."""
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=stack)])


def run(root: Path) -> None:
    """Build the stack's component and export what peers and operators need.

    The region and peering components are imported when the stack has that role: a trust-root
    stack never loads the cloud SDKs they import.
    """
    stack = pulumi.get_stack()
    fleet = load_current_stack(root)
    spec = fleet.stacks[stack].spec
    outputs: dict[str, Any]
    if isinstance(spec, RegionStackSpec):
        # reason: imports pulumi_aws/gcp/azure_native, which a trust-root stack does not need
        from components.platform import RegionPlatform, RegionPlatformArgs

        platform = RegionPlatform(
            ROOT_NAMES["region"],
            RegionPlatformArgs(stack=stack, resolved=fleet.stacks[stack].resolved, fleet=fleet),
            root_options(stack),
        )
        outputs = platform.outputs
    elif isinstance(spec, PeeringStackSpec):
        # reason: imports the cloud SDKs (through components.cluster), as above
        from components.peering import MeshPeering, MeshPeeringArgs

        outputs = MeshPeering(
            ROOT_NAMES["peering"], MeshPeeringArgs(spec=spec, fleet=fleet), root_options(stack)
        ).outputs
    else:
        root_ca = TrustRoot(ROOT_NAMES["trust-root"], TrustRootArgs(spec=spec), root_options(stack))
        outputs = root_ca.exports()
    for key, value in sorted(outputs.items()):
        pulumi.export(key, value)
