"""Command line: fleetkit-weights {sync,warm,publish,status,lease,verify,purge}.

``main(argv)`` never calls sys.exit and never lets an expected error escape as a
traceback: it returns 0 on success, 1 on operational failure (network, capacity,
locks), 2 on bad input and 3 when data does not match its manifest.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any, NoReturn

from fleetkit_weights import MANIFEST_NAME, __version__
from fleetkit_weights.commands import (  # noqa: F401 - the exit codes are part of this module's API
    EXIT_FAIL,
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    _Terminated,
    cmd_lease,
    cmd_publish,
    cmd_purge,
    cmd_status,
    cmd_sync,
    cmd_verify,
    cmd_warm,
)
from fleetkit_weights.errors import IntegrityError, UsageError, WeightsError
from fleetkit_weights.options import (  # noqa: F401 - parse_size is part of this module's API
    ADDRESSING_STYLES,
    MAX_CACHE_BYTES_ENV,
    SYNC_DEFAULTS,
    parse_size,
)

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

    def unknown_options(self, argv: list[str]) -> list[str]:
        """One problem per option in ``argv`` this parser does not know, with the closest it does.

        argparse reports missing arguments before unknown options, and unknown ones without a
        suggestion; this names each, so one run shows every mistake on the command line.
        """
        known = [o for o in self._option_string_actions if o.startswith("--")]
        out = []
        for tok in argv:
            if tok == "--":
                break
            name = tok.split("=", 1)[0]
            if not name.startswith("-") or name == "-" or name in self._option_string_actions:
                continue
            if name[1:2] != "-" and len(name) == 2 and any(name == o for o in self._option_string_actions):
                continue
            if name[1:].replace(".", "", 1).isdigit():  # a negative number is a value
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            out.append(f"unrecognized arguments: {name} (no such option of `{self.prog}`{hint}) "
                       f"(see `{self.prog} --help`)")
        return out

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


def _add_s3_options(p: argparse.ArgumentParser, concurrency: int | str | None, part_size: str | None) -> None:
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
    append: dict[str, Any] = {"action": "append"} if warm else {}  # warm: one --manifest-digest per SOURCE
    g.add_argument("--max-cache-bytes", metavar="SIZE", default=None,
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
                   **append)
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
    parser.commands = dict(sub.choices)  # type: ignore[attr-defined]
    return parser



# ---------------------------------------------------------------------- entry point


def _with_unknown_options(parser: argparse.ArgumentParser, argv: list[str], problems: list[str]) -> list[str]:
    """argparse's problem, plus every unknown option of the chosen command (argparse stops at one problem)."""
    sub = next((getattr(parser, "commands", {}).get(tok) for tok in argv if not tok.startswith("-")), None)
    if not isinstance(sub, _Parser):
        return problems
    unknown = sub.unknown_options(argv[argv.index(sub.prog.rsplit(" ", 1)[-1]) + 1:])
    if not unknown:
        return problems
    # argparse's own "unrecognized arguments" line is replaced by the named ones
    kept = [p for p in problems if not p.startswith("unrecognized arguments")]
    return kept + unknown


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command_argv: list[str] = []
    if argv and argv[0] == "lease" and "--" in argv:
        cut = argv.index("--")
        argv, command_argv = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            raise UsageError(_with_unknown_options(parser, argv, exc.problems)) from None
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
