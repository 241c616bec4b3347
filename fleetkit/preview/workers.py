"""Parallel previews: long-lived forked worker processes, each running the stacks it is sent.

A worker keeps the provider SDKs it imported between batches, so stacks of one cloud go to one
worker (:func:`batches`). Work goes out and comes back as plain data over a pipe: peers' outputs in,
:class:`~fleetkit.preview.stack.StackPreview` objects (already redacted, so picklable) back.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fleetkit.errors import SpecError
from fleetkit.fleet import Fleet
from fleetkit.preview.stack import StackPreview, run_stack

Progress = Callable[[str, str], None]


def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def _portable(value: Any) -> Any:
    """Outputs reduced to plain data so a worker process can send them back."""
    if isinstance(value, dict):
        return {str(k): _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _worker(conn: Connection, root: Path) -> None:
    """A preview worker: runs the stacks it is sent and answers with their previews."""
    # A forked child inherits the parent's event loop, whose default thread pool has no threads
    # here (they were not copied by fork): work queued to it would never run. Start afresh.
    asyncio.set_event_loop(asyncio.new_event_loop())
    while True:
        msg = conn.recv()
        if msg is None:
            return
        names, peers, sets_for = msg
        out: dict[str, Any] = {}
        try:
            for name in names:
                # only the stacks up before this step: a batch's stacks come up in any order
                res = run_stack(root, name, peers, sets_for.get(name))
                res.outputs = _portable(res.outputs)
                out[name] = res
            conn.send(("ok", out))
        except SpecError as err:
            conn.send(("spec", err.problems))
        except BaseException as err:  # reported in the parent, with its traceback text
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class Pool:
    """Long-lived forked workers, so each keeps the provider SDKs it already imported."""

    def __init__(self, root: Path, size: int) -> None:
        ctx = mp.get_context("fork")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
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
        progress: Progress | None,
        what: str,
    ) -> dict[str, StackPreview]:
        busy = []
        # workers only need peers' outputs, not their recorded resources
        slim = {n: StackPreview(n, [], r.outputs, set(r.secret_outputs)) for n, r in peers.items()}
        for conn, names in zip(self.conns, batches, strict=False):
            if names:
                conn.send((names, slim, sets_for))
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


def batches(fleet: Fleet, names: list[str], size: int) -> list[list[str]]:
    """Split stacks over workers, keeping one cloud's stacks together (each SDK is imported once)."""
    by_cloud: dict[str, list[str]] = {}
    for n in names:
        spec = fleet.stacks[n].spec
        by_cloud.setdefault(getattr(spec, "cloud", "-"), []).append(n)
    out: list[list[str]] = [[] for _ in range(size)]
    for _, group in sorted(by_cloud.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        min(out, key=len).extend(group)
    return out
