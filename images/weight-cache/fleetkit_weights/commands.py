"""The commands of ``fleetkit-weights`` (``cmd_sync`` … ``cmd_purge``) and their validation helpers.

Each command takes the parsed arguments (:func:`fleetkit_weights.cli.build_parser`) and returns an exit
code: 0 on success, 1 on operational failure, 2 on bad input, 3 when data does not match its manifest.
Expected errors are raised as :mod:`fleetkit_weights.errors` and turned into one line by
:func:`fleetkit_weights.cli.main`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn

from fleetkit_weights.errors import IntegrityError, UsageError, WeightsError
from fleetkit_weights.layout import META
from fleetkit_weights.options import Problems as _Problems

if TYPE_CHECKING:
    from types import FrameType

    from fleetkit_weights.options import S3Location
    from fleetkit_weights.s3 import S3Client
    from fleetkit_weights.sync import SyncOptions

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTEGRITY = 0, 1, 2, 3
PROG = "fleetkit-weights"


# ---------------------------------------------------------------------- validation helpers


def _check_cache_dir(probs: _Problems, path: str, create: bool) -> Path:
    return Path(probs.cache_dir(path, create))


def _cached_model(path: str) -> tuple[Any, Any]:
    """(cache, store entry) of MODEL_PATH; a path outside any cache is a usage error (exit 2)."""
    from fleetkit_weights.cache import resolve_entry

    try:
        return resolve_entry(path)
    except WeightsError as exc:
        raise UsageError(f"MODEL_PATH: {exc} (give the path `{PROG} sync` printed)") from None


def _s3_client_from_args(args: argparse.Namespace, probs: _Problems) -> S3Client | None:
    from fleetkit_weights.s3 import S3Client, validate_endpoint_url

    endpoint = args.endpoint_url
    if endpoint is not None:
        try:
            validate_endpoint_url(endpoint)
        except ValueError as exc:
            probs.add(f"--endpoint-url: {exc}")
            endpoint = None
    else:
        for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if os.environ.get(var):
                try:
                    validate_endpoint_url(os.environ[var])
                except ValueError as exc:
                    probs.add(f"${var}: {exc}")
                break
    for name, region in (("--region", args.region), ("$AWS_REGION", os.environ.get("AWS_REGION")),
                         ("$AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION"))):
        if name != "--region" and not region:
            continue  # an empty variable is as good as unset (s3req.region)
        if region is not None and not (region and all(c.isalnum() or c in "-_" for c in region)):
            probs.add(f"{name} must be a region name such as us-east-1 or auto, got {region!r}")
        if name == "--region" and region is not None:
            break  # the flag wins over the environment
    if probs.items:
        return None
    speed: dict[str, Any] = {}
    if getattr(args, "speed_limit", None) is not None:
        speed = {"speed_limit": probs.size(args.speed_limit, "--speed-limit", 0) or 0,
                 "speed_time": probs.float_(args.speed_time, "--speed-time", False) or 0.0}
        if probs.items:
            return None
    return S3Client(endpoint, args.region, args.addressing_style, anonymous=args.no_sign_request, **speed)


def _common(args: argparse.Namespace, probs: _Problems) -> dict:
    from fleetkit_weights.retry import RetryPolicy

    out = probs.transfer_values(args)
    out["retry"] = RetryPolicy.from_env(out.pop("max_attempts"))
    return out


def _sync_options(args: argparse.Namespace, probs: _Problems) -> SyncOptions:
    from fleetkit_weights.retry import RetryPolicy
    from fleetkit_weights.sync import SyncOptions

    v = probs.sync_values(args)
    return SyncOptions(
        concurrency=v["concurrency"],
        part_size=v["part_size"] or 64 << 20,
        max_cache_bytes=v["max_cache_bytes"],
        evict_min_idle=v["evict_min_idle"],
        lock_timeout=v["lock_timeout"],
        durable=not args.no_fsync,
        progress_interval=v["progress_interval"],
        quiet=args.quiet,
        allow_stale=args.allow_stale,
        retry=RetryPolicy.from_env(v["max_attempts"]),
        fallocate=args.fallocate,
        direct_io=not args.buffered_io,
        manifest_digest=v["manifest_digest"],
        deadline=v["deadline"],
    )


def _logger(quiet: bool) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if not quiet:
            print(f"{PROG}: {msg}", file=sys.stderr, flush=True)

    return log


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM so downloads checkpoint and stop cleanly."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> NoReturn:  # noqa: ARG001
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ---------------------------------------------------------------------- commands


def cmd_sync(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import Cache
    from fleetkit_weights.sync import Syncer

    probs = _Problems()
    loc = probs.s3(args.source, "SOURCE")
    cache_dir = _check_cache_dir(probs, args.cache_dir, create=True)
    opts = _sync_options(args, probs)
    client = _s3_client_from_args(args, probs)
    probs.raise_if_any()
    assert loc is not None and client is not None  # each None came with a problem raise_if_any() raised
    cache_dir.mkdir(exist_ok=True)
    syncer = Syncer(client, Cache(cache_dir), opts, _logger(opts.quiet))
    try:
        with _sigterm_raises():
            res = syncer.sync(loc)
    finally:
        client.close()
    print(json.dumps(res.as_dict()) if args.json else res.summary(), flush=True)
    return EXIT_OK


def cmd_warm(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import Cache
    from fleetkit_weights.sync import Syncer

    probs = _Problems()
    locs = [probs.s3(s, "SOURCE") for s in args.sources]
    twice = sorted({str(loc) for i, loc in enumerate(locs) if loc is not None and loc in locs[:i]})
    probs.items += [f"SOURCE {uri} is given twice" for uri in twice]
    cache_dir = _check_cache_dir(probs, args.cache_dir, create=True)
    interval = probs.float_(args.interval, "--interval", False) or 0.0
    pins = _warm_pins(probs, args.manifest_digest or [], locs)
    args.manifest_digest = None
    opts = _sync_options(args, probs)
    client = _s3_client_from_args(args, probs)
    probs.raise_if_any()
    sources = [loc for loc in locs if loc is not None]  # all of them: raise_if_any() raised for a bad one
    assert client is not None and len(sources) == len(locs)
    cache_dir.mkdir(exist_ok=True)
    log = _logger(opts.quiet)
    cache = Cache(cache_dir)
    syncers = {loc: Syncer(client, cache, opts._replace(manifest_digest=pins.get(str(loc))), log) for loc in sources}
    stop = threading.Event()
    round_no = 0
    try:
        with _sigterm_raises():
            while True:
                round_no += 1
                failed = 0
                for loc in sources:
                    try:
                        res = syncers[loc].sync(loc)
                        print(json.dumps(res.as_dict()) if args.json else res.summary(), flush=True)
                    except WeightsError as exc:
                        failed += 1
                        print(f"{PROG}: error: {loc}: {exc}", file=sys.stderr, flush=True)
                if interval <= 0:
                    return EXIT_FAIL if failed else EXIT_OK
                log(f"round {round_no} done ({failed} failed); next in {interval:.0f}s")
                stop.wait(interval)
    except _Terminated:
        log("SIGTERM: stopping")
        return EXIT_OK
    finally:
        client.close()


def _warm_pins(probs: _Problems, values: list[str], locs: list[S3Location | None]) -> dict[str, str]:
    """`warm --manifest-digest`: sha256:HEX for a single SOURCE, else S3URI=sha256:HEX per source."""
    pins: dict[str, str] = {}
    sources = {str(loc) for loc in locs if loc is not None}
    for value in values:
        uri, eq, digest = value.rpartition("=")
        if not eq:
            if len(locs) != 1:
                probs.add(f"--manifest-digest {value}: with several SOURCEs, give S3URI=sha256:HEX")
                continue
            uri = str(locs[0]) if locs[0] is not None else ""
        else:
            loc = probs.s3(uri, "--manifest-digest")
            uri = str(loc) if loc is not None else ""
            if loc is not None and uri not in sources:
                probs.add(f"--manifest-digest {value}: {uri} is not one of the SOURCEs")
        pin = probs.digest(digest, "--manifest-digest")
        if uri and pin:
            pins[uri] = pin
    return pins


def cmd_publish(args: argparse.Namespace) -> int:
    from fleetkit_weights.publish import publish

    probs = _Problems()
    local = Path(args.local_dir)
    if not local.is_dir():
        probs.add(f"LOCAL_DIR {args.local_dir} is not a directory" if local.exists()
                  else f"LOCAL_DIR {args.local_dir} does not exist")
    loc = probs.s3(args.dest, "DEST")
    common = _common(args, probs)
    if common["part_size"] is not None and common["part_size"] > 5 << 30:  # S3's largest multipart part
        probs.add(f"--part-size must be at most 5Gi for an upload (S3's largest multipart part), got {args.part_size}")
    chunk_size = probs.size(args.chunk_size, "--chunk-size", 0)
    if chunk_size is not None and 0 < chunk_size < 64 * 1024:
        probs.add(f"--chunk-size must be 0 or at least 64Ki, got {args.chunk_size}")
    client = _s3_client_from_args(args, probs)
    probs.raise_if_any()
    assert loc is not None and client is not None  # each None came with a problem raise_if_any() raised
    try:
        with _sigterm_raises():
            res = publish(client, local, loc, common["concurrency"], common["part_size"], common["retry"],
                          _logger(args.quiet), args.quiet, common["progress_interval"], args.include_hidden,
                          chunk_size or 0, args.chunk_hash)
    finally:
        client.close()
    print(res.summary(), flush=True)
    return EXIT_OK


def _ago(ts: float) -> str:
    d = max(0.0, time.time() - ts)
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= secs:
            return f"{d / secs:.0f}{unit} ago"
    return f"{d:.0f}s ago"


def cmd_status(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import Cache
    from fleetkit_weights.progress import fmt_bytes

    probs = _Problems()
    root = _check_cache_dir(probs, args.cache_dir, create=False)
    probs.raise_if_any()
    cache = Cache(root)
    entries, partials = cache.entries(), cache.partials()
    rows: list[dict[str, Any]] = []
    for e in entries:
        state = "complete" if e.complete and e.current else ("superseded" if e.complete else "unmarked")
        rows.append({
            "state": state, "in_use": e.in_use, "bytes": e.total_bytes, "files": e.files,
            "last_use": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.last_use)), "last_use_epoch": e.last_use,
            "version": e.digest[:12], "path": str(root / e.link) if e.link else "", "source": e.source, "id": e.id,
        })
    for p in partials:
        rows.append({
            "state": "downloading" if p.active else "partial", "in_use": False, "bytes": p.total_bytes,
            "done_bytes": p.done_bytes, "files": None,
            "last_use": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p.mtime)), "last_use_epoch": p.mtime,
            "version": p.id.rsplit(".", 1)[-1][:12], "path": "", "source": p.source, "id": p.id,
        })
    used = sum(r["bytes"] for r in rows)
    if args.json:
        print(json.dumps({"cache_dir": str(root), "used_bytes": used, "models": rows}, indent=1))
        return EXIT_OK
    print(f"cache {root}: {fmt_bytes(used)} in {len(entries)} model version(s), {len(partials)} partial download(s)")
    if not rows:
        return EXIT_OK
    table = [("STATE", "IN-USE", "SIZE", "FILES", "LAST-USE", "VERSION", "SOURCE", "PATH")]
    for r in rows:
        size = fmt_bytes(r["bytes"]) if "done_bytes" not in r else f"{fmt_bytes(r['done_bytes'])}/{fmt_bytes(r['bytes'])}"
        table.append((r["state"], "yes" if r["in_use"] else "no", size, "-" if r["files"] is None else str(r["files"]),
                      f"{r['last_use']} ({_ago(r['last_use_epoch'])})", r["version"], r["source"], r["path"] or "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return EXIT_OK


def cmd_lease(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import touch

    probs = _Problems()
    timeout = probs.float_(args.timeout, "--timeout", False) or 0.0
    if not os.path.exists(args.model_path):
        probs.add(f"MODEL_PATH {args.model_path} does not exist (run `{PROG} sync` first)")
    probs.raise_if_any()
    _cache, entry = _cached_model(args.model_path)
    lease = entry / "lease"
    fd = os.open(lease, os.O_RDONLY)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            break
        except BlockingIOError:  # an eviction holds it exclusively for a moment
            if time.monotonic() >= deadline:
                os.close(fd)
                raise WeightsError(f"timed out waiting for the lease on {args.model_path}") from None
            time.sleep(0.05)
    try:
        same = os.fstat(fd).st_ino == os.stat(lease).st_ino
    except OSError:
        same = False
    if not same or not (entry / "COMPLETE").is_file():
        os.close(fd)
        raise WeightsError(f"{args.model_path} was evicted or is incomplete; run `{PROG} sync` again")
    touch(entry / "last_use")
    cmd = args.command_argv
    if cmd:
        os.set_inheritable(fd, True)
        os.environ["FLEETKIT_WEIGHTS_LEASE_FD"] = str(fd)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvp(cmd[0], cmd)
        except OSError as exc:
            os.close(fd)
            raise WeightsError(f"cannot run {cmd[0]!r}: {exc.strerror}") from None
    print(f"{PROG}: holding the lease on {args.model_path} ({entry.name}); stop with SIGTERM", file=sys.stderr, flush=True)
    stop = threading.Event()
    try:
        with _sigterm_raises():
            while not stop.wait(3600):
                touch(entry / "last_use")
    except (_Terminated, KeyboardInterrupt):
        pass
    finally:
        touch(entry / "last_use")
        os.close(fd)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import load_entry_manifest
    from fleetkit_weights.progress import fmt_bytes
    from fleetkit_weights.sync import verify_entry

    probs = _Problems()
    workers = probs.int_(args.concurrency, "--concurrency", 1, 64)
    if not os.path.exists(args.model_path):
        probs.add(f"MODEL_PATH {args.model_path} does not exist")
    probs.raise_if_any()
    _cache, entry = _cached_model(args.model_path)
    man = load_entry_manifest(entry)
    t0 = time.monotonic()
    problems = verify_entry(entry, man, workers)
    if problems:
        raise IntegrityError(f"{args.model_path} does not match its manifest: " + "; ".join(problems))
    print(f"verified {args.model_path}: {len(man.files)} files, {fmt_bytes(man.total_bytes)}, "
          f"sha256 ok in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    from fleetkit_weights.cache import Cache

    probs = _Problems()
    root = Path(probs.cache_dir(args.cache_dir, create=False, write=True))
    if root.is_dir() and not (root / META).is_dir():
        probs.add(f"CACHE_DIR {args.cache_dir} is not a {PROG} cache (no {META}/ in it); nothing was deleted")
    wanted = {str(loc) for loc in (probs.s3(s, "--source") for s in args.source) if loc is not None}
    if not (args.all or args.stale or args.partial or args.source):
        probs.add("say what to delete: --source S3URI, --stale, --partial or --all")
    probs.raise_if_any()
    cache = Cache(root)
    removed: list[str] = []
    kept: list[str] = []
    with cache.global_lock():
        for e in cache.entries():
            stale = not (e.complete and e.current)
            if args.all or (args.stale and stale) or e.source in wanted:
                (removed if cache.try_evict(e) else kept).append(f"{e.source} ({e.id})")
        if args.all or args.partial or wanted:
            for p in cache.partials():
                if args.all or args.partial or p.source in wanted:
                    if p.active:
                        kept.append(f"{p.source} (partial {p.id}, download in progress)")
                    else:
                        cache._discard(p.path)
                        removed.append(f"{p.source} (partial {p.id})")
        cache.sweep_trash()
    for r in removed:
        print(f"removed {r}")
    for k in kept:
        print(f"{PROG}: kept {k}: in use", file=sys.stderr)
    print(f"purged {len(removed)}, kept {len(kept)} in use")
    return EXIT_FAIL if kept else EXIT_OK
