"""Loading and validating the fleet: stack files, the shared fleet file, and CLI overrides.

Precedence (lowest to highest), each level merged key by key over the one below:

1. field defaults of the typed models (documented on each field);
2. ``stacks/fleet.yaml`` under ``fleetkit:`` — shared definitions every stack inherits;
3. the stack file ``stacks/Pulumi.<stack>.yaml`` — its ``fleetkit:<key>`` config values;
4. ``--set path=value`` flags of the CLI (e.g. ``--set models.llama-3-8b.replicas.max=6``).

Mappings merge recursively; any other value (scalar, list) replaces the lower one. Models are a
catalogue in the fleet file: a stack deploys exactly the models its own ``fleetkit:models`` names, each
merged over the fleet definition of the same key. A trust-root stack inherits only ``mesh``.

Validation happens in three passes and reports every problem at once, each with the file that set
the value, its path in that document, the rule and the bad value: (1) YAML and document shape,
(2) the typed models, (3) references across the stack and the fleet.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from fleetkit import catalog
from fleetkit.errors import MISSING, Problem, ProblemCollector, SpecError, format_path
from fleetkit.infra_checks import check_infra
from fleetkit.model_checks import check_models
from fleetkit.node_cache import check_cache_fit
from fleetkit.spec import RegionStackSpec, StackSpec, TrustRootStackSpec
from fleetkit.yamlio import load_yaml_file
from policies.context import LocalModel, RenderContext, ServiceInfo, Variant
from policies.merge import deep_merge

NAMESPACE = "fleetkit"
FLEET_FILE = "fleet.yaml"
STACK_GLOB = "Pulumi.*.yaml"
_ADAPTER: TypeAdapter[Any] = TypeAdapter(StackSpec)

Source = tuple[str, str]  # (display file, path prefix style)


@dataclass
class LoadedStack:
    name: str
    file: str
    spec: RegionStackSpec | TrustRootStackSpec
    #: every config key of the stack file (incl. provider keys such as ``aws:region``), as written
    config: dict[str, Any]
    origin: dict[tuple[Any, ...], Source] = field(default_factory=dict, repr=False)

    @property
    def is_region(self) -> bool:
        return isinstance(self.spec, RegionStackSpec)


@dataclass
class Fleet:
    root: Path
    stacks: dict[str, LoadedStack]

    def region_stacks(self) -> dict[str, LoadedStack]:
        return {k: v for k, v in self.stacks.items() if v.is_region}

    def services(self) -> dict[str, ServiceInfo]:
        return fleet_services(self)

    def context_for(self, stack: str) -> RenderContext:
        return render_context(self, stack)


# --------------------------------------------------------------------------- provenance
def _record(origin: dict[tuple[Any, ...], Source], prefix: tuple[Any, ...], value: Any, source: Source) -> None:
    origin[prefix] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _record(origin, (*prefix, k), v, source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _record(origin, (*prefix, i), v, source)


def _locate(origin: dict[tuple[Any, ...], Source], loc: tuple[Any, ...], default: Source) -> tuple[str, str]:
    """(file, displayed path) for a location in the merged document."""
    for n in range(len(loc), -1, -1):
        src = origin.get(tuple(loc[:n]))
        if src is not None:
            return src[0], _display(src[1], loc)
    return default[0], _display(default[1], loc)


def _display(style: str, loc: tuple[Any, ...]) -> str:
    rest = format_path(loc) if loc else ""
    if style == "stack":
        return f"{NAMESPACE}:{rest}" if loc else "config"
    if style == "fleet":
        return f"{NAMESPACE}.{rest}" if loc else NAMESPACE
    return rest or "(document)"


# --------------------------------------------------------------------------- reading
def stack_names(stacks_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob(STACK_GLOB))


def _read_fleet_file(stacks_dir: Path, rel: str, col: ProblemCollector) -> dict[str, Any]:
    path = stacks_dir / FLEET_FILE
    if not path.exists():
        return {}
    doc, problems = load_yaml_file(path, rel)
    if problems:
        col.extend(problems)
        return {}
    if not isinstance(doc, dict) or set(doc) != {NAMESPACE} or not isinstance(doc[NAMESPACE], dict):
        col.add(rel, "(document)", "fleet.shape", f"the fleet file must hold one mapping under '{NAMESPACE}:'",
                sorted(doc) if isinstance(doc, dict) else type(doc).__name__)
        return {}
    return doc[NAMESPACE]


def _read_stack_file(path: Path, rel: str, col: ProblemCollector) -> tuple[dict[str, Any], dict[str, Any]] | None:
    doc, problems = load_yaml_file(path, rel)
    if problems:
        col.extend(problems)
        return None
    if not isinstance(doc, dict):
        col.add(rel, "(document)", "stack.shape", "a stack file must be a mapping with a 'config:' key",
                type(doc).__name__)
        return None
    allowed = {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}
    for key in sorted(set(doc) - allowed, key=str):
        col.add(rel, str(key), "stack.unknown-key", f"not a Pulumi stack file key (allowed: {', '.join(sorted(allowed))})",
                key)
    config = doc.get("config")
    if not isinstance(config, dict):
        col.add(rel, "config", "stack.shape", "'config:' must be a mapping of 'namespace:key' settings",
                MISSING if config is None else config)
        return None
    ours: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or ":" not in key:
            col.add(rel, f"config.{key}", "stack.config-key", "config keys are written 'namespace:key'", key)
            continue
        ns, _, name = key.partition(":")
        if ns == NAMESPACE:
            ours[name] = value
    return config, ours


def _parse_override(item: str, col: ProblemCollector) -> tuple[tuple[str, ...], Any] | None:
    if "=" not in item:
        col.add("--set", item, "cli.set-syntax", "write --set path.to.key=value", item)
        return None
    path, _, raw = item.partition("=")
    parts = tuple(p for p in path.strip().split(".") if p)
    if not parts:
        col.add("--set", item, "cli.set-syntax", "the path before '=' is empty", item)
        return None
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def _set_path(doc: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    cur = doc
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


# --------------------------------------------------------------------------- one stack
def _compose(name: str, rel: str, fleet_doc: dict[str, Any], fleet_rel: str, ours: dict[str, Any],
             overrides: list[tuple[tuple[str, ...], Any]], col: ProblemCollector, override_label: str = "--set"
             ) -> tuple[dict[str, Any], dict[tuple[Any, ...], Source]]:
    origin: dict[tuple[Any, ...], Source] = {}
    fleet_src: Source = (fleet_rel, "fleet")
    stack_src: Source = (rel, "stack")
    role = ours.get("role", "region")
    inherited = copy.deepcopy(fleet_doc)
    if role == "trust-root":
        inherited = {k: v for k, v in inherited.items() if k in ("mesh", "ca")}
    fleet_models = inherited.pop("models", None)
    if fleet_models is not None and not isinstance(fleet_models, dict):
        col.add(fleet_rel, "fleetkit.models", "fleet.shape", "models must be a mapping of name -> model", fleet_models)
        fleet_models = None
    _record(origin, (), inherited, fleet_src)
    merged = copy.deepcopy(inherited)
    stack_part = copy.deepcopy(ours)
    stack_models = stack_part.pop("models", None)
    for k, v in stack_part.items():
        _record(origin, (k,), v, stack_src)
    merged = deep_merge(merged, stack_part)
    if role != "trust-root" and (stack_models is not None or fleet_models):
        if stack_models is None:
            stack_models = {}
        if not isinstance(stack_models, dict):
            col.add(rel, "fleetkit:models", "stack.shape", "models must be a mapping of name -> settings", stack_models)
            stack_models = {}
        models: dict[str, Any] = {}
        origin[("models",)] = stack_src
        for mname, mval in stack_models.items():
            base = (fleet_models or {}).get(mname, {})
            if base:
                _record(origin, ("models", mname), base, fleet_src)
            else:
                origin[("models", mname)] = stack_src
            if mval is None:
                mval = {}
            if isinstance(mval, dict) and isinstance(base, dict):
                for k, v in mval.items():
                    _record(origin, ("models", mname, k), v, stack_src)
                models[mname] = deep_merge(copy.deepcopy(base), mval)
            else:
                _record(origin, ("models", mname), mval, stack_src)
                models[mname] = mval
        merged["models"] = models
    for parts, value in overrides:
        _set_path(merged, parts, value)
        _record(origin, parts, value, (override_label, "cli"))
    merged.setdefault("role", "region")
    return merged, origin


def _validate(merged: dict[str, Any], origin: dict[tuple[Any, ...], Source], rel: str,
              col: ProblemCollector) -> RegionStackSpec | TrustRootStackSpec | None:
    try:
        return _ADAPTER.validate_python(merged)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            # drop the discriminator tag pydantic inserts ('region' / 'trust-root')
            if loc and loc[0] in ("region", "trust-root"):
                loc = loc[1:]
            file, path = _locate(origin, loc, (rel, "stack"))
            rule = f"spec.{err['type']}"
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input", MISSING) if err["type"] != "missing" else MISSING
            if isinstance(value, dict) and err["type"] not in ("extra_forbidden",):
                value = MISSING if len(str(value)) > 120 else value
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}" + _did_you_mean(loc, merged)
            col.add(file, path, rule, msg, value)
        return None


def _did_you_mean(loc: tuple[Any, ...], merged: dict[str, Any]) -> str:
    import difflib

    from pydantic import BaseModel

    from fleetkit import spec as spec_mod

    # walk the model classes along the path to find the known field names at that level
    cls: Any = spec_mod.RegionStackSpec if merged.get("role", "region") == "region" else spec_mod.TrustRootStackSpec
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        fields = getattr(cls, "model_fields", {})
        if part in fields:
            cls = _inner_model(fields[part].annotation)
        # dict keys (model names) keep the value type
    if cls is None or not hasattr(cls, "model_fields"):
        return ""
    assert issubclass(cls, BaseModel)
    close = difflib.get_close_matches(str(loc[-1]), list(cls.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(cls.model_fields)}"


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- the fleet
def load_fleet(root: Path, only: list[str] | None = None, overrides: list[str] | None = None,
               override_label: str = "--set") -> Fleet:
    """Load and validate every stack under ``root/stacks``; raise :class:`SpecError` with all problems.

    ``only`` names stacks the caller cares about (others are still loaded for fleet-wide context,
    and their problems still count: the fleet is validated as a whole). ``overrides`` are ``--set``
    items applied to the stacks in ``only`` (or to every stack when ``only`` is empty).
    """
    stacks_dir = root / "stacks"
    col = ProblemCollector()
    if not stacks_dir.is_dir():
        raise SpecError([Problem("stacks/", "", "fleet.no-stacks", "no stacks/ directory in the project")])
    names = stack_names(stacks_dir)
    if not names:
        raise SpecError([Problem("stacks/", "", "fleet.no-stacks", "no Pulumi.<stack>.yaml files in stacks/")])
    for n in only or []:
        if n not in names:
            col.add("--stack", n, "cli.unknown-stack", f"no stack file stacks/Pulumi.{n}.yaml (stacks: {', '.join(names)})", n)
    parsed_overrides = [p for p in (_parse_override(o, col) for o in overrides or []) if p is not None]
    fleet_rel = f"stacks/{FLEET_FILE}"
    fleet_doc = _read_fleet_file(stacks_dir, fleet_rel, col)
    loaded: dict[str, LoadedStack] = {}
    for name in names:
        rel = f"stacks/Pulumi.{name}.yaml"
        read = _read_stack_file(stacks_dir / f"Pulumi.{name}.yaml", rel, col)
        if read is None:
            continue
        config, ours = read
        applies = not only or name in only
        merged, origin = _compose(name, rel, fleet_doc, fleet_rel, ours, parsed_overrides if applies else [], col,
                                  override_label)
        spec = _validate(merged, origin, rel, col)
        if spec is not None:
            loaded[name] = LoadedStack(name, rel, spec, config, origin)
    col.raise_if_any()
    fleet = Fleet(root, loaded)
    col.extend(check_fleet(fleet))
    col.raise_if_any()
    return fleet


def _problem(stack: LoadedStack, loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> Problem:
    file, path = _locate(stack.origin, loc, (stack.file, "stack"))
    return Problem(file, path, rule, message, value)


def gpu_class_of(stack: RegionStackSpec, pool: str) -> str:
    p = stack.node_pools.get(pool)
    if p is None:
        return "unknown"
    entry = catalog.lookup(stack.cloud, p.instance_type)
    return entry.gpu_class if entry else "unknown"


def fleet_services(fleet: Fleet) -> dict[str, ServiceInfo]:
    """Every model service of the fleet with its variants (version x GPU class x stack)."""
    variants: dict[str, list[Variant]] = {}
    served: dict[str, str] = {}
    for sname, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        for mname, m in sorted(spec.models.items()):
            service = m.service or mname
            served.setdefault(service, m.served_name)
            variants.setdefault(service, []).append(
                Variant(model=mname, version=m.version, gpu_class=gpu_class_of(spec, m.pool or ""), stack=sname,
                        min_replicas=m.replicas.min, max_replicas=m.replicas.max)
            )
    return {s: ServiceInfo(s, served[s], tuple(v)) for s, v in sorted(variants.items())}


def render_context(fleet: Fleet, stack: str) -> RenderContext:
    st = fleet.stacks[stack]
    spec = st.spec
    assert isinstance(spec, RegionStackSpec)
    return RenderContext(
        namespace=spec.namespace,
        services=fleet_services(fleet),
        stack=stack,
        local_services=frozenset(m.service or k for k, m in spec.models.items()),
        local_models=tuple(
            LocalModel(model=k, service=m.service or k, served_name=m.served_name,
                       min_replicas=m.replicas.min, max_replicas=m.replicas.max, version=m.version)
            for k, m in sorted(spec.models.items())
        ),
        trust_domain=spec.mesh.trust_domain,
        fleet_regions=frozenset(s.spec.region for s in fleet.region_stacks().values()
                                if isinstance(s.spec, RegionStackSpec)),
    )


def check_stack(fleet: Fleet, name: str) -> list[Problem]:
    """Reference checks inside one region stack (pools, instance types, tiers, policies)."""
    st = fleet.stacks[name]
    spec = st.spec
    if not isinstance(spec, RegionStackSpec):
        return []
    out: list[Problem] = []
    for pname, pool in sorted(spec.node_pools.items()):
        entry = catalog.lookup(spec.cloud, pool.instance_type)
        if entry is None:
            sugg = catalog.suggest(spec.cloud, pool.instance_type)
            hint = f"; did you mean {', '.join(sugg)}?" if sugg else ""
            out.append(_problem(st, ("node_pools", pname, "instance_type"), "pool.unknown-instance-type",
                                f"{pool.instance_type!r} is not a GPU instance type of the {spec.cloud} catalog{hint}",
                                pool.instance_type))
    tiers = spec.policies.qos.tiers if spec.policies.qos else {}
    for mname, m in sorted(spec.models.items()):
        for reserved in {mname, m.service or mname} & {"vllm"}:
            where = ("models", mname, "service") if m.service == "vllm" else ("models", mname)
            out.append(_problem(st, where, "model.reserved-name",
                                "a model service must not be named 'vllm' (its Service env VLLM_PORT breaks vLLM)",
                                reserved))
        if m.pool is None:
            out.append(_problem(st, ("models", mname, "pool"), "model.no-pool",
                                f"model {mname!r} is deployed in this stack but names no GPU pool "
                                f"(pools: {', '.join(sorted(spec.node_pools))})"))
        elif m.pool not in spec.node_pools:
            out.append(_problem(st, ("models", mname, "pool"), "ref.unknown-pool",
                                f"no node pool {m.pool!r} in this stack (pools: {', '.join(sorted(spec.node_pools))})",
                                m.pool))
        if m.tier is not None and m.tier not in tiers:
            out.append(_problem(st, ("models", mname, "tier"), "ref.unknown-tier",
                                f"no QoS tier {m.tier!r} (tiers: {', '.join(sorted(tiers)) or 'none configured'})",
                                m.tier))
    # versions of one service must be unique per GPU class inside a stack (they are one Deployment each)
    seen: dict[tuple[str, str, str], str] = {}
    for mname, m in sorted(spec.models.items()):
        key = (m.service or mname, m.version, m.pool or "")
        if key in seen:
            out.append(_problem(st, ("models", mname, "version"), "model.duplicate-variant",
                                f"models {seen[key]!r} and {mname!r} are both version {m.version!r} of service "
                                f"{key[0]!r} on pool {m.pool!r}", m.version))
        seen[key] = mname
    ctx = fleet.context_for(name)
    for issue in spec.policies.check(ctx):
        out.append(_problem(st, ("policies", *issue.path), issue.rule, issue.message, issue.value))
    out.extend(_capacity_problems(st))
    out.extend(check_infra(st))
    out.extend(_problem(st, i.path, i.rule, i.message, i.value) for i in check_models(spec))
    out.extend(_problem(st, i.path, i.rule, i.message, i.value) for i in check_cache_fit(spec))
    return out


def _capacity_problems(st: LoadedStack) -> list[Problem]:
    from fleetkit import capacity

    spec = st.spec
    assert isinstance(spec, RegionStackSpec)
    out: list[Problem] = []
    for mname, m in sorted(spec.models.items()):
        pool = spec.node_pools.get(m.pool or "")
        entry = catalog.lookup(spec.cloud, pool.instance_type) if pool else None
        if entry is None:
            continue
        size = capacity.ModelSize(params_billion=m.params_billion, dtype=m.dtype, weights_bytes=m.weights_bytes,
                                  kv_cache_gib=m.kv_cache_gib, max_model_len=m.max_model_len)
        file, _ = _locate(st.origin, ("models", mname), (st.file, "stack"))
        for p in capacity.check_fit(file=file, model=mname, pool=m.pool or "", cloud=spec.cloud, instance=entry,
                                    tensor_parallel=m.tensor_parallel, size=size,
                                    gpu_memory_utilization=m.gpu_memory_utilization):
            # re-anchor the path on the file that set the offending field
            loc = tuple(x for x in p.path.split(".") if x)
            f2, path = _locate(st.origin, loc, (st.file, "stack"))
            out.append(Problem(f2, path, p.rule, p.message, p.value))
    return out


def check_fleet(fleet: Fleet) -> list[Problem]:
    """Per-stack reference checks plus fleet-wide rules (mesh identity, unique cluster names)."""
    out: list[Problem] = []
    for name in sorted(fleet.stacks):
        out.extend(check_stack(fleet, name))
    regions = fleet.region_stacks()
    mesh_ids: dict[str, list[str]] = {}
    for name, st in sorted(fleet.stacks.items()):
        mesh_ids.setdefault(st.spec.mesh.mesh_id, []).append(name)
    if len(mesh_ids) > 1:
        majority = max(mesh_ids, key=lambda k: (len(mesh_ids[k]), k))
        for mid, names in sorted(mesh_ids.items()):
            if mid == majority:
                continue
            for n in names:
                out.append(_problem(fleet.stacks[n], ("mesh", "mesh_id"), "mesh.mesh-id-mismatch",
                                    f"every cluster of one mesh needs the same meshID; the fleet uses {majority!r}", mid))
    cluster_names: dict[str, list[str]] = {}
    for name, st in sorted(regions.items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        if spec.mesh.cluster_name is None:
            out.append(_problem(st, ("mesh", "cluster_name"), "mesh.cluster-name-missing",
                                "each region stack needs a unique mesh cluster_name"))
        else:
            cluster_names.setdefault(spec.mesh.cluster_name, []).append(name)
        if spec.mesh.network is None:
            out.append(_problem(st, ("mesh", "network"), "mesh.network-missing",
                                "each region stack needs the name of its mesh network"))
    for cname, names in sorted(cluster_names.items()):
        if len(names) > 1:
            for n in names:
                out.append(_problem(fleet.stacks[n], ("mesh", "cluster_name"), "mesh.duplicate-cluster-name",
                                    f"cluster_name must be unique across the fleet; also used by "
                                    f"{', '.join(x for x in names if x != n)}", cname))
    from fleetkit.mesh_checks import check_mesh  # imports this module, so not at the top
    out.extend(check_mesh(fleet))
    return out
