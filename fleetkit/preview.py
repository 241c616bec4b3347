"""The offline preview: run the real Pulumi program under Pulumi's mock runtime and record everything.

For each stack, ``__main__.py`` runs exactly as ``pulumi up`` would run it — same config (the stack
file's values, objects as JSON strings, as Pulumi passes them), same components — but against a mock
resource monitor that records every registered resource (type, name, parent, provider, inputs) and
answers with plausible, deterministic outputs from :mod:`fleetkit.mocks`. Provider function calls
are answered from the same registry; an unknown call is an error, never a silent empty answer.

StackReferences resolve to the other stacks' previewed outputs. Stacks are previewed in dependency
order (trust roots first); a stack that read a peer before that peer had been previewed is previewed
again once every stack has outputs, so a fresh clone shows the full cross-cluster picture.

Secret values (Pulumi secrets) are never written: they appear as ``"[secret]"`` in every file.
"""

from __future__ import annotations

import copy
import json
import logging
import runpy
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import config as rconfig
from pulumi.runtime import mocks as rmocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from fleetkit import mocks as mockdata
from fleetkit import program as program_module
from fleetkit.errors import Issue, SpecError
from fleetkit.fleet import Fleet
from fleetkit.loader import stack_names
from fleetkit.overrides import Override, parse_override, set_path
from fleetkit.yamlio import load_yaml_file
from policies.common import manifest_key

PROJECT = "fleetkit"
SECRET = "[secret]"
_SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
_SECRET_VAL = rpc._special_secret_sig
_UNKNOWN = rpc.UNKNOWN


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    id: str = ""
    #: URNs this resource waits for (``depends_on`` and inputs' resources, as the SDK sends them)
    deps: tuple[str, ...] = ()

    def to_json(self, names: dict[str, str]) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "parent": names.get(self.parent, ""),
            "provider": names.get(self.provider.rsplit("::", 1)[0], "") if self.provider else "",
            "custom": self.custom,
            "inputs": self.inputs,
        }


@dataclass
class StackPreview:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    missing_refs: set[str] = field(default_factory=set)
    seconds: float = 0.0
    #: StackReferences a real ``pulumi up`` would fail on, with why (stack not in stacks/, not initialised)
    ref_problems: list[str] = field(default_factory=list)
    #: warnings and errors the program logged (pulumi.log), in order
    messages: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- views
    def resource_names(self) -> dict[str, str]:
        return {r.urn: f"{r.type}::{r.name}" for r in self.resources}

    def resources_json(self) -> list[dict[str, Any]]:
        names = self.resource_names()
        rows = [r.to_json(names) for r in self.resources]
        return sorted(rows, key=lambda r: (r["type"], r["name"]))

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the stack applies (Helm releases are listed in resources.json)."""
        out = []
        for r in self.resources:
            if (
                not r.custom
                or not r.type.startswith("kubernetes:")
                or r.type.startswith("kubernetes:helm.sh")
            ):
                continue
            if "apiVersion" not in r.inputs or "kind" not in r.inputs:
                continue
            obj = {"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"]}
            for k, v in r.inputs.items():
                if k not in obj:
                    obj[k] = v
            out.append(obj)
        return sorted(out, key=manifest_key)

    def types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            if r.custom:
                counts[r.type] = counts.get(r.type, 0) + 1
        return dict(sorted(counts.items()))

    def public_outputs(self) -> dict[str, Any]:
        """Outputs as written to files: secrets redacted, JSON-ready."""
        return {
            k: (SECRET if k in self.secret_outputs else clean(v)[0]) for k, v in sorted(self.outputs.items())
        }


# --------------------------------------------------------------------------- value cleaning
def clean(value: Any) -> tuple[Any, bool]:
    """JSON-ready copy of a deserialized property value; secrets become "[secret]". Returns (value, had_secret)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VAL:
            return _redact(value.get("value")), True
        out, secret = {}, False
        for k in sorted(value):
            v, s = clean(value[k])
            out[str(k)] = v
            secret = secret or s
        return out, secret
    if isinstance(value, (list, tuple)):
        items = [clean(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, float) and value.is_integer():
        return int(value), False
    if (isinstance(value, str) and value == _UNKNOWN) or isinstance(value, Unknown):
        return "(known after apply)", False
    if isinstance(value, pulumi.Resource):
        return f"resource:{type(value).__name__}", False
    if value is None or isinstance(value, (str, int, float, bool)):
        return value, False
    return str(value), False


def _redact(value: Any) -> Any:
    """Keep the shape of a secret value (mapping keys, list length) and hide every leaf."""
    if isinstance(value, dict) and value.get(_SECRET_SIG) != _SECRET_VAL:
        return {str(k): _redact(v) for k, v in sorted(value.items())}
    if isinstance(value, dict):
        return _redact(value.get("value"))
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return SECRET


def _unwrap_secrets(value: Any) -> Any:
    """Plain values for mock state (outputs keep their secretness through the SDK's own wrappers)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VAL:
            return {_SECRET_SIG: _SECRET_VAL, "value": _unwrap_secrets(value.get("value"))}
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


# --------------------------------------------------------------------------- the mock runtime
class _Mocks(pulumi.runtime.Mocks):
    """Answers for one stack. ``known`` are the stacks in ``stacks/``; ``peers`` those already up.

    With ``unknown_outputs`` every resource answers with its inputs only and no id — what the engine
    returns for a resource it has yet to create during a stack's first ``pulumi preview``.
    """

    def __init__(
        self,
        stack: str,
        peers: dict[str, "StackPreview"],
        known: frozenset[str] | None = None,
        unknown_outputs: bool = False,
    ):
        self.stack = stack
        self.peers = peers
        self.known = known
        self.unknown_outputs = unknown_outputs
        self.missing_refs: set[str] = set()
        self.ref_problems: list[str] = []

    def new_resource(self, args: rmocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            return self._stack_reference(args)
        inputs = _unwrap_secrets(dict(args.inputs))
        if self.unknown_outputs and args.custom:
            return None, inputs
        fn = mockdata.RESOURCE_OUTPUTS.get(args.typ)
        extra = fn(mockdata.MockResource(args.typ, args.name, inputs, self.stack, PROJECT)) if fn else {}
        state = {**inputs, **extra}
        rid = (
            args.resource_id
            or state.pop("id", None)
            or f"{args.name}-{mockdata.registry.digest(self.stack, args.typ, args.name, length=8)}"
        )
        return str(rid), state

    def _stack_reference(self, args: rmocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        ref = str(args.inputs.get("name") or args.name)
        peer = ref.rstrip("/").split("/")[-1]
        prev = self.peers.get(peer)
        if prev is None:
            self.missing_refs.add(peer)
            if self.known is not None and peer not in self.known:
                why = f"stack {peer!r} is not in stacks/ (no stacks/Pulumi.{peer}.yaml): it cannot exist"
            else:
                why = (
                    f"stack {peer!r} is not initialised at this point of a first bring-up (trust roots, then "
                    f"each region in any order, then the peering stack)"
                )
            self.ref_problems.append(
                f"StackReference {ref!r}: {why}; `pulumi up` fails on a reference to a missing stack "
                f"(pulumi/pulumi#11275)"
            )
            outputs: dict[str, Any] = {}
            secret_names: list[str] = []
        else:
            outputs = {
                k: ({_SECRET_SIG: _SECRET_VAL, "value": v} if k in prev.secret_outputs else v)
                for k, v in prev.outputs.items()
            }
            secret_names = sorted(prev.secret_outputs)
        return ref, {"name": ref, "outputs": outputs, "secretOutputNames": secret_names}

    def call(self, args: rmocks.MockCallArgs) -> dict[str, Any]:
        fn = mockdata.INVOKES.get(args.token)
        if fn is None:
            raise RuntimeError(
                f"the offline preview has no mock for provider function {args.token!r}; "
                f"register one in fleetkit/mocks/ (@invoke({args.token!r}))"
            )
        return fn(dict(args.args), self.stack)


class _RecordingMonitor(rmocks.MockMonitor):
    """Mock monitor that also records parent and provider of every registration."""

    def __init__(self, mocks: _Mocks):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        args = rmocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        rid, state = self.mocks.new_resource(args)
        obj = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = rmocks.MockMonitor.ResourceRegistration(urn, rid, state)
        cleaned, _ = clean(inputs)
        with self._lock:
            self.recorded.append(
                RecordedResource(
                    urn,
                    request.type,
                    request.name,
                    request.parent,
                    request.provider,
                    bool(request.custom),
                    cleaned,
                    rid or "",
                    tuple(sorted(set(request.dependencies))),
                )
            )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid or "", object=obj)

    def ReadResource(self, request: Any) -> Any:
        resp = super().ReadResource(request)
        state = rpc.deserialize_properties(request.properties)
        cleaned, _ = clean(
            {"id": request.id, **state}
            if request.type != "pulumi:pulumi:StackReference"
            else {"name": state.get("name")}
        )
        with self._lock:
            self.recorded.append(
                RecordedResource(
                    resp.urn,
                    request.type,
                    request.name,
                    request.parent,
                    request.provider,
                    True,
                    cleaned,
                    request.id,
                )
            )
        return resp


class _CollectingLogger(logging.Logger):
    """Keeps what the program logs (``pulumi.log.warn`` …) with its preview instead of printing it.

    A first-pass run that read a peer before the peer had outputs warns about it; only the
    messages of the run that is kept are shown.
    """

    def __init__(self, stack: str):
        super().__init__(f"fleetkit.preview.{stack}", level=logging.WARNING)
        self.messages: list[str] = []

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(f"{record.levelname.lower()}: {record.getMessage()}")


def _config_for(root: Path, stack: str, cli_sets: list[str]) -> tuple[dict[str, str], list[str]]:
    """The stack's config exactly as Pulumi would pass it: strings, objects as JSON, plus --set values."""
    doc, problems = load_yaml_file(root / "stacks" / f"Pulumi.{stack}.yaml", f"stacks/Pulumi.{stack}.yaml")
    if problems:
        raise SpecError(problems)
    config: dict[str, Any] = dict((doc or {}).get("config") or {})
    for item in cli_sets:
        parsed = parse_override(item)
        if not isinstance(parsed, Override):  # the loader reported it already
            raise SpecError([Issue.at("--set", item, parsed.rule, parsed.message, parsed.value)])
        parts, value = parsed.parts, parsed.value
        key = f"{PROJECT}:{parts[0]}"
        if len(parts) == 1:
            config[key] = value
        else:
            holder = config.get(key)
            holder = copy.deepcopy(holder) if isinstance(holder, dict) else {}
            set_path(holder, parts[1:], value)
            config[key] = holder
    out: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            out[key] = "preview-secret-placeholder"
            secret_keys.append(key)
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out, secret_keys


def run_stack(
    root: Path,
    stack: str,
    peers: dict[str, StackPreview] | None = None,
    cli_sets: list[str] | None = None,
    exports_only: bool = False,
    unknown_outputs: bool = False,
) -> StackPreview:
    """Run ``__main__.py`` for one stack under the mock runtime and return what it registered.

    ``peers`` are the stacks already up (StackReferences resolve to their outputs; a reference to
    any other stack is recorded in ``ref_problems``). ``exports_only`` builds only what the peering
    stack reads. ``unknown_outputs`` answers every resource as a first ``pulumi preview`` does:
    outputs not among the inputs are unknown.
    """
    started = time.perf_counter()
    cfg, secret_keys = _config_for(root, stack, cli_sets or [])
    mocks = _Mocks(stack, peers or {}, frozenset(stack_names(root / "stacks")), unknown_outputs)
    monitor = _RecordingMonitor(mocks)
    log = _CollectingLogger(stack)
    settings.reset_options(project=PROJECT, stack=stack, preview=True)
    rconfig.set_all_config(cfg, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=True, monitor=monitor, logger=log)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    program = str(root / "__main__.py")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def main() -> None:
        runpy.run_path(program, run_name="__main__")

    program_module.PREVIEW_EXPORTS_ONLY = exports_only
    try:
        _sync_await(run_pulumi_func(main))
    except pulumi.RunError as err:
        raise SpecError([Issue.at(f"stacks/Pulumi.{stack}.yaml", "", "program.error", str(err))]) from None
    finally:
        program_module.PREVIEW_EXPORTS_ONLY = False
    stack_res = settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for key, value in sorted(getattr(stack_res, "outputs", {}).items()):
        out = pulumi.Output.from_input(value)
        outputs[key] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret_outputs.add(key)
    recorded = sorted(monitor.recorded, key=lambda r: r.urn)
    return StackPreview(
        stack,
        recorded,
        outputs,
        secret_outputs,
        set(mocks.missing_refs),
        time.perf_counter() - started,
        messages=log.messages,
        ref_problems=sorted(set(mocks.ref_problems)),
    )


def _portable(value: Any) -> Any:
    """Outputs reduced to plain data so a worker process can send them back."""
    if isinstance(value, dict):
        return {str(k): _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _worker(conn: Any, root: Path) -> None:
    """A preview worker: runs the stacks it is sent and answers with their previews."""
    import asyncio

    # A forked child inherits the parent's event loop, whose default thread pool has no threads
    # here (they were not copied by fork): work queued to it would never run. Start afresh.
    asyncio.set_event_loop(asyncio.new_event_loop())
    while True:
        msg = conn.recv()
        if msg is None:
            return
        names, peers, sets_for, exports_only = msg
        out: dict[str, Any] = {}
        try:
            for name in names:
                # only the stacks up before this step: a batch's stacks come up in any order
                res = run_stack(root, name, peers, sets_for.get(name), name in exports_only)
                res.outputs = _portable(res.outputs)
                out[name] = res
            conn.send(("ok", out))
        except SpecError as err:
            conn.send(("spec", err.problems))
        except BaseException as err:  # noqa: BLE001 - reported in the parent with its traceback text
            import traceback

            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class _Pool:
    """Long-lived forked workers, so each keeps the provider SDKs it already imported."""

    def __init__(self, root: Path, size: int):
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.conns = []
        self.procs = []
        for _ in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, root), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def run(
        self,
        batches: list[list[str]],
        peers: dict[str, StackPreview],
        sets_for: dict[str, list[str]],
        progress: Callable[[str, str], None] | None,
        what: str,
        exports_only: frozenset[str] = frozenset(),
    ) -> dict[str, StackPreview]:
        busy = []
        # workers only need peers' outputs, not their recorded resources
        slim = {n: StackPreview(n, [], r.outputs, set(r.secret_outputs)) for n, r in peers.items()}
        for conn, names in zip(self.conns, batches):
            if names:
                conn.send((names, slim, sets_for, exports_only))
                busy.append((conn, names))
                if progress:
                    progress(", ".join(names), what)
        out: dict[str, StackPreview] = {}
        for conn, _ in busy:
            kind, payload = conn.recv()
            if kind == "spec":
                raise SpecError(payload)
            if kind == "error":
                raise RuntimeError(f"preview worker failed: {payload}")
            out.update(payload)
        return out

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)


def _batches(fleet: Fleet, names: list[str], size: int) -> list[list[str]]:
    """Split stacks over workers, keeping one cloud's stacks together (each SDK is imported once)."""
    by_cloud: dict[str, list[str]] = {}
    for n in names:
        spec = fleet.stacks[n].spec
        by_cloud.setdefault(getattr(spec, "cloud", "-"), []).append(n)
    batches: list[list[str]] = [[] for _ in range(size)]
    for _, group in sorted(by_cloud.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        min(batches, key=len).extend(group)
    return batches


def default_jobs() -> int:
    import os

    return max(1, min(2, os.cpu_count() or 1))


def preview_fleet(
    fleet: Fleet,
    only: list[str] | None = None,
    cli_sets: list[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    jobs: int | None = None,
) -> dict[str, StackPreview]:
    """Preview stacks in the documented first bring-up order, resolving StackReferences as it goes.

    1. trust roots; 2. region stacks, each seeing only the trust roots (regions come up in any
    order, so a reference from one region to another is a reference to a stack that may not exist
    yet: recorded in ``ref_problems``); 3. the peering stack, seeing every region. Region stacks the
    caller did not ask for but a wanted peering stack reads run exports-only. With ``jobs`` > 1 the
    region stacks run in forked worker processes, one cloud per worker where possible; the result is
    the same as a sequential run. The result holds ``only`` (or every stack).
    """
    from fleetkit.spec import PeeringStackSpec

    root = fleet.root
    names = sorted(fleet.stacks)
    wanted = only or names
    # each stack gets the --set items the loader applied to it (``models.…`` never reaches a trust root)
    sets_for = {n: [s for s in cli_sets or [] if s in fleet.stacks[n].overrides] for n in wanted}
    jobs = default_jobs() if jobs is None else jobs
    regions = [n for n in names if fleet.stacks[n].is_region]
    peering = [n for n in names if isinstance(fleet.stacks[n].spec, PeeringStackSpec) and n in wanted]
    roots = [n for n in names if n not in regions and not isinstance(fleet.stacks[n].spec, PeeringStackSpec)]
    partial = frozenset(n for n in regions if n not in wanted) if peering else frozenset()
    run_regions = [n for n in regions if n in wanted or n in partial]
    results: dict[str, StackPreview] = {}
    import multiprocessing as mp

    if jobs <= 1 or len(run_regions) < 2 or "fork" not in mp.get_all_start_methods():
        for name in roots:
            if progress:
                progress(name, "previewing")
            results[name] = run_stack(root, name, {}, sets_for.get(name))
        up = dict(results)
        for name in run_regions:
            if progress:
                progress(name, "reading outputs of" if name in partial else "previewing")
            results[name] = run_stack(root, name, up, sets_for.get(name), exports_only=name in partial)
    else:
        pool = _Pool(root, min(jobs, len(run_regions)))
        try:
            if roots:
                results.update(pool.run([roots], {}, sets_for, progress, "previewing"))
            results.update(
                pool.run(
                    _batches(fleet, run_regions, len(pool.conns)),
                    dict(results),
                    sets_for,
                    progress,
                    "previewing",
                    exports_only=partial,
                )
            )
        finally:
            pool.close()
    for name in peering:
        if progress:
            progress(name, "previewing")
        results[name] = run_stack(root, name, dict(results), sets_for.get(name))
    return {n: results[n] for n in names if n in wanted}
