"""Command line: fleetkit-weights {sync,warm,publish,status,lease,verify,purge}.

``main(argv)`` never calls sys.exit and never lets an expected error escape as a
traceback: it returns 0 on success, 1 on operational failure (network, capacity,
locks), 2 on bad input and 3 when data does not match its manifest.
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
from typing import Callable, Iterator, NoReturn

from fleetkit_weights import MANIFEST_NAME, __version__
from fleetkit_weights.errors import IntegrityError, UsageError, WeightsError
from fleetkit_weights.options import (  # noqa: F401 - parse_size is part of this module's API
    ADDRESSING_STYLES,
    MAX_CACHE_BYTES_ENV,
    SYNC_DEFAULTS,
    Problems as _Problems,
    parse_size,
)

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTEGRITY = 0, 1, 2, 3
PROG = "fleetkit-weights"

DESCRIPTION = f"""\
Node-local model weight cache for vLLM, backed by any S3-compatible object store.

A model is a prefix in a bucket plus a manifest ({MANIFEST_NAME}: every file's
size and sha256) written by `publish`. `sync` downloads it with parallel ranged GETs,
verifies every byte, and publishes it atomically into CACHE_DIR/<bucket>/<prefix>,
a symlink that only ever points at a complete, verified copy. Concurrent syncs on one
node share one download; `lease` marks a model in use so eviction skips it.

commands:
  sync SOURCE CACHE_DIR        fetch (or confirm) one model; the initContainer step
  warm SOURCE... CACHE_DIR     sync models now and every --interval seconds (DaemonSet)
  publish LOCAL_DIR DEST       upload a model directory, then its manifest
  status CACHE_DIR             cached models: size, last use, in use, complete/partial
  lease MODEL_PATH [-- CMD]    hold MODEL_PATH in use while CMD (e.g. vllm serve) runs
  verify MODEL_PATH            re-hash a cached model against its manifest
  purge CACHE_DIR              delete cached models that are not in use

S3 endpoint: --endpoint-url, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS.
Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], else the
standard AWS chain (IRSA, EKS Pod Identity, instance profile, ~/.aws).

exit codes: 0 ok, 1 failed (network, capacity, lock), 2 bad usage, 3 data does not
match its manifest (nothing was published)."""

EPILOG = f"""\
examples:
  {PROG} publish ./Llama-3.1-8B-Instruct s3://models/llama-3.1-8b-instruct/rev-0e9e39f
  {PROG} sync s3://models/llama-3.1-8b-instruct/rev-0e9e39f /cache/models --concurrency 16
  {PROG} lease /cache/models/models/llama-3.1-8b-instruct/rev-0e9e39f -- vllm serve /cache/models/models/llama-3.1-8b-instruct/rev-0e9e39f
  {PROG} warm --interval 600 s3://models/a s3://models/b /cache/models --max-cache-bytes 800Gi
  {PROG} status /cache/models
Run `{PROG} COMMAND --help` for a command's options."""


# ---------------------------------------------------------------------- argparse plumbing


class _ParserExit(Exception):
    def __init__(self, status: int):
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


def _add_s3_options(p: argparse.ArgumentParser, concurrency: int, part_size: str) -> None:
    g = p.add_argument_group("object store")
    g.add_argument("--endpoint-url", metavar="URL",
                   help="S3-compatible endpoint, e.g. https://storage.googleapis.com or http://minio:9000 "
                        "(default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS S3)")
    g.add_argument("--region", help="signing region (default: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1; "
                                    "GCS accepts 'auto' or any, R2 uses 'auto')")
    g.add_argument("--addressing-style", choices=ADDRESSING_STYLES, default=SYNC_DEFAULTS["addressing_style"],
                   help="bucket in the path or in the host name (default auto: virtual on AWS, path elsewhere)")
    g.add_argument("--no-sign-request", action="store_true", help="anonymous requests (public buckets)")
    g.add_argument("--concurrency", default=concurrency, metavar="N",
                   help=f"parallel connections (default {concurrency})")
    g.add_argument("--part-size", default=part_size, metavar="SIZE",
                   help=f"bytes per ranged GET / multipart part (default {part_size}); a GET of a chunk-verified "
                        "file covers as many whole chunks as fit, at least one")
    g.add_argument("--max-attempts", default=None, metavar="N",
                   help="attempts per request before giving up (default 10; backoff with jitter)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress or info lines, only errors and the summary")
    g.add_argument("--progress-interval", default=None, metavar="SECONDS",
                   help="seconds between progress lines on stderr (default 0.5 on a TTY, 5 otherwise; 0 = off)")


def _add_sync_options(p: argparse.ArgumentParser, warm: bool = False) -> None:
    g = p.add_argument_group("cache")
    g.add_argument("--max-cache-bytes", metavar="SIZE", default=os.environ.get(MAX_CACHE_BYTES_ENV),
                   help="cache capacity (e.g. 800Gi); least recently used models that are not in use are "
                        "evicted to make room (default: $FLEETKIT_WEIGHTS_MAX_CACHE_BYTES, else unlimited)")
    g.add_argument("--evict-min-idle", metavar="SECONDS", default=SYNC_DEFAULTS["evict_min_idle"],
                   help="never evict a model used less than this long ago, so a model synced by an "
                        "initContainer survives until its container takes the lease (default 300)")
    g.add_argument("--lock-timeout", metavar="SECONDS", default=None,
                   help="give up waiting for another sync of the same model on this node (default: wait)")
    g.add_argument("--no-fsync", action="store_true",
                   help="skip fsync (faster on slow disks); the model is then fully re-verified after a reboot")
    g.add_argument("--fallocate", action="store_true",
                   help="reserve each file's disk blocks before downloading (default: sparse .part files; "
                        "free space is checked up front either way)")
    g.add_argument("--buffered-io", action="store_true",
                   help="write downloads through the page cache (default: direct I/O from the verified "
                        "socket buffer to disk where the filesystem supports it, which spares a copy "
                        "and the dirty-page writeback before fsync)")
    g.add_argument("--allow-stale", action="store_true",
                   help="if the object store is unreachable, succeed with the cached version of the model")
    g.add_argument("--manifest-digest", metavar="sha256:HEX", default=None,
                   help="the model's pinned manifest digest (printed by `publish`): the manifest is verified "
                        "against it before use and fetched again on a mismatch; a bucket that keeps serving "
                        "another manifest fails the sync (exit 3)" + (
                            ". With several SOURCEs, pin each as S3URI=sha256:HEX (repeatable)"
                            if warm else ""),
                   **({"action": "append"} if warm else {}))
    g.add_argument("--speed-limit", metavar="BYTES_PER_S", default=SYNC_DEFAULTS["speed_limit"],
                   help="low-speed limit per connection, as curl's --speed-limit: a ranged GET slower than "
                        "this for --speed-time seconds is dropped and the rest of the range requested again on "
                        "a new connection (default 100K; 0 = off)")
    g.add_argument("--speed-time", metavar="SECONDS", default=SYNC_DEFAULTS["speed_time"],
                   help="seconds a connection may stay below --speed-limit (default 30)")
    g.add_argument("--deadline", metavar="SECONDS", default=None,
                   help="give up a sync that takes longer than this (exit 1; verified parts are kept and the "
                        "next sync resumes them; default: no deadline)")
    g.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary line")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("sync", help="fetch (or confirm) a model into the node cache",
                       description="Download the model published at SOURCE into CACHE_DIR, verify it against its "
                                   "manifest and publish it atomically at CACHE_DIR/<bucket>/<prefix>. "
                                   "If that exact version is already cached this takes one small request.")
    p.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix of a published model")
    p.add_argument("cache_dir", metavar="CACHE_DIR", help="cache root on the node (created if its parent exists)")
    _add_s3_options(p, SYNC_DEFAULTS["concurrency"], SYNC_DEFAULTS["part_size"])
    _add_sync_options(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("warm", help="keep models cached: sync them now and every --interval seconds",
                       description="Prefetch mode for a DaemonSet: sync every SOURCE into CACHE_DIR, then repeat "
                                   "every --interval seconds (0 = once). A failing source is reported and retried "
                                   "next round; SIGTERM stops cleanly (a download in flight resumes next time).")
    p.add_argument("sources", metavar="SOURCE", nargs="+", help="s3://bucket/prefix (one or more)")
    p.add_argument("cache_dir", metavar="CACHE_DIR")
    p.add_argument("--interval", default="0", metavar="SECONDS", help="seconds between rounds (default 0: run once)")
    _add_s3_options(p, SYNC_DEFAULTS["concurrency"], SYNC_DEFAULTS["part_size"])
    _add_sync_options(p, warm=True)
    p.set_defaults(func=cmd_warm)

    p = sub.add_parser("publish", help="upload a model directory and its manifest",
                       description="Hash every file under LOCAL_DIR, upload the files (multipart above 64 MiB, "
                                   f"unchanged files skipped) and finally {MANIFEST_NAME}. Hidden files and "
                                   "directories (.git, .cache) are skipped unless --include-hidden.")
    p.add_argument("local_dir", metavar="LOCAL_DIR")
    p.add_argument("dest", metavar="DEST", help="s3://bucket/prefix")
    p.add_argument("--include-hidden", action="store_true", help="also upload dotfiles and dot-directories")
    p.add_argument("--chunk-size", default="16Mi", metavar="SIZE",
                   help="record a sha256 per SIZE slice of each file, so `sync` verifies every ranged GET as it "
                        "streams and keeps every verified chunk (default 16Mi; 0 = whole-file digests only)")
    p.add_argument("--chunk-hash", choices=("blake3", "sha256"), default="blake3",
                   help="digest of each chunk (default blake3: several times faster to verify than sha256; "
                        "the manifest keeps every file's sha256 either way). sha256 writes a format_version 1 "
                        "manifest, readable by agents from before BLAKE3 chunks")
    _add_s3_options(p, 8, "64Mi")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("status", help="show what is cached",
                       description="List cached models (complete, superseded, partial) with size, last use and "
                                   "whether a reader holds them in use.")
    p.add_argument("cache_dir", metavar="CACHE_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("lease", help="hold a cached model in use while a command runs",
                       description="Take a shared lock on the model's lease file, then exec CMD with the lock "
                                   "inherited, so eviction skips the model until CMD exits. Without CMD, hold "
                                   "the lease until SIGTERM/SIGINT (sidecar style).",
                       usage=f"{PROG} lease [-h] [--timeout SECONDS] MODEL_PATH [-- CMD [ARG ...]]")
    p.add_argument("model_path", metavar="MODEL_PATH", help="CACHE_DIR/<bucket>/<prefix> (as printed by sync)")
    p.add_argument("--timeout", default="60", metavar="SECONDS", help="wait this long for the lease (default 60)")
    p.set_defaults(func=cmd_lease, command_argv=[])

    p = sub.add_parser("verify", help="re-hash a cached model against its manifest",
                       description="Read every file of a cached model and compare its sha256 with the manifest. "
                                   "Exit 3 if anything differs.")
    p.add_argument("model_path", metavar="MODEL_PATH")
    p.add_argument("--concurrency", default="4", metavar="N", help="files hashed in parallel (default 4)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("purge", help="delete cached models that are not in use",
                       description="Delete cached models. Models in use (leased) are never deleted; they are "
                                   "listed and the exit code is 1.")
    p.add_argument("cache_dir", metavar="CACHE_DIR")
    sel = p.add_argument_group("what to delete (at least one)")
    sel.add_argument("--source", action="append", default=[], metavar="S3URI", help="this model (repeatable)")
    sel.add_argument("--all", action="store_true", help="every model and partial download")
    sel.add_argument("--stale", action="store_true", help="superseded versions and unmarked entries")
    sel.add_argument("--partial", action="store_true", help="partial downloads no sync is working on")
    p.set_defaults(func=cmd_purge)
    return parser


# ---------------------------------------------------------------------- validation helpers


def _check_cache_dir(probs: _Problems, path: str, create: bool) -> Path:
    return Path(probs.cache_dir(path, create))


def _s3_client_from_args(args: argparse.Namespace, probs: _Problems):
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
    if probs.items:
        return None
    speed = {}
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


def _sync_options(args: argparse.Namespace, probs: _Problems):
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

    def handler(signum, frame):  # noqa: ARG001
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
    cache_dir = _check_cache_dir(probs, args.cache_dir, create=True)
    interval = probs.float_(args.interval, "--interval", False) or 0.0
    pins = _warm_pins(probs, args.manifest_digest or [], locs)
    args.manifest_digest = None
    opts = _sync_options(args, probs)
    client = _s3_client_from_args(args, probs)
    probs.raise_if_any()
    cache_dir.mkdir(exist_ok=True)
    log = _logger(opts.quiet)
    cache = Cache(cache_dir)
    syncers = {loc: Syncer(client, cache, opts._replace(manifest_digest=pins.get(str(loc))), log) for loc in locs}
    stop = threading.Event()
    round_no = 0
    try:
        with _sigterm_raises():
            while True:
                round_no += 1
                failed = 0
                for loc in locs:
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


def _warm_pins(probs: _Problems, values: list[str], locs: list) -> dict[str, str]:
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
        digest = probs.digest(digest, "--manifest-digest")
        if uri and digest:
            pins[uri] = digest
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
    chunk_size = probs.size(args.chunk_size, "--chunk-size", 0)
    if chunk_size is not None and 0 < chunk_size < 64 * 1024:
        probs.add(f"--chunk-size must be 0 or at least 64Ki, got {args.chunk_size}")
    client = _s3_client_from_args(args, probs)
    probs.raise_if_any()
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
    rows = []
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
    from fleetkit_weights.cache import resolve_entry, touch

    probs = _Problems()
    timeout = probs.float_(args.timeout, "--timeout", False) or 0.0
    if not os.path.exists(args.model_path):
        probs.add(f"MODEL_PATH {args.model_path} does not exist (run `{PROG} sync` first)")
    probs.raise_if_any()
    _cache, entry = resolve_entry(args.model_path)
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
    from fleetkit_weights.cache import load_entry_manifest, resolve_entry
    from fleetkit_weights.progress import fmt_bytes
    from fleetkit_weights.sync import verify_entry

    probs = _Problems()
    workers = probs.int_(args.concurrency, "--concurrency", 1, 64)
    if not os.path.exists(args.model_path):
        probs.add(f"MODEL_PATH {args.model_path} does not exist")
    probs.raise_if_any()
    _cache, entry = resolve_entry(args.model_path)
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
    root = _check_cache_dir(probs, args.cache_dir, create=False)
    wanted = {str(loc) for loc in (probs.s3(s, "--source") for s in args.source) if loc is not None}
    if not (args.all or args.stale or args.partial or args.source):
        probs.add("say what to delete: --source S3URI, --stale, --partial or --all")
    probs.raise_if_any()
    cache = Cache(root)
    removed, kept = [], []
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


# ---------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command_argv: list[str] = []
    if argv and argv[0] == "lease" and "--" in argv:
        cut = argv.index("--")
        argv, command_argv = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "lease":
            args.command_argv = command_argv
        return args.func(args)
    except _ParserExit as exc:
        return exc.status
    except UsageError as exc:
        for problem in exc.problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except IntegrityError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_INTEGRITY
    except WeightsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except (KeyboardInterrupt, _Terminated) as exc:
        print(f"{PROG}: interrupted; partial downloads are kept and resume on the next sync", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{PROG}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - last resort: still one line unless debugging
        if os.environ.get("FLEETKIT_WEIGHTS_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (set FLEETKIT_WEIGHTS_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
