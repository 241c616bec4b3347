"""The one recording Pulumi mock runtime: the offline preview and every test tier run programs on it.

A program (``__main__.py`` for the preview, a few components for a test) runs under Pulumi's public
mock API — :func:`pulumi.runtime.set_mocks` with a :class:`pulumi.runtime.Mocks` and a
``MockMonitor`` subclass, driven by :func:`pulumi.runtime.test`, which runs the function, waits for
every outstanding resource registration and awaits the awaitable it returns
(``sdk/python/lib/pulumi/runtime/mocks.py``). Each registration is recorded once, in one form
(:class:`Recorded`): type, name, parent, provider, dependencies, options, the inputs exactly as the
SDK sent them, and the outputs the mock registry (:mod:`fleetkit.mocks`) added.

Secrets are handled one way. A recorded input keeps Pulumi's wire envelope around a secret value,
recognised only through the SDK's public helpers (``pulumi.runtime.rpc.is_rpc_secret`` /
``unwrap_rpc_secret`` / ``wrap_rpc_secret``); every view derives from that: :func:`plain` (secrets
unwrapped, for assertions and for the mock registry), :func:`redact` (secrets as ``"[secret]"``,
shape kept, for files) and :func:`public_strings` (the strings outside any secret, for leak checks).
An export's secretness comes from the public ``Output.is_secret()``.

StackReferences resolve to the outputs of ``peers`` (secret outputs stay secret); a reference to any
other stack is recorded (``missing_refs``, ``ref_problems``: ``pulumi up`` fails on it,
pulumi/pulumi#11275). An invoke with no mock is an error, never a silent empty answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

import fleetkit.mocks as areas
from fleetkit.mocks.registry import InvokeFn, MockResource, digest

PROJECT = "fleetkit"
#: how a secret value appears in every file and report
SECRET = "[secret]"
#: how a value the engine does not know yet appears (``pulumi preview`` prints the same words)
UNKNOWN = "(known after apply)"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


# --------------------------------------------------------------------------- views of recorded values
def is_secret(value: Any) -> bool:
    """Whether a recorded value is a Pulumi secret (the SDK's wire envelope)."""
    return rpc.is_rpc_secret(value)


def plain(value: Any) -> Any:
    """``value`` with every secret unwrapped, and whole floats as ints (protobuf sends every number as a double)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def redact(value: Any) -> Any:
    """A JSON-ready copy with every secret leaf as ``"[secret]"`` (a secret mapping keeps its keys)."""
    if rpc.is_rpc_secret(value):
        return _hide(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {str(k): redact(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if (isinstance(value, str) and value == rpc.UNKNOWN) or isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, pulumi.Resource):
        return f"resource:{type(value).__name__}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _hide(value: Any) -> Any:
    """The shape of a secret value (mapping keys, list length) with every leaf hidden."""
    if rpc.is_rpc_secret(value):
        return _hide(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {str(k): _hide(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_hide(v) for v in value]
    return SECRET


def public_strings(value: Any) -> list[str]:
    """Every string in ``value`` (mapping keys included) that is not inside a secret."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *public_strings(v)]]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in public_strings(v)]
    return [value] if isinstance(value, str) else []


# --------------------------------------------------------------------------- what is recorded
@dataclass
class Recorded:
    """One registered (or read) resource, as the program asked for it."""

    urn: str
    type: str
    name: str
    custom: bool
    #: the inputs as the SDK sent them; a secret is the SDK's wire envelope (see :func:`plain`)
    inputs: dict[str, Any]
    #: what the mock registry added to the inputs (ids, ARNs, endpoints, CA data)
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    parent: str = ""
    provider: str = ""
    #: URNs this resource waits for (``depends_on`` and its inputs' resources, as the SDK sends them)
    deps: tuple[str, ...] = ()
    #: resource options that were set (protect, aliases, ignoreChanges, deleteBeforeReplace, …)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def plain_inputs(self) -> dict[str, Any]:
        return plain(self.inputs)

    def redacted(self) -> Recorded:
        """This record with inputs and outputs JSON-ready and secrets hidden (what files show)."""
        return replace(self, inputs=redact(self.inputs), outputs=redact(self.outputs))


class HasOutputs(Protocol):
    """A stack already up, as a StackReference sees it."""

    outputs: dict[str, Any]
    secret_outputs: set[str]


def _options(request: Any) -> dict[str, Any]:
    """The resource options a RegisterResourceRequest carries, those that were set."""
    found = {
        "protect": getattr(request, "protect", False),
        "ignoreChanges": list(getattr(request, "ignoreChanges", [])),
        "replaceOnChanges": list(getattr(request, "replaceOnChanges", [])),
        "deleteBeforeReplace": getattr(request, "deleteBeforeReplace", False),
        "retainOnDelete": getattr(request, "retainOnDelete", False),
        "additionalSecretOutputs": list(getattr(request, "additionalSecretOutputs", [])),
        "aliases": sorted(
            a.spec.name or a.urn for a in getattr(request, "aliases", []) if a.urn or a.spec.name
        ),
        "deletedWith": getattr(request, "deletedWith", ""),
    }
    return {k: v for k, v in found.items() if v}


# --------------------------------------------------------------------------- the mocks
class RecordingMocks(pulumi.runtime.Mocks):
    """Answers for one stack from the mock registry; remembers every provider call.

    ``peers`` are the stacks already up (StackReferences read their outputs); ``known_stacks`` names
    every stack that exists (a reference to another name cannot resolve, ever). With
    ``unknown_outputs`` every custom resource answers with its inputs only and no id — what the engine
    returns for a resource it has yet to create during a stack's first ``pulumi preview``.
    ``invokes`` answer provider calls before the registry does (a test's Terraform state, say).
    """

    def __init__(
        self,
        stack: str,
        peers: Mapping[str, HasOutputs] | None = None,
        *,
        known_stacks: frozenset[str] | None = None,
        unknown_outputs: bool = False,
        invokes: Mapping[str, InvokeFn] | None = None,
    ) -> None:
        self.stack = stack
        self.peers = dict(peers or {})
        self.known_stacks = known_stacks
        self.unknown_outputs = unknown_outputs
        self.invokes = dict(invokes or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.missing_refs: set[str] = set()
        self.ref_problems: list[str] = []
        # what new_resource answered, per monitor thread, for the monitor to record
        self.last = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, state, extra = self._answer(args)
        self.last.answer = (dict(args.inputs), extra, rid)
        return rid, state

    def _answer(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ == STACK_REFERENCE:
            return self._stack_reference(args)
        if self.unknown_outputs and args.custom:
            return None, inputs, {}
        fn = areas.RESOURCE_OUTPUTS.get(args.typ)
        extra = fn(MockResource(args.typ, args.name, plain(inputs), self.stack, PROJECT)) if fn else {}
        state = {**inputs, **extra}
        rid = (
            args.resource_id
            or state.pop("id", None)
            or f"{args.name}-{digest(self.stack, args.typ, args.name, length=8)}"
        )
        return str(rid), state, extra

    def _stack_reference(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        ref = str(args.inputs.get("name") or args.name)
        peer = ref.rstrip("/").split("/")[-1]
        prev = self.peers.get(peer)
        if prev is None:
            self.missing_refs.add(peer)
            if self.known_stacks is not None and peer not in self.known_stacks:
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
                k: (rpc.wrap_rpc_secret(v) if k in prev.secret_outputs else v)
                for k, v in prev.outputs.items()
            }
            secret_names = sorted(prev.secret_outputs)
        return ref, {"name": ref, "outputs": outputs, "secretOutputNames": secret_names}, {}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        call_args = plain(dict(args.args))
        self.calls.append((args.token, call_args))
        fn = self.invokes.get(args.token) or areas.INVOKES.get(args.token)
        if fn is None:
            raise RuntimeError(
                f"the offline preview has no mock for provider function {args.token!r}; "
                f"register one in fleetkit/mocks/ (@invoke({args.token!r}))"
            )
        return fn(call_args, self.stack), []  # no check failures


class RecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, recording each registration with its parent, provider and dependencies."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.answers = mocks
        self.recorded: list[Recorded] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        resp = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return resp
        inputs, extra, rid = self.answers.last.answer
        record = Recorded(
            resp.urn,
            request.type,
            request.name,
            bool(request.custom),
            inputs,
            extra,
            rid or "",
            request.parent,
            request.provider,
            tuple(sorted(set(request.dependencies))),
            _options(request),
        )
        with self._lock:
            self.recorded.append(record)
        return resp

    def ReadResource(self, request: Any) -> Any:
        resp = super().ReadResource(request)
        state, _, _ = self.answers.last.answer
        shown = (
            {"name": state.get("name")} if request.type == STACK_REFERENCE else {"id": request.id, **state}
        )
        record = Recorded(
            resp.urn,
            request.type,
            request.name,
            True,
            shown,
            {},
            request.id,
            request.parent,
            request.provider,
            tuple(sorted(set(request.dependencies))),
        )
        with self._lock:
            self.recorded.append(record)
        return resp


class _CollectingLogger(logging.Logger):
    """Keeps the warnings and errors the program logs (``pulumi.log.warn`` …) instead of printing them."""

    def __init__(self, stack: str) -> None:
        super().__init__(f"fleetkit.mocks.runtime.{stack}", level=logging.WARNING)
        self.messages: list[str] = []

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(f"{record.levelname.lower()}: {record.getMessage()}")


# --------------------------------------------------------------------------- one run
@dataclass
class ProgramRun:
    """What one program run registered, exported, called and logged."""

    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    missing_refs: set[str] = field(default_factory=set)
    ref_problems: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name_suffix: str = "") -> Recorded:
        found = [r for r in self.of_type(type_token) if r.name.endswith(name_suffix)]
        assert len(found) == 1, f"{type_token} *{name_suffix}: {[r.name for r in found]}"
        return found[0]

    def kube(self, kind: str, name: str) -> dict[str, Any]:
        """The plain inputs of the one Kubernetes object of ``kind`` called ``name``."""
        for r in self.resources:
            if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}"):
                obj = r.plain_inputs
                if (obj.get("metadata") or {}).get("name") == name:
                    return obj
        raise AssertionError(f"no {kind} {name}: {[r.name for r in self.resources]}")

    def types(self) -> list[str]:
        return sorted({r.type for r in self.resources if r.custom})

    def tokens(self) -> list[str]:
        return sorted({t for t, _ in self.calls})

    def by_urn(self) -> dict[str, Recorded]:
        return {r.urn: r for r in self.resources}

    def depends_on(self, res: Recorded) -> set[str]:
        """URNs ``res`` waits for, directly or through what those wait for."""
        index, seen, todo = self.by_urn(), set(), list(res.deps)
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn in index:
                todo.extend(index[urn].deps)
        return seen


Program = Callable[[], Mapping[str, Any] | None]


def run_program(
    stack: str,
    program: Program,
    mocks: RecordingMocks | None = None,
    *,
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = True,
) -> ProgramRun:
    """Run ``program`` as stack ``stack`` on the mock runtime and return what it did.

    ``config`` is the stack's config as Pulumi passes it (every value a string, objects as JSON),
    ``secret_keys`` the keys that are secret. The exports are what ``program`` returns, or, when it
    returns None, what it passed to ``pulumi.export`` (the stack resource's outputs). ``preview``
    is what ``pulumi.runtime.is_dry_run()`` answers. An exception from the program (a
    ``pulumi.RunError``, an invoke with no mock) propagates after every registration finished.
    """
    mocks = mocks or RecordingMocks(stack)
    monitor = RecordingMonitor(mocks)
    log = _CollectingLogger(stack)
    pulumi.runtime.reset_options(project=PROJECT, stack=stack, preview=preview)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, logger=log
    )
    outputs: dict[str, Any] = {}
    secret: set[str] = set()

    async def collect(exports: Mapping[str, Any]) -> None:
        for key, value in sorted(exports.items()):
            out = pulumi.Output.from_input(value)
            outputs[key] = await out.future()
            if await out.is_secret():
                secret.add(key)

    @pulumi.runtime.test
    def run() -> Awaitable[None]:
        exports = program()
        if exports is None:
            root = pulumi.runtime.get_root_resource()
            exports = dict(getattr(root, "outputs", None) or {})
        return collect(exports)

    run()
    return ProgramRun(
        stack,
        sorted(monitor.recorded, key=lambda r: r.urn),
        outputs,
        secret,
        set(mocks.missing_refs),
        sorted(set(mocks.ref_problems)),
        list(mocks.calls),
        log.messages,
    )
