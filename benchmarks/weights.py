#!/usr/bin/env python3
"""Benchmark the fleetkit-weights agent against s5cmd, awscli and boto3 on a local S3 server.

Not run in CI. Needs the test extras (s5cmd, awscli, boto3, localbucket; moto[server]).

    python benchmarks/weights.py                       # 2 GB in 4 shards
    python benchmarks/weights.py --total-gb 8 --files 8 --concurrency 32
    python benchmarks/weights.py --server localbucket  # stock localbucket (bodies copied by Python)

The model is published twice: with BLAKE3 chunk digests (publish's default) and with SHA-256
chunk digests (format_version 1, `--skip sha256chunks` leaves it out), so one run shows what
the digest algorithm costs. Every tool downloads the same synthetic shards from the same local server into a fresh
directory; each run is timed as a whole process (start-up included) after a `sync` so
that no earlier run's dirty pages are still being written. Results are printed as a
table of MB/s and our throughput relative to each tool.

Server choice: moto's S3 server re-reads the *whole object* for every ranged GET
(its Range support slices the full value), so any parallel-range client -- ours, s5cmd,
awscli, boto3 -- measures moto's quadratic copying rather than the client. localbucket
(PyPI, stdlib only) serves objects from plain files with seek+read, so a ranged GET
costs only its own bytes. It is still a Python server on the same cores as the clients:
it copies every byte twice (file -> buffer -> socket), 0.6-0.9 CPU-seconds per 2 GB here,
a quarter of a 2-core machine taken from whichever client is being measured. So by
default (`--server sendfile`) localbucket runs with one change: object bodies are sent
with os.sendfile (zero-copy from the page cache); everything S3 about it is unchanged.
That is closer to a real object store, whose CPU is not the client's. The table reports
each tool's CPU and the server's CPU during its runs.

Page cache: the server's objects live on the same disk as every tool's downloads. At 8 GB
the source shards plus both published copies (24 GB) do not fit in this VM's memory, so
whichever tool ran after another had evicted part of them saw the server read from the disk
it was writing to (ours measured 900 MB/s instead of 1,400+, awscli 405 instead of 419).
So the shards are deleted once published, and before each timed run the objects that run
will fetch are read once, untimed: every tool starts with the server's data in memory, as a
remote store's disk is not the client's disk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

MB = 1_000_000
AWSCLI = "aws s3 cp --recursive (awscli v1)"
BUCKET = "bench"
PREFIX = "model/rev-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


# localbucket, except that object bodies leave with os.sendfile (page cache -> socket, no
# copies through Python). Every S3 behaviour -- listing, ETags, If-Match, errors -- is
# localbucket's own; only the byte pump differs.
SENDFILE_SERVER = textwrap.dedent(
    """
    import os, sys, localbucket

    def send_file(self, status, file, start, length, headers, include_body):
        self._send_headers(status, length, headers)
        if not include_body:
            return
        self.wfile.flush()
        sock, fd, off, end = self.connection.fileno(), file.fileno(), start, start + length
        while off < end:
            sent = os.sendfile(sock, fd, off, min(end - off, 1 << 30))
            if not sent:
                self.close_connection = True
                return
            off += sent

    localbucket.S3Handler._send_file = send_file
    sys.argv[0] = "localbucket"
    localbucket.main()
    """
)


class Servers:
    """The local S3 endpoint and its processes (for CPU accounting)."""

    def __init__(self, kind: str, workdir: Path):
        self.procs: list[subprocess.Popen] = []
        self.data: Path | None = None
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if kind == "moto":
            cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        else:
            data = self.data = workdir / "server-data"
            data.mkdir()
            lb = ["-c", SENDFILE_SERVER] if kind == "sendfile" else ["-m", "localbucket"]
            cmd = [sys.executable, *lb, str(data), "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(kind, cmd, workdir)
        wait_http(self.url)

    def _spawn(self, name: str, cmd: list[str], workdir: Path) -> None:
        log = open(workdir / f"{name}-server.log", "wb")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))

    def warm(self, prefix: str) -> None:
        """Read every stored object under prefix once, so the next run is served from memory."""
        if self.data is None:
            return  # moto keeps objects in memory
        buf = memoryview(bytearray(16 << 20))
        for dirpath, _d, names in os.walk(self.data / BUCKET / prefix):
            for name in names:
                with open(Path(dirpath) / name, "rb", buffering=0) as f:
                    while f.readinto(buf):
                        pass

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process in the servers' sessions."""
        sessions = {p.pid for p in self.procs}
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in sessions:  # field 6 of stat: session id
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def make_shards(src: Path, total_bytes: int, files: int) -> None:
    src.mkdir(parents=True)
    block = bytearray(os.urandom(16 << 20))
    per = total_bytes // files
    for i in range(files):
        size = per if i < files - 1 else total_bytes - per * (files - 1)
        with open(src / f"model-{i + 1:05d}-of-{files:05d}.safetensors", "wb") as f:
            written, n = 0, 0
            while written < size:
                block[:8] = (i * 1_000_003 + n).to_bytes(8, "little")  # no two blocks alike
                chunk = memoryview(block)[: min(len(block), size - written)]
                f.write(chunk)
                written += len(chunk)
                n += 1
    (src / "config.json").write_text('{"architectures": ["BenchForCausalLM"]}\n')


def tree_bytes(path: Path) -> tuple[int, int]:
    n = total = 0
    for dirpath, _d, names in os.walk(path):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file():
                n += 1
                total += p.stat().st_size
    return n, total


class Sample(NamedTuple):
    seconds: float
    client_cpu: float = 0.0  # user+sys of the tool's processes
    server_cpu: float = 0.0  # user+sys of the S3 server's processes meanwhile

    def __add__(self, other: Sample) -> Sample:  # type: ignore[override]
        return Sample(*(a + b for a, b in zip(self, other, strict=True)))


def timed(cmd: list[str], env: dict[str, str], label: str, servers: Servers | None = None) -> Sample:
    os.sync()
    s0 = servers.cpu_seconds() if servers else 0.0
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1 = servers.cpu_seconds() if servers else 0.0
    if proc.returncode != 0:
        raise SystemExit(
            f"{label} failed (rc={proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return Sample(dt, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, s1 - s0)


SHA256_SCRIPT = textwrap.dedent(
    """
    import concurrent.futures, hashlib, sys
    def digest(path):
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(digest, sys.argv[1:]))
    """
)

BOTO3_SCRIPT = textwrap.dedent(
    """
    import os, sys, boto3
    from boto3.s3.transfer import TransferConfig
    endpoint, bucket, prefix, dest, conc, chunk = sys.argv[1:7]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    cfg = TransferConfig(max_concurrency=int(conc), multipart_chunksize=int(chunk), multipart_threshold=int(chunk))
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            path = os.path.join(dest, obj["Key"][len(prefix) + 1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, obj["Key"], path, Config=cfg)
    """
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--total-gb", type=float, default=2.0, help="total shard bytes in GB (default 2)")
    ap.add_argument("--files", type=int, default=4, help="number of shards (default 4)")
    ap.add_argument(
        "--server",
        choices=("auto", "sendfile", "localbucket", "moto"),
        default="auto",
        help="auto: localbucket with sendfile bodies if localbucket is installed, else moto",
    )
    ap.add_argument("--concurrency", type=int, default=16, help="ours and boto3 (default 16)")
    ap.add_argument(
        "--low-concurrency",
        type=int,
        default=4,
        help="also time ours with this many connections (few-core box, local server); 0 = skip",
    )
    ap.add_argument("--part-size", default="16Mi", help="ours; boto3 uses the same chunk size (default 16Mi)")
    ap.add_argument("--warm-runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per tool, interleaved (default 3)")
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("s5cmd", "awscli", "boto3", "nofsync", "buffered", "sha256chunks"),
        help="leave a tool out (repeatable)",
    )
    ap.add_argument("--workdir", help="scratch directory (default: a new temp dir, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return ap.parse_args()


def pick_server(requested: str) -> str:
    """``auto``: localbucket with sendfile bodies when localbucket is installed, else moto."""
    if requested != "auto":
        return requested
    try:
        import localbucket  # noqa: F401
    except ImportError:
        print(
            "localbucket not installed (pip install localbucket); falling back to moto, whose ranged "
            "GETs re-read whole objects",
            file=sys.stderr,
        )
        return "moto"
    return "sendfile"


def bench_env() -> dict[str, str]:
    """The environment every timed process runs with: fixed test credentials, no profile."""
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    env.pop("PYTHONPATH", None)
    env.pop("AWS_PROFILE", None)
    # Measure what an installed image runs: byte-compiled modules (pip compiles them at install).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def create_bucket(url: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)


def make_agent(workdir: Path, here: Path) -> list[str]:
    """The command that runs the agent from a bare venv that only sees its own package (like its
    container image), not from this dev venv, whose editable-install hooks slow every start-up."""
    agent_venv = workdir / "agent-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(agent_venv)], check=True)
    site_dir = next((agent_venv / "lib").glob("python3*/site-packages"))
    (site_dir / "fleetkit_weights.pth").write_text(str(here / "images" / "weight-cache") + "\n")
    # ... plus its one compiled dependency on the data path (blake3: per-chunk digests).
    import importlib.util

    b3 = importlib.util.find_spec("blake3")
    if b3 is None or not b3.origin:
        raise SystemExit("blake3 is not installed (pip install -e images/weight-cache)")
    if Path(b3.origin).name == "__init__.py":
        (site_dir / "blake3").symlink_to(Path(b3.origin).parent)
    else:
        (site_dir / Path(b3.origin).name).symlink_to(b3.origin)
    # The image's ENTRYPOINT is the `fleetkit-weights` console script; this one does what it does.
    script = agent_venv / "bin" / "fleetkit-weights"
    script.write_text(
        f"#!{agent_venv / 'bin' / 'python'}\nimport sys\nfrom fleetkit_weights.fastpath import main\n"
        "sys.exit(main())\n"
    )
    script.chmod(0o755)
    return [str(script)]


@dataclass
class Bench:
    """What every timed run shares: the server, the agent command, the environment, the scratch space."""

    servers: Servers
    fw: list[str]  # the agent's command
    env: dict[str, str]
    workdir: Path
    n_bytes: int  # bytes every download must deliver
    ours_args: list[str]  # the agent's sync options common to every run

    @property
    def cache(self) -> Path:
        return self.workdir / "cache"

    def check(self, dest: Path, label: str) -> None:
        _n, b = tree_bytes(dest)
        if b < self.n_bytes:
            raise SystemExit(f"{label}: only {b} of {self.n_bytes} bytes arrived")

    def ours(self, extra: list[str], src_uri: str) -> Callable[[], Sample]:
        """A cold sync by the agent into a fresh cache."""

        def run() -> Sample:
            cache = self.cache
            cache.mkdir()
            self.servers.warm(src_uri[len(f"s3://{BUCKET}/") :])
            t = timed(
                self.fw + ["sync", src_uri, str(cache)] + self.ours_args + extra,
                self.env,
                "fleetkit-weights",
                self.servers,
            )
            self.check(cache / src_uri[len("s3://") :], "fleetkit-weights")
            shutil.rmtree(cache)
            return t

        return run

    def tool(
        self, label: str, cmd: Callable[[Path], list[str]], verify: bool = False
    ) -> Callable[[], Sample]:
        """Another tool's download of the model into a fresh directory."""

        def run() -> Sample:
            dest = self.workdir / "dest"
            self.servers.warm(PREFIX)
            t = timed(cmd(dest), self.env, label, self.servers)
            self.check(dest, label)
            if verify:  # the same sha256 work our sync does (OpenSSL via hashlib, 2 threads), afterwards
                files = sorted(str(p) for p in dest.rglob("*") if p.is_file())
                t += timed(
                    [sys.executable, "-c", SHA256_SCRIPT, *files], self.env, "sha256 verify", self.servers
                )
            shutil.rmtree(dest)
            return t

        return run


def build_runners(
    args: argparse.Namespace, bench: Bench, part_size: int, source: str, source_sha: str
) -> dict[str, Callable[[], Sample]]:
    """Every timed variant, by the name the table shows, in table order."""
    url = bench.servers.url
    bindir = Path(sys.executable).parent
    s5 = shutil.which("s5cmd", path=str(bindir)) or shutil.which("s5cmd") or "s5cmd"
    aws = shutil.which("aws", path=str(bindir)) or "aws"

    runners: dict[str, Callable[[], Sample]] = {"fleetkit-weights sync (cold, fsync)": bench.ours([], source)}
    if "sha256chunks" not in args.skip:
        runners["fleetkit-weights sync (cold, sha256 chunks)"] = bench.ours([], source_sha)
    if "nofsync" not in args.skip:
        runners["fleetkit-weights sync (cold, --no-fsync)"] = bench.ours(["--no-fsync"], source)
    if "buffered" not in args.skip:
        runners["fleetkit-weights sync (cold, --buffered-io)"] = bench.ours(["--buffered-io"], source)
    if args.low_concurrency and args.low_concurrency != args.concurrency:
        runners[f"fleetkit-weights sync (cold, fsync, c={args.low_concurrency})"] = bench.ours(
            ["--concurrency", str(args.low_concurrency)], source
        )

    def s5cmd(d: Path) -> list[str]:
        return [s5, "--endpoint-url", url, "cp", f"s3://{BUCKET}/{PREFIX}/*", str(d) + "/"]

    if "s5cmd" not in args.skip:
        runners["s5cmd cp (defaults)"] = bench.tool("s5cmd", s5cmd)
        runners["s5cmd cp, then sha256 of the files"] = bench.tool("s5cmd", s5cmd, verify=True)
        # s5cmd neither fsyncs nor waits for writeback: below the kernel's dirty-page limit its
        # data is still in memory when it exits (and the next run's sync flushes it untimed).
        runners["s5cmd cp, then sync (on disk, as ours)"] = bench.tool(
            "s5cmd", lambda d: ["sh", "-c", shlex.join(s5cmd(d)) + " && sync"]
        )
    if "awscli" not in args.skip:
        runners[AWSCLI] = bench.tool(
            "awscli",
            lambda d: [
                aws,
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                "--endpoint-url",
                url,
                f"s3://{BUCKET}/{PREFIX}",
                str(d),
            ],
        )
    if "boto3" not in args.skip:
        runners[f"boto3 download_file (c={args.concurrency})"] = bench.tool(
            "boto3",
            lambda d: [
                sys.executable,
                "-c",
                BOTO3_SCRIPT,
                url,
                BUCKET,
                PREFIX,
                str(d),
                str(args.concurrency),
                str(part_size),
            ],
        )
    return runners


def run_rounds(runners: dict[str, Callable[[], Sample]], rounds: int) -> dict[str, list[Sample]]:
    """Each runner ``rounds`` times, interleaved, with a different one going first each round."""
    times: dict[str, list[Sample]] = {k: [] for k in runners}
    names = list(runners)
    for rnd in range(rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]  # rotate who goes first
        for name in order:
            times[name].append(runners[name]())
            print(f"  round {rnd + 1}: {name}: {times[name][-1].seconds:.2f}s", file=sys.stderr)
    return times


def warm_syncs(bench: Bench, source: str, warm_runs: int) -> tuple[list[float], float]:
    """(seconds of each warm sync as a whole process, the agent's own seconds for the warm check)."""
    cache = bench.cache
    cache.mkdir()
    timed(bench.fw + ["sync", source, str(cache)] + bench.ours_args, bench.env, "fleetkit-weights cold")
    warm = [
        timed(
            bench.fw + ["sync", source, str(cache)] + bench.ours_args, bench.env, "fleetkit-weights warm"
        ).seconds
        for _ in range(warm_runs)
    ]
    # The agent's own account of the warm check (manifest GET, marker, file sizes, lease
    # touch), without interpreter start-up and imports.
    inner = subprocess.run(
        bench.fw + ["sync", source, str(cache), "--json"] + bench.ours_args,
        env=bench.env,
        capture_output=True,
        text=True,
        check=True,
    )
    t_warm_inner = json.loads(inner.stdout)["seconds"]
    shutil.rmtree(cache)
    return warm, t_warm_inner


def print_report(
    args: argparse.Namespace,
    server: str,
    n_files: int,
    n_bytes: int,
    times: dict[str, list[Sample]],
    warm: list[float],
    t_warm_inner: float,
) -> None:
    """The table of medians, the warm sync's share of a cold one, and the targets."""

    def med(name: str, field: str = "seconds") -> float:
        return statistics.median(getattr(x, field) for x in times[name])

    t_warm = statistics.median(warm)
    t_cold = med("fleetkit-weights sync (cold, fsync)")
    ours_rate = n_bytes / MB / t_cold
    print()
    print(
        f"{n_files} files, {n_bytes / 1e9:.2f} GB from {server} on {os.cpu_count()} CPUs; median of "
        f"{args.rounds} rounds; ours: --concurrency {args.concurrency} --part-size {args.part_size} "
        f"(ranges follow the manifest's 16 MiB chunks); CPU = user+sys seconds"
    )
    hdr = (
        f"{'tool':44} {'seconds':>8} {'MB/s':>8} {'best MB/s':>10} {'tool CPU':>9} {'server CPU':>11} "
        f"{'ours/tool':>10}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name in times:
        rate = n_bytes / MB / med(name)
        best = n_bytes / MB / min(x.seconds for x in times[name])
        print(
            f"{name:44} {med(name):8.2f} {rate:8.1f} {best:10.1f} {med(name, 'client_cpu'):9.2f} "
            f"{med(name, 'server_cpu'):11.2f} {ours_rate / rate:9.2f}x"
        )
    print(
        f"{f'fleetkit-weights sync (warm, median of {len(warm)})':44} {t_warm:8.3f} "
        f"{'':>8} {'':>10} {'':>9} {'':>11}   = {100 * t_warm / t_cold:.2f}% of cold"
    )
    print(
        f"{'  of which the warm check itself':44} {t_warm_inner:8.3f} {'':>8} {'':>10} {'':>9} {'':>11}   "
        f"(the rest is interpreter start-up and imports)"
    )
    print()
    checks = [("cold >= 1.0x s5cmd", "s5cmd cp (defaults)", 1.0), ("cold >= 3.0x awscli", AWSCLI, 3.0)]
    for label, name, want in checks:
        if name in times:
            ratio = med(name) / t_cold
            print(f"target {label:24} {ratio:5.2f}x  {'met' if ratio >= want else 'missed'}")
    print(
        f"target {'warm < 2% of cold':24} {100 * t_warm / t_cold:5.2f}%  {'met' if t_warm < 0.02 * t_cold else 'missed'}"
    )


def main() -> int:
    args = parse_args()
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here / "images" / "weight-cache"))
    from fleetkit_weights.cli import parse_size

    part_size = parse_size(args.part_size)
    server = pick_server(args.server)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fleetkit-weights-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = bench_env()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(here / "images" / "weight-cache" / "fleetkit_weights"),
        ],
        check=True,
    )
    servers = None
    try:
        servers = Servers(server, workdir)
        url = servers.url
        env["AWS_ENDPOINT_URL"] = url
        total = int(args.total_gb * 1e9)
        src = workdir / "src"
        print(
            f"server: {server} at {url}; data: {args.files} shards, {total / 1e9:.2f} GB; workdir {workdir}"
        )
        make_shards(src, total, args.files)
        create_bucket(url)
        fw = make_agent(workdir, here)
        source = f"s3://{BUCKET}/{PREFIX}"
        t_pub = timed(fw + ["publish", str(src), source, "--quiet"], env, "publish").seconds
        n_files, n_bytes = tree_bytes(src)
        print(f"published with fleetkit-weights in {t_pub:.1f}s ({n_bytes / MB / t_pub:.0f} MB/s)")
        # The same shards with SHA-256 chunk digests (format_version 1), to measure what BLAKE3 changes.
        source_sha = f"s3://{BUCKET}/{PREFIX}-sha256"
        if "sha256chunks" not in args.skip:
            timed(fw + ["publish", str(src), source_sha, "--quiet", "--chunk-hash", "sha256"], env, "publish")
        shutil.rmtree(src)  # only the server's copies are read from here on (see the page-cache note above)

        ours_args = ["--concurrency", str(args.concurrency), "--part-size", str(part_size), "--quiet"]
        bench = Bench(servers, fw, env, workdir, n_bytes, ours_args)
        runners = build_runners(args, bench, part_size, source, source_sha)
        # One untimed pass first: on a VM the first writes into fresh page-cache memory are much
        # slower than later ones, which would penalise whichever tool happened to run first.
        bench.ours(["--no-fsync"], source)()
        times = run_rounds(runners, args.rounds)
        warm, t_warm_inner = warm_syncs(bench, source, args.warm_runs)
        print_report(args, server, n_files, n_bytes, times, warm, t_warm_inner)
        return 0
    finally:
        if servers is not None:
            servers.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
