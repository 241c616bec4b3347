"""The `fleetkit-weights` console script, and the warm `sync` that needs none of the full CLI.

Every pod start on a node that already holds its model runs `fleetkit-weights sync` again.
The answer takes one manifest GET and a few stat calls, about 3 ms. Importing the full
CLI takes ten times that: argparse, pathlib, typing, json, re, socket and hashlib. So the
console script tries this path first. It is built only from modules the interpreter loads
anyway and small C modules, plus the lean shared pieces:
- options.py: argument checks;
- s3req.py: addressing and SigV4;
- httpc.py: HTTP;
- layout.py: cache naming and entry checks;
- result.py: the summary line.

This path answers only when it is certain. It needs all of the following:
- a `sync` command line made of options it recognises, with valid values;
- a plain http(s) endpoint;
- credentials in the environment (or --no-sign-request);
- a manifest GET that succeeds the first time;
- a manifest that matches its own digest (if it carries one) and the pinned --manifest-digest
  (if given);
- a complete entry for exactly that manifest, durable or written since the last boot,
  already linked at CACHE_DIR/<bucket>/<prefix>, with every file at its manifest size;
- with --max-cache-bytes, a cache within its limit (otherwise the full CLI evicts idle entries).

In any other case it hands over to the full CLI (cli.main), and so does any error. The full
CLI then runs the same check again with retries, repairs, downloads, and reports problems.
Set FLEETKIT_WEIGHTS_DEBUG=1 to see why a run was handed over, and FLEETKIT_WEIGHTS_NO_FASTPATH=1
to always use the full CLI.
"""

from __future__ import annotations

import os
import sys
import time

from fleetkit_weights import MANIFEST_NAME
from fleetkit_weights.options import ADDRESSING_STYLES, SYNC_DEFAULTS, Problems, plain_endpoint

TYPE_CHECKING = False  # typing is not imported at run time (see above)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from fleetkit_weights.options import S3Location
    from fleetkit_weights.s3req import Credentials

# Options of `sync` that this path recognises: argparse dest names.
_FLAGS = {
    "--quiet": "quiet", "-q": "quiet", "--json": "json", "--no-sign-request": "no_sign_request",
    "--no-fsync": "no_fsync", "--fallocate": "fallocate", "--buffered-io": "buffered_io",
    "--allow-stale": "allow_stale",
}
_VALUED = {
    "--endpoint-url": "endpoint_url", "--region": "region", "--addressing-style": "addressing_style",
    "--concurrency": "concurrency", "--part-size": "part_size", "--max-attempts": "max_attempts",
    "--progress-interval": "progress_interval", "--max-cache-bytes": "max_cache_bytes",
    "--evict-min-idle": "evict_min_idle", "--lock-timeout": "lock_timeout",
    "--manifest-digest": "manifest_digest", "--speed-limit": "speed_limit", "--speed-time": "speed_time",
    "--deadline": "deadline",
}


class Miss(Exception):
    """The fast path cannot answer with certainty; the full CLI takes over."""


class SyncArgs:
    """A `sync` command line as argparse would parse it, for the forms recognised here."""

    # set in __init__ from SYNC_DEFAULTS, _FLAGS and _VALUED (the names of `sync`'s argparse dests)
    concurrency: str
    part_size: str
    max_attempts: str | None
    progress_interval: str | None
    evict_min_idle: str
    lock_timeout: str | None
    addressing_style: str  # checked against ADDRESSING_STYLES below
    speed_limit: str
    speed_time: str
    deadline: str | None
    manifest_digest: str | None
    quiet: bool
    json: bool
    no_sign_request: bool
    no_fsync: bool
    fallocate: bool
    buffered_io: bool
    allow_stale: bool

    def __init__(self, argv: list[str]):
        if not argv or argv[0] != "sync":
            raise Miss("not a sync command")
        self.__dict__.update(SYNC_DEFAULTS)
        self.__dict__.update(dict.fromkeys(_FLAGS.values(), False))
        self.endpoint_url: str | None = None
        self.region: str | None = None
        self.max_cache_bytes: str | None = None  # else $FLEETKIT_WEIGHTS_MAX_CACHE_BYTES (Problems.sync_values)
        positionals = []
        it = iter(argv[1:])
        for tok in it:
            if tok in _FLAGS:
                setattr(self, _FLAGS[tok], True)
                continue
            name, eq, value = tok.partition("=")
            if name in _VALUED:
                if not eq:
                    following = next(it, None)
                    if following is None or following.startswith("-"):
                        raise Miss(f"{name} without a plain value")
                    value = following
                setattr(self, _VALUED[name], value)
            elif tok.startswith("-"):
                raise Miss(f"option {tok!r} is left to argparse")
            else:
                positionals.append(tok)
        if len(positionals) != 2:
            raise Miss("not exactly SOURCE and CACHE_DIR")
        self.source, self.cache_dir = positionals
        if self.addressing_style not in ADDRESSING_STYLES:
            raise Miss("invalid --addressing-style")


def _credentials(args: SyncArgs) -> Credentials | None:
    from fleetkit_weights.s3req import env_credentials

    if args.no_sign_request:
        return None
    creds = env_credentials()
    if creds is None:
        raise Miss("credentials come from the AWS provider chain (botocore)")
    return creds


def _endpoint(args: SyncArgs) -> tuple[str, str, int, str] | None:
    url = args.endpoint_url
    if url is None:
        url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        if url is None:
            return None  # AWS S3
    parts = plain_endpoint(url)
    if parts is None:
        raise Miss(f"endpoint {url!r} needs the full URL parser")
    return parts


def _get_manifest(args: SyncArgs, loc: S3Location) -> bytes:
    from fleetkit_weights.httpc import Connection, tls_context
    from fleetkit_weights.s3req import EMPTY_SHA256, default_region, encode_target, object_target, sign_v4

    region = args.region or default_region()
    creds = _credentials(args)
    scheme, host, port, host_header, path = object_target(
        _endpoint(args), region, args.addressing_style, loc.bucket, loc.key(MANIFEST_NAME)
    )
    headers = {"Host": host_header}
    if creds is not None:
        sign_v4("GET", host_header, path, {}, headers, EMPTY_SHA256, creds, region)
    conn = Connection(host, port, tls_context() if scheme == "https" else None)
    try:
        resp = conn.request("GET", encode_target(path), headers)
        if resp.status != 200:
            raise Miss(f"manifest GET answered {resp.status}")
        return resp.read()
    finally:
        conn.close()


def _loads(text: str) -> Any:
    """json.loads through the C scanner, without importing json (and re behind it)."""
    try:
        import _json
    except ImportError:  # pragma: no cover - CPython always has it
        import json

        return json.loads(text)

    class _Context:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int

        @staticmethod
        def parse_constant(name: str) -> NoReturn:
            raise ValueError(f"{name} is not valid JSON")

    ws = " \t\n\r"
    start = len(text) - len(text.lstrip(ws))
    try:
        # typeshed asks for a make_scanner; the C scanner reads these attributes from any object
        value, end = _json.make_scanner(_Context)(text, start)  # type: ignore[arg-type]
    except StopIteration:
        raise ValueError("not valid JSON") from None
    if text[end:].strip(ws):
        raise ValueError("extra data after the JSON value")
    return value


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _path_str(path: str) -> str:
    """The path as pathlib prints it (no "." or empty segments), as the full CLI reports it."""
    segs = [s for s in path.split("/") if s not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(segs) or "."


def _cache_bytes(cache_dir: str) -> int:
    """Bytes the cache holds and reserves, as the full CLI counts them: the total_bytes of every
    store entry and staging directory (their meta.json)."""
    from fleetkit_weights.layout import META

    used = 0
    for sub in ("store", "staging"):
        top = os.path.join(cache_dir, META, sub)
        try:
            names = os.listdir(top)
        except FileNotFoundError:
            continue
        for name in names:
            try:
                used += int(_loads(_read_text(os.path.join(top, name, "meta.json"))).get("total_bytes", 0))
            except (OSError, ValueError, AttributeError):
                continue
    return used


def warm_sync(argv: list[str]) -> str:
    """The summary line of a `sync` whose model is already cached and verified; raises Miss otherwise."""
    from fleetkit_weights.layout import (
        DIGEST_FIELD,
        META,
        entry_id,
        manifest_digest,
        files_problems,
        linked_entry,
        model_link,
        touch,
        written_before_reboot,
    )
    from fleetkit_weights.result import SyncResult
    t0 = time.monotonic()
    args = SyncArgs(argv)
    probs = Problems()
    loc = probs.s3(args.source, "SOURCE")
    probs.cache_dir(args.cache_dir, create=True)
    values = probs.sync_values(args)
    if probs.items or loc is None:
        raise Miss("invalid arguments: " + "; ".join(probs.items))
    raw = _get_manifest(args, loc)
    doc = _loads(raw.decode("utf-8"))
    digest = manifest_digest(doc)
    if doc.get(DIGEST_FIELD, f"sha256:{digest}") != f"sha256:{digest}":
        raise Miss("the manifest does not match its own digest")
    if values["manifest_digest"] not in (None, f"sha256:{digest}"):
        raise Miss("the manifest does not match the pinned digest")
    eid = entry_id(loc, digest)
    entry = os.path.join(args.cache_dir, META, "store", eid)
    try:
        marker = _loads(_read_text(os.path.join(entry, "COMPLETE")))
    except OSError:
        raise Miss("this version has no COMPLETE entry in the cache") from None
    if not isinstance(marker, dict):
        raise Miss("unreadable completion marker")
    if written_before_reboot(marker):
        raise Miss("entry written without fsync before the last reboot")
    link = model_link(args.cache_dir, loc)
    if linked_entry(link) != eid:
        raise Miss("the model link does not point at this version")
    files = [(f["path"], f["size"]) for f in doc["files"]]
    problems = files_problems(os.path.join(entry, "files"), files)
    if problems:
        raise Miss("; ".join(problems[:3]))
    if values["max_cache_bytes"] is not None and _cache_bytes(args.cache_dir) > values["max_cache_bytes"]:
        raise Miss("the cache is over --max-cache-bytes")
    touch(os.path.join(entry, "last_use"))
    res = SyncResult(str(loc), _path_str(link), eid, files=len(files), total_bytes=sum(size for _, size in files),
                     skipped_files=len(files), cached=True, seconds=time.monotonic() - t0)
    if args.json:
        import json  # noqa: PLC0415

        return json.dumps(res.as_dict())
    return res.summary()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: the warm fast path, else the full CLI (same exit codes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    line = None
    if not os.environ.get("FLEETKIT_WEIGHTS_NO_FASTPATH"):
        try:
            line = warm_sync(argv)
        except KeyboardInterrupt:
            print("fleetkit-weights: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - every failure means: let the full CLI do it
            if os.environ.get("FLEETKIT_WEIGHTS_DEBUG") and argv[:1] == ["sync"]:
                print(f"fleetkit-weights: debug: warm fast path not taken: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
    if line is not None:
        try:
            print(line, flush=True)
        except OSError as exc:  # e.g. stdout closed: reported as the full CLI reports it
            print(f"fleetkit-weights: error: {exc.strerror or exc}", file=sys.stderr)
            return 1
        return 0
    from fleetkit_weights.cli import main as cli_main  # noqa: PLC0415

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
