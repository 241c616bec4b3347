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

1. File names, YAML and document shape (:mod:`fleetkit.stack_files`). A broken fleet file stops here:
   every stack inherits from it, so the stacks' typed errors would all be follow-ons of the one mistake.
   A stack file that cannot be read, or whose models are not known, keeps the policy reference checks
   from reporting follow-ons of it.
2. ``--set`` items: their syntax, where they apply, and paths that do not fit the document.
3. The typed models, per stack (:mod:`fleetkit.spec_errors`). An unknown key with a close known name
   hides the "missing" error of that name (one typo, one problem); a cross-field rule is reported at
   the field whose writer broke it.
4. References (:mod:`fleetkit.fleet_checks`), for every stack that validated — a type error in one
   file does not hide reference errors in the others; rules comparing stacks wait for all of them.
   A stack that did not validate still gets its region and instance types judged as written
   (``check_unvalidated``): a type error in the fleet file fails every stack, and must not hide them.

The same mistake found in several stacks (a fleet-file value, a ``--set`` item) is reported once.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

from fleetkit import catalog
from fleetkit.errors import Issue, ProblemCollector, SpecError
from fleetkit.fleet import NAMESPACE, Fleet, LoadedStack, Provenance, Source
from fleetkit.fleet_checks import check_fleet, check_unvalidated
from fleetkit.overrides import Override, OverridePathError, parse_override, set_path
from fleetkit.spec import (
    INHERITED_SECTIONS,
    SECRETS_NAMESPACE,
    SPEC_CLASSES,
    RegionStackSpec,
)
from fleetkit.spec_errors import validate_stack
from fleetkit.stack_files import (
    FLEET_FILE,
    SPEC_KEYS,
    misnamed_stack_files,
    read_fleet_file,
    read_stack_file,
    stack_names,
)
from policies.context import UNKNOWN_GPU_CLASS, Variant
from policies.merge import deep_merge

__all__ = ["FLEET_FILE", "NAMESPACE", "Fleet", "LoadedStack", "load_fleet", "stack_names"]


# --------------------------------------------------------------------------- overrides
def _applies(ov: Override, role: str, deploys: set[str], deployed_anywhere: set[str]) -> bool:
    """Does ``ov`` apply to a stack of this role that deploys ``deploys``? (see the module docstring)"""
    if ov.parts[0] not in SPEC_CLASSES.get(role, RegionStackSpec).model_fields:
        return False
    if ov.parts[0] == "models" and len(ov.parts) > 1 and role == "region":
        return ov.parts[1] in deploys or ov.parts[1] not in deployed_anywhere
    return True


def _unapplied(ov: Override, label: str, roles: set[str]) -> Issue:
    """The problem of an override that applies to none of the selected stacks (of these ``roles``)."""
    first = str(ov.parts[0])
    known = sorted({f for cls in SPEC_CLASSES.values() for f in cls.model_fields})
    ns, _, bare = first.partition(":")
    if bare and ns.lower() in (NAMESPACE, SECRETS_NAMESPACE):
        hint = (
            f"; --set paths have no '{ns}:' prefix: write {bare!r}"
            if ns.lower() == NAMESPACE
            else f"; credentials are never set on the command line: `pulumi config set --secret {first} …`"
        )
    elif first in known:
        # a real key, but only of other kinds of stack (models.… with only a trust root selected)
        kinds = " and ".join(r for r, cls in SPEC_CLASSES.items() if first in cls.model_fields)
        takes = {r: ", ".join(SPEC_CLASSES[r].model_fields) for r in sorted(roles)}
        hint = (
            f"; only {kinds} stacks have it ("
            + "; ".join(f"a {r} stack takes {keys}" for r, keys in takes.items())
            + ")"
        )
    else:
        close = difflib.get_close_matches(first, known, n=1) or difflib.get_close_matches(
            first.lower(), known, n=1
        )
        hint = f"; did you mean {close[0]!r}?" if close else f" (keys: {', '.join(known)})"
    return Issue.at(
        label,
        tuple(ov.parts),
        "cli.set-unknown-key",
        f"{first!r} is not a setting of the selected stacks{hint}",
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
            if k in wanted or (k not in SPEC_KEYS and difflib.get_close_matches(str(k), wanted, n=1))
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
        merged["models"] = _compose_models(prov, stack_models, fleet_models or {}, fleet_src)
    _apply_overrides(merged, prov, overrides, cli_src, col)
    merged.setdefault("role", "region")
    return merged, prov


def _compose_models(
    prov: Provenance, stack_models: dict[str, Any], fleet_models: dict[str, Any], fleet_src: Source
) -> dict[str, Any]:
    """The models a stack deploys: each of its own entries merged over the fleet's definition."""
    stack_src = prov.stack_source
    models: dict[str, Any] = {}
    prov.mark(("models",), stack_src)
    for mname, mval in stack_models.items():
        base = fleet_models.get(mname, {})
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
    return models


def _apply_overrides(
    merged: dict[str, Any],
    prov: Provenance,
    overrides: list[Override],
    cli_src: Source,
    col: ProblemCollector,
) -> None:
    """Set each override's value in the composed document; a path that does not fit is the flag's mistake."""
    for ov in overrides:
        try:
            path, created = set_path(merged, ov.parts, copy.deepcopy(ov.value))
        except OverridePathError as exc:
            col.problems.append(Issue.at(cli_src.file, exc.at, exc.rule, exc.message, exc.value))
            continue
        for where in created:
            prov.mark(where, cli_src)  # a key only --set wrote: its mistakes are the flag's
        prov.record(path, ov.value, cli_src)


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
def _stack_files(stacks_dir: Path, only: list[str], col: ProblemCollector) -> tuple[list[str], list[Path]]:
    """The stack names, and files named like stack files that are not read (both checked)."""
    names = stack_names(stacks_dir)
    misnamed = misnamed_stack_files(stacks_dir)
    for other in misnamed:
        col.add(
            f"stacks/{other.name}",
            "",
            "stack.file-name",
            "stack files are read only as stacks/Pulumi.<stack>.yaml (the name after 'Pulumi.' is the stack); "
            "rename it, or this stack is left out of the fleet",
            other.name,
        )
    if not names and misnamed:
        col.raise_if_any()
    if not names:
        raise SpecError(
            [Issue.at("stacks/", "", "fleet.no-stacks", "no Pulumi.<stack>.yaml files in stacks/")]
        )
    for n in only:
        if n not in names:
            col.add(
                "--stack",
                n,
                "cli.unknown-stack",
                f"no stack file stacks/Pulumi.{n}.yaml (stacks: {', '.join(names)})",
                n,
            )
    return names, misnamed


def _route_overrides(
    parsed: list[Override],
    read: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    only: list[str] | None,
    col: ProblemCollector,
    label: str,
) -> dict[str, list[Override]]:
    """The overrides each stack takes (see the module docstring); one that applies nowhere is a mistake."""
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
            roles = {str(read[n][1].get("role", "region")) for n in selected}
            col.problems.append(_unapplied(ov, label, roles))
    return applied


def _null_models(rel: str, ours: dict[str, Any], col: ProblemCollector) -> bool:
    """``fleetkit:models:`` with nothing under it (entries commented out, a lost indent): reported, and
    read as no model; True then, since the models the stack meant to deploy are not known."""
    if "models" not in ours or ours["models"] is not None or ours.get("role", "region") != "region":
        return False
    col.add(
        rel,
        f"{NAMESPACE}:models",
        "stack.shape",
        "models is empty: list the models this stack deploys (name: {pool: …}), or write {} to deploy none",
        None,
    )
    ours["models"] = {}
    return True


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
    names, misnamed = _stack_files(stacks_dir, only or [], col)
    parsed: list[Override] = []
    for item in overrides or []:
        got = parse_override(item)
        if isinstance(got, Override):
            parsed.append(got)
        else:
            col.add(override_label, got.path, got.rule, got.message, got.value)
    fleet_rel = f"stacks/{FLEET_FILE}"
    fleet_doc = read_fleet_file(stacks_dir, fleet_rel, col)
    read: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name in names:
        got_file = read_stack_file(stacks_dir / f"Pulumi.{name}.yaml", f"stacks/Pulumi.{name}.yaml", col)
        if got_file is not None:
            read[name] = got_file
    if fleet_doc is None:
        col.raise_if_any()  # every stack inherits the broken fleet file: its problems are the root cause
    assert fleet_doc is not None
    applied = _route_overrides(parsed, read, only, col, override_label)
    loaded: dict[str, LoadedStack] = {}
    models_unknown = False
    invalid: set[str] = set(names) - set(read)
    unverified: list[tuple[str, str, Variant]] = []
    for name, (config, ours) in read.items():
        rel = f"stacks/Pulumi.{name}.yaml"
        models_unknown |= _null_models(rel, ours, col)
        merged, prov = _compose(rel, fleet_doc, fleet_rel, ours, applied[name], col, override_label)
        spec = validate_stack(merged, prov, col)
        if spec is None:
            invalid.add(name)
            unverified.extend(_written_variants(name, merged))
            # models under a role that has none (a wrong role) were not composed: they are not known
            models_unknown |= merged.get("role") != "region" and "models" in ours
            # a type error (often fleet.yaml's) does not hide this file's unknown region or instance type
            col.extend(prov.locate(i) for i in check_unvalidated(merged))
        else:
            loaded[name] = LoadedStack(name, rel, spec, config, prov, tuple(o.item for o in applied[name]))
    fleet = Fleet(
        root,
        loaded,
        frozenset(invalid),
        tuple(unverified),
        models_unknown=models_unknown or len(read) < len(names) or bool(misnamed),
    )
    col.extend(check_fleet(fleet))
    col.problems = _once(col.problems)
    col.raise_if_any()
    return fleet


def _once(problems: list[Issue]) -> list[Issue]:
    """One problem per file, path and rule: a fleet-file value or a ``--set`` item checked in every stack
    that inherits it is one mistake (the first stack's wording is kept)."""
    seen: set[tuple[str, str, str]] = set()
    out: list[Issue] = []
    for p in problems:
        key = (p.file, p.where, p.rule)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
