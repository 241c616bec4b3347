"""Reading the fleet's files: ``stacks/fleet.yaml`` and ``stacks/Pulumi.<stack>.yaml``, before any typing.

Loader layer (below :mod:`fleetkit.loader`, which composes and validates what is read here). Every
problem found here is about the file as written — its name, its YAML, its document shape, its config
keys and namespaces — so it is reported against that file and path, and a file that cannot be used
stops before its settings are typed (no follow-on errors).

Pulumi stack files are ``Pulumi.<stack>.yaml`` whose ``config:`` maps ``namespace:key`` to a value
(Pulumi docs, "Configuration": project and stack settings files); the kit's settings are the
``fleetkit:`` keys and its credentials the encrypted ``fleetkit-secrets:`` keys (``{secure: …}``, what
``pulumi config set --secret`` writes). Provider keys (``aws:region``, ``gcp:project`` …) are kept for
the checks that compare them with the spec.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from fleetkit.errors import MISSING, SECRET_VALUE, ProblemCollector
from fleetkit.fleet import NAMESPACE
from fleetkit.spec import SECRETS_NAMESPACE, SPEC_CLASSES, RegionStackSpec
from fleetkit.yamlio import load_yaml_file

__all__ = [
    "FLEET_FILE",
    "STACK_FILE_KEYS",
    "STACK_GLOB",
    "SPEC_KEYS",
    "misnamed_stack_files",
    "read_fleet_file",
    "read_stack_file",
    "secret_in_spec_message",
    "stack_names",
]

FLEET_FILE = "fleet.yaml"
STACK_GLOB = "Pulumi.*.yaml"
STACK_FILE_KEYS = frozenset({"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"})


def stack_names(stacks_dir: Path) -> list[str]:
    """The stacks of the project: ``stacks/Pulumi.<stack>.yaml``."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob(STACK_GLOB))


def read_fleet_file(stacks_dir: Path, rel: str, col: ProblemCollector) -> dict[str, Any] | None:
    """The mapping under ``fleetkit:`` ({} without a fleet file); None when the file is unusable."""
    path = stacks_dir / FLEET_FILE
    if not path.exists():
        others = [p for p in stacks_dir.iterdir() if p.is_file() and p.suffix.lower() in _YAML_SUFFIXES]
        near = set(difflib.get_close_matches(FLEET_FILE, [p.name.lower() for p in others], cutoff=0.8))
        misnamed = sorted(
            p
            for p in others
            if not p.name.startswith("Pulumi.") and (p.stem.lower() == "fleet" or p.name.lower() in near)
        )
        for other in misnamed:
            col.add(
                f"stacks/{other.name}",
                "",
                "fleet.file-name",
                f"the fleet file is read only as stacks/{FLEET_FILE}; rename it (as named, every stack "
                "would lose what it inherits)",
                other.name,
            )
        return None if misnamed else {}
    doc, problems = load_yaml_file(path, rel)
    if problems:
        col.extend(problems)
        return None
    if not isinstance(doc, dict) or NAMESPACE not in doc:
        keys = sorted(map(str, doc)) if isinstance(doc, dict) else []
        close = difflib.get_close_matches(NAMESPACE, keys, n=1)
        hint = f"; {close[0]!r} looks like a misspelling of {NAMESPACE!r}" if close else ""
        col.add(
            rel,
            "(document)",
            "fleet.shape",
            f"the fleet file must hold one mapping under '{NAMESPACE}:'{hint}",
            keys if isinstance(doc, dict) else doc,
        )
        return None
    section = doc[NAMESPACE]
    if not isinstance(section, dict):
        col.add(
            rel,
            NAMESPACE,
            "fleet.shape",
            f"'{NAMESPACE}:' must be a mapping of the shared settings (models, policies, mesh, …)"
            + ("; it is empty" if section is None else ""),
            MISSING if section is None else section,
        )
        return None
    for key in sorted(set(doc) - {NAMESPACE}, key=str):
        nested = key in RegionStackSpec.model_fields
        col.add(
            rel,
            str(key),
            "fleet.unknown-key",
            f"the fleet file holds only '{NAMESPACE}:'"
            + (f"; indent {key!r} under '{NAMESPACE}:' to share it" if nested else "; remove this key"),
            key,
        )
    return section


def misnamed_stack_files(stacks_dir: Path) -> list[Path]:
    """Files that look like stack files but are not read as one (``Pulumi.x.yml``, ``pulumi.x.yaml``)."""
    return sorted(
        p
        for p in stacks_dir.iterdir()
        if p.is_file()
        and p.name.lower().startswith("pulumi.")
        and p.name.count(".") >= 2
        and p.suffix.lower() in _YAML_SUFFIXES
        and not (p.name.startswith("Pulumi.") and p.name.endswith(".yaml"))
    )


#: what a misnamed fleet or stack file ends with (compared lower-cased)
_YAML_SUFFIXES = frozenset({".yml", ".yaml", ".json"})
#: every top-level key some kind of stack spec has
SPEC_KEYS = frozenset(f for cls in SPEC_CLASSES.values() for f in cls.model_fields)


def read_stack_file(
    path: Path, rel: str, col: ProblemCollector
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(config, ours)``: every config key as written, and the ``fleetkit:`` values by key; None when
    the file is unusable (its problems are collected)."""
    doc, problems = load_yaml_file(path, rel)
    if problems:
        col.extend(problems)
        return None
    if not isinstance(doc, dict):
        col.add(
            rel,
            "(document)",
            "stack.shape",
            "a stack file must be a mapping with a 'config:' key",
            doc,
        )
        return None
    config = doc.get("config")
    for key in sorted(set(doc) - STACK_FILE_KEYS, key=str):
        close = difflib.get_close_matches(str(key), sorted(STACK_FILE_KEYS), n=1)
        hint = (
            f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(sorted(STACK_FILE_KEYS))})"
        )
        col.add(rel, str(key), "stack.unknown-key", f"not a Pulumi stack file key{hint}", key)
        if config is None and close == ["config"]:
            return None  # the misspelled 'config:' is the one mistake
    if not isinstance(config, dict) or not config:
        col.add(
            rel,
            "config",
            "stack.shape",
            "'config:' must be a mapping of 'namespace:key' settings"
            + (
                f": this stack has none (a region stack needs {NAMESPACE}:cloud, region, cluster and node_pools; "
                f"the trust root and the peering stack set {NAMESPACE}:role)"
                if not config
                else ""
            ),
            config if config else MISSING,
        )
        return None
    ours: dict[str, Any] = {}
    spec_keys = {k for cls in SPEC_CLASSES.values() for k in cls.model_fields}
    for key, value in config.items():
        if not isinstance(key, str) or ":" not in key:
            hint = f"; did you mean '{NAMESPACE}:{key}'?" if key in spec_keys else ""
            col.add(
                rel,
                ("config", key),
                "stack.config-key",
                f"config keys are written 'namespace:key'{hint}",
                key,
            )
            if key in spec_keys:
                ours[str(key)] = value  # read it as meant: its own mistakes are reported, no follow-ons
            continue
        ns, _, name = key.partition(":")
        if ns == NAMESPACE and isinstance(value, dict) and "secure" in value:
            col.add(
                rel,
                ("config", key),
                "config.secret-in-spec-namespace",
                secret_in_spec_message(name),
                SECRET_VALUE,
            )
        elif ns == NAMESPACE:
            ours[name] = value
        elif ns == SECRETS_NAMESPACE:
            if not (isinstance(value, dict) and set(value) == {"secure"}):
                col.add(
                    rel,
                    ("config", key),
                    "config.plain-secret",
                    f"a credential under '{SECRETS_NAMESPACE}:' sits in the stack file in clear text; remove it "
                    f"and set it encrypted: `pulumi config set --secret {key} …`",
                    SECRET_VALUE,
                )
        elif (meant := _meant_namespace(ns, name)) is not None:
            col.add(
                rel,
                key,
                "stack.unknown-namespace",
                f"config namespace {ns!r} is not {meant!r}, so this setting would be ignored; "
                f"did you mean '{meant}:{name}'?",
                key,
            )
            if meant == NAMESPACE and not (isinstance(value, dict) and "secure" in value):
                ours.setdefault(name, value)  # read it as meant: no follow-on "Field required"
    return config, ours


def _meant_namespace(ns: str, name: str) -> str | None:
    """The kit's namespace a config namespace looks like a misspelling of (case and typos), if any:
    close to it whatever the key, or — for a key the spec has — somewhat close (``flet:addons``,
    ``kit:models``; provider namespaces such as ``aws`` or ``kubernetes`` are nowhere near)."""
    best, score = None, 0.0
    for known in (NAMESPACE, SECRETS_NAMESPACE):
        ratio = difflib.SequenceMatcher(None, ns.lower(), known).ratio()
        if ns != known and ratio >= 0.75 and ratio > score:
            best, score = known, ratio
    if best is None and name in SPEC_KEYS:
        if difflib.SequenceMatcher(None, ns.lower(), NAMESPACE).ratio() >= 0.5:
            best = NAMESPACE
    return best


def secret_in_spec_message(name: str) -> str:
    """Why a secret ``fleetkit:<name>`` is refused, and where it belongs (the value is never shown)."""
    return (
        f"a secret is never a spec setting: every '{NAMESPACE}:' key is one; keep credentials under "
        f"'{SECRETS_NAMESPACE}:' (`pulumi config rm {NAMESPACE}:{name}` then `pulumi config set --secret "
        f"{SECRETS_NAMESPACE}:{name} …`) and name them in kubeconfig_secret / secret_config"
    )
