"""Loading and validating the fleet: stack files, the shared fleet file, and CLI overrides.

Precedence (lowest to highest), each level merged key by key over the one below:

1. field defaults of the typed models (documented on each field);
2. ``stacks/fleet.yaml`` under ``fleetkit:`` — shared definitions every stack inherits;
3. the stack file ``stacks/Pulumi.<stack>.yaml`` — its ``fleetkit:<key>`` config values;
4. ``--set path=value`` flags of the CLI (e.g. ``--set models.llama-3-8b.replicas.max=6``).

Mappings merge recursively; any other value (scalar, list) replaces the lower one. Models are a
catalogue in the fleet file: a stack deploys exactly the models its own ``fleetkit:models`` names, each
merged over the fleet definition of the same key. A trust-root stack inherits only ``mesh`` and ``ca``,
the peering stack only ``mesh``.

An override applies to the selected stacks whose spec has its first key (``models.…`` never reaches a
trust-root stack); ``models.<name>.…`` applies to the stacks that deploy ``<name>``, or — for a model
no selected stack deploys — creates it in every selected region stack. An override that applies
nowhere is itself a mistake (``cli.set-unknown-key``).

Validation reports every problem at once, each with the file (or flag) that set the value, its path
in that document, the rule and the bad value, root causes first:

1. YAML and document shape. A broken fleet file stops here: every stack inherits from it, so the
   stacks' typed errors would all be follow-ons of the one mistake.
2. The typed models, per stack. An unknown key with a close known name hides the "missing" error of
   that name (one typo, one problem).
3. References (:mod:`fleetkit.fleet_checks`), for every stack that validated — a type error in one
   file does not hide reference errors in the others; rules comparing stacks wait for all of them.
   A stack that did not validate still gets its region and instance types judged as written
   (``check_unvalidated``): a type error in the fleet file fails every stack, and must not hide them.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from fleetkit import catalog
from fleetkit.errors import MISSING, SECRET_VALUE, Issue, ProblemCollector, SpecError
from fleetkit.fleet import NAMESPACE, Fleet, LoadedStack, Provenance, Source
from fleetkit.fleet_checks import check_fleet, check_unvalidated
from fleetkit.overrides import Override, parse_override, set_path
from fleetkit.spec import (
    INHERITED_SECTIONS,
    SECRETS_NAMESPACE,
    PeeringStackSpec,
    RegionStackSpec,
    StackSpec,
    TrustRootStackSpec,
)
from fleetkit.yamlio import load_yaml_file
from policies.context import UNKNOWN_GPU_CLASS, Variant
from policies.merge import deep_merge

__all__ = ["FLEET_FILE", "NAMESPACE", "Fleet", "LoadedStack", "load_fleet", "stack_names"]

FLEET_FILE = "fleet.yaml"
STACK_GLOB = "Pulumi.*.yaml"
STACK_FILE_KEYS = frozenset({"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"})
_ADAPTER: TypeAdapter[Any] = TypeAdapter(StackSpec)
_SPEC_CLASS: dict[str, type[BaseModel]] = {
    "region": RegionStackSpec,
    "trust-root": TrustRootStackSpec,
    "peering": PeeringStackSpec,
}
#: every top-level key some kind of stack spec has
_SPEC_KEYS = frozenset(f for cls in _SPEC_CLASS.values() for f in cls.model_fields)


# --------------------------------------------------------------------------- reading
def stack_names(stacks_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob(STACK_GLOB))


def _read_fleet_file(stacks_dir: Path, rel: str, col: ProblemCollector) -> dict[str, Any] | None:
    """The mapping under ``fleetkit:`` ({} without a fleet file); None when the file is unusable."""
    path = stacks_dir / FLEET_FILE
    if not path.exists():
        others = sorted(p.name for p in stacks_dir.iterdir() if p.is_file() and not p.match(STACK_GLOB))
        misnamed = difflib.get_close_matches(FLEET_FILE, others, n=1, cutoff=0.8)
        if misnamed:
            # every stack would miss what it inherits: the name is the one mistake
            col.add(
                f"stacks/{misnamed[0]}",
                "(document)",
                "fleet.misnamed",
                f"the fleet file is read from {rel} only; rename this file to {FLEET_FILE}",
                misnamed[0],
            )
            return None
        return {}
    doc, problems = load_yaml_file(path, rel)
    if problems:
        col.extend(problems)
        return None
    if not isinstance(doc, dict) or set(doc) != {NAMESPACE} or not isinstance(doc[NAMESPACE], dict):
        keys = sorted(map(str, doc)) if isinstance(doc, dict) else []
        close = difflib.get_close_matches(NAMESPACE, keys, n=1) if NAMESPACE not in keys else []
        hint = f"; {close[0]!r} looks like a misspelling of {NAMESPACE!r}" if close else ""
        col.add(
            rel,
            "(document)",
            "fleet.shape",
            f"the fleet file must hold one mapping under '{NAMESPACE}:'{hint}",
            keys if isinstance(doc, dict) else type(doc).__name__,
        )
        return None
    return doc[NAMESPACE]


def _read_stack_file(
    path: Path, rel: str, col: ProblemCollector
) -> tuple[dict[str, Any], dict[str, Any]] | None:
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
            type(doc).__name__,
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
    if not isinstance(config, dict):
        col.add(
            rel,
            "config",
            "stack.shape",
            "'config:' must be a mapping of 'namespace:key' settings",
            MISSING if config is None else config,
        )
        return None
    ours: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or ":" not in key:
            col.add(rel, ("config", key), "stack.config-key", "config keys are written 'namespace:key'", key)
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
        elif ns != SECRETS_NAMESPACE and _looks_like_ours(ns, name):
            col.add(
                rel,
                key,
                "stack.unknown-namespace",
                f"config namespace {ns!r} is not {NAMESPACE!r}, so this setting would be ignored; "
                f"did you mean '{NAMESPACE}:{name}'?",
                key,
            )
    return config, ours


def _looks_like_ours(ns: str, name: str) -> bool:
    """A misspelt ``fleetkit`` namespace: close to it, or — for a key the spec has — somewhat close
    (``flet:addons``; provider namespaces such as ``aws`` or ``kubernetes`` are nowhere near)."""
    ratio = difflib.SequenceMatcher(None, ns, NAMESPACE).ratio()
    return ratio >= 0.75 or (name in _SPEC_KEYS and ratio >= 0.5)


def secret_in_spec_message(name: str) -> str:
    """Why a secret ``fleetkit:<name>`` is refused, and where it belongs (the value is never shown)."""
    return (
        f"a secret is never a spec setting: every '{NAMESPACE}:' key is one; keep credentials under "
        f"'{SECRETS_NAMESPACE}:' (`pulumi config rm {NAMESPACE}:{name}` then `pulumi config set --secret "
        f"{SECRETS_NAMESPACE}:{name} …`) and name them in kubeconfig_secret / secret_config"
    )


# --------------------------------------------------------------------------- overrides
def _applies(ov: Override, role: str, deploys: set[str], deployed_anywhere: set[str]) -> bool:
    """Does ``ov`` apply to a stack of this role that deploys ``deploys``? (see the module docstring)"""
    if ov.parts[0] not in _SPEC_CLASS.get(role, RegionStackSpec).model_fields:
        return False
    if ov.parts[0] == "models" and len(ov.parts) > 1 and role == "region":
        return ov.parts[1] in deploys or ov.parts[1] not in deployed_anywhere
    return True


def _unapplied(ov: Override, label: str, selected: list[str]) -> Issue:
    known = sorted(_SPEC_KEYS)
    close = difflib.get_close_matches(ov.parts[0], known, n=1)
    if ov.parts[0] in _SPEC_KEYS:
        # a real key, but only of other kinds of stack (models.… with only a trust-root selected)
        kinds = " and ".join(role for role, cls in _SPEC_CLASS.items() if ov.parts[0] in cls.model_fields)
        hint = f" ({', '.join(selected)}); only {kinds} stacks have it"
    else:
        hint = f"; did you mean {close[0]!r}?" if close else f" (keys: {', '.join(known)})"
    return Issue.at(
        label,
        ".".join(ov.parts),
        "cli.set-unknown-key",
        f"{ov.parts[0]!r} is not a setting of the selected stacks{hint}",
        ov.item,
    )


# --------------------------------------------------------------------------- one stack
def _compose(
    rel: str,
    fleet_doc: dict[str, Any],
    fleet_rel: str,
    ours: dict[str, Any],
    overrides: list[Override],
    col: ProblemCollector,
    label: str,
) -> tuple[dict[str, Any], Provenance]:
    stack_src, fleet_src, cli_src = Source(rel, "stack"), Source(fleet_rel, "fleet"), Source(label, "cli")
    prov = Provenance(stack_src)
    role = ours.get("role", "region")
    inherited = copy.deepcopy(fleet_doc)
    if role in INHERITED_SECTIONS:
        # a fleet key no stack knows that looks like an inherited section (`msh:`) comes along: its
        # unknown-key problem (the one every region stack reports) then hides "mesh missing" here
        wanted = INHERITED_SECTIONS[role]
        inherited = {
            k: v
            for k, v in inherited.items()
            if k in wanted or (k not in _SPEC_KEYS and difflib.get_close_matches(str(k), wanted, n=1))
        }
    fleet_models = inherited.pop("models", None)
    if fleet_models is not None and not isinstance(fleet_models, dict):
        col.add(
            fleet_rel,
            "fleetkit.models",
            "fleet.shape",
            "models must be a mapping of name -> model",
            fleet_models,
        )
        fleet_models = None
    for k, v in inherited.items():
        prov.record((k,), v, fleet_src)
    stack_part = copy.deepcopy(ours)
    stack_models = stack_part.pop("models", None)
    for k, v in stack_part.items():
        prov.record((k,), v, stack_src)
    merged = deep_merge(inherited, stack_part)
    if role not in INHERITED_SECTIONS and (stack_models is not None or fleet_models):
        if not isinstance(stack_models, dict):
            if stack_models is not None:
                col.add(
                    rel,
                    "fleetkit:models",
                    "stack.shape",
                    "models must be a mapping of name -> settings",
                    stack_models,
                )
            stack_models = {}
        models: dict[str, Any] = {}
        prov.mark(("models",), stack_src)
        for mname, mval in stack_models.items():
            base = (fleet_models or {}).get(mname, {})
            # the stack deploys the model: a value nobody set is the stack file's to add
            prov.mark(("models", mname), stack_src)
            if isinstance(base, dict):
                for k, v in base.items():
                    prov.record(("models", mname, k), v, fleet_src)
            mval = {} if mval is None else mval
            if isinstance(mval, dict) and isinstance(base, dict):
                for k, v in mval.items():
                    prov.record(("models", mname, k), v, stack_src)
                models[mname] = deep_merge(copy.deepcopy(base), mval)
            else:
                prov.record(("models", mname), mval, stack_src)
                models[mname] = mval
        merged["models"] = models
    for ov in overrides:
        for created in set_path(merged, ov.parts, copy.deepcopy(ov.value)):
            prov.mark(created, cli_src)  # a key only --set wrote: its mistakes are the flag's
        prov.record(ov.parts, ov.value, cli_src)
    merged.setdefault("role", "region")
    return merged, prov


def _validate(
    merged: dict[str, Any], prov: Provenance, col: ProblemCollector
) -> RegionStackSpec | TrustRootStackSpec | PeeringStackSpec | None:
    try:
        return _ADAPTER.validate_python(merged)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    role = merged.get("role", "region")
    found: list[tuple[tuple[Any, ...], str, str, Any]] = []
    suggested: set[tuple[Any, ...]] = set()
    for err in errors:
        loc = tuple(err["loc"])
        if loc and loc[0] in _SPEC_CLASS:  # the discriminator tag pydantic inserts
            loc = loc[1:]
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input", MISSING) if err["type"] != "missing" else MISSING
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # the role picks the spec class: pydantic reports a bad one on the whole document
            loc, value = ("role",), merged.get("role", MISSING)
        if isinstance(value, dict) and err["type"] != "extra_forbidden" and len(str(value)) > 120:
            value = MISSING
        if err["type"] == "extra_forbidden":
            fields = _fields_at(role, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
            if close:
                suggested.add((*loc[:-1], close[0]))
            msg = f"unknown key {loc[-1]!r}" + (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known keys: {', '.join(fields)}"
                if fields
                else ""
            )
        found.append((loc, f"spec.{err['type']}", msg, value))
    if ("role",) in suggested:
        # a misspelled role key: the stack was read as the default kind, so the rest is its follow-on
        found = [f for f in found if f[1] == "spec.extra_forbidden" and "'role'" in f[2]]
    for loc, rule, msg, value in found:
        if rule == "spec.missing" and any(loc[: len(s)] == s for s in suggested):
            continue  # the misspelled key reported above is the mistake
        col.problems.append(prov.locate(Issue(loc, rule, msg, value)))
    return None


def _fields_at(role: str, loc: tuple[Any, ...]) -> list[str]:
    """Known field names of the model at ``loc`` (walking the spec classes; dict keys keep the type)."""
    cls: Any = _SPEC_CLASS.get(role, RegionStackSpec)
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        fields = getattr(cls, "model_fields", {})
        if part in fields:
            cls = _inner_model(fields[part].annotation)
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _written_variants(stack: str, merged: dict[str, Any]) -> list[tuple[str, str, Variant]]:
    """The model variants a stack that did not validate declares, read as written (best effort)."""
    models, pools = merged.get("models"), merged.get("node_pools")
    cloud = merged.get("cloud")
    out: list[tuple[str, str, Variant]] = []
    for name, m in sorted(models.items()) if isinstance(models, dict) else []:
        if not isinstance(m, dict):
            continue
        pool = (
            pools.get(m.get("pool")) if isinstance(pools, dict) and isinstance(m.get("pool"), str) else None
        )
        itype = pool.get("instance_type") if isinstance(pool, dict) else None
        entry = catalog.lookup(cloud, itype) if isinstance(cloud, str) and isinstance(itype, str) else None
        replicas = m.get("replicas")
        replicas = replicas if isinstance(replicas, dict) else {}
        low, high = replicas.get("min", 1), replicas.get("max", 1)
        out.append(
            (
                str(m.get("service") or name),
                str(m.get("served_name") or name),
                Variant(
                    model=str(name),
                    version=str(m.get("version") or "v1"),
                    gpu_class=entry.gpu_class if entry else UNKNOWN_GPU_CLASS,
                    stack=stack,
                    min_replicas=low if isinstance(low, int) else 1,
                    max_replicas=high if isinstance(high, int) else 1,
                ),
            )
        )
    return out


# --------------------------------------------------------------------------- the fleet
def load_fleet(
    root: Path,
    only: list[str] | None = None,
    overrides: list[str] | None = None,
    override_label: str = "--set",
) -> Fleet:
    """Load and validate every stack under ``root/stacks``; raise :class:`SpecError` with all problems.

    ``only`` names stacks the caller cares about (others are still loaded for fleet-wide context,
    and their problems still count: the fleet is validated as a whole). ``overrides`` are ``--set``
    items applied to the stacks in ``only`` (or to every stack) where they apply; ``override_label``
    is what their problems are reported against.
    """
    stacks_dir = root / "stacks"
    col = ProblemCollector()
    if not stacks_dir.is_dir():
        raise SpecError([Issue.at("stacks/", "", "fleet.no-stacks", "no stacks/ directory in the project")])
    names = stack_names(stacks_dir)
    if not names:
        raise SpecError(
            [Issue.at("stacks/", "", "fleet.no-stacks", "no Pulumi.<stack>.yaml files in stacks/")]
        )
    for n in only or []:
        if n not in names:
            col.add(
                "--stack",
                n,
                "cli.unknown-stack",
                f"no stack file stacks/Pulumi.{n}.yaml (stacks: {', '.join(names)})",
                n,
            )
    parsed: list[Override] = []
    for item in overrides or []:
        got = parse_override(item)
        if isinstance(got, Override):
            parsed.append(got)
        else:
            col.add(override_label, got.path, got.rule, got.message, got.value)
    fleet_rel = f"stacks/{FLEET_FILE}"
    fleet_doc = _read_fleet_file(stacks_dir, fleet_rel, col)
    read: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name in names:
        got_file = _read_stack_file(stacks_dir / f"Pulumi.{name}.yaml", f"stacks/Pulumi.{name}.yaml", col)
        if got_file is not None:
            read[name] = got_file
    if fleet_doc is None:
        col.raise_if_any()  # every stack inherits the broken fleet file: its problems are the root cause
    assert fleet_doc is not None
    selected = [n for n in read if not only or n in only]
    deploys = {
        n: set(ours.get("models") or {}) if isinstance(ours.get("models"), dict) else set()
        for n, (_, ours) in read.items()
    }
    deployed_anywhere = set().union(*(deploys[n] for n in selected)) if selected else set()
    applied: dict[str, list[Override]] = {n: [] for n in read}
    for ov in parsed:
        targets = [
            n
            for n in selected
            if _applies(ov, str(read[n][1].get("role", "region")), deploys[n], deployed_anywhere)
        ]
        for n in targets:
            applied[n].append(ov)
        if selected and not targets:
            col.problems.append(_unapplied(ov, override_label, selected))
    loaded: dict[str, LoadedStack] = {}
    invalid: set[str] = set(names) - set(read)
    unverified: list[tuple[str, str, Variant]] = []
    for name, (config, ours) in read.items():
        rel = f"stacks/Pulumi.{name}.yaml"
        merged, prov = _compose(rel, fleet_doc, fleet_rel, ours, applied[name], col, override_label)
        spec = _validate(merged, prov, col)
        if spec is None:
            invalid.add(name)
            unverified.extend(_written_variants(name, merged))
            # a type error (often fleet.yaml's) does not hide this file's unknown region or instance type
            col.extend(prov.locate(i) for i in check_unvalidated(merged))
        else:
            loaded[name] = LoadedStack(name, rel, spec, config, prov, tuple(o.item for o in applied[name]))
    fleet = Fleet(root, loaded, frozenset(invalid), tuple(unverified), models_unknown=len(read) < len(names))
    col.extend(check_fleet(fleet))
    col.raise_if_any()
    return fleet
