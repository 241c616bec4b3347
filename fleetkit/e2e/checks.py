"""The named end-to-end checks of ``./dev e2e`` (``fleetkit.e2e.runner``), each a function of one
:class:`Context`: the running gateway, the vLLM servers behind it, the OTLP receiver and the figures.

Each check returns one line of detail when it passes and raises (``AssertionError`` for a failed
expectation) when it does not; :class:`Checks` runs them in :data:`CHECKS` order and records every
verdict, so one failing check does not hide the others. What each check proves is told in the
runner's module docstring; the OpenAI SDK calls are the official client's
(https://github.com/openai/openai-python: ``chat.completions.create``, ``completions.create``,
``NotFoundError``, ``RateLimitError``), and ``vllm:num_requests_waiting`` is vLLM's own gauge
(https://docs.vllm.ai/en/latest/design/metrics.html).
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from fleetkit.e2e.gateway import Gateway
from fleetkit.e2e.otlp import LogRecord, OtlpReceiver
from policies.telemetry import USAGE_PROVIDER_NAME

#: the models the demo stack routes between, and the served name each answers to
MODELS = ("llama-3-8b", "llama-3-70b")
#: batch requests queued ahead of the premium one (one runs, the rest wait: --max-num-seqs 1)
QUEUED_BATCH = 4
#: the conversation every chat request sends
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "the gateway routes"}]


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Context:
    """What the checks run against, and the figures they add to ``figures.json``."""

    gw: Gateway
    #: model -> ``http://127.0.0.1:<port>`` of its vLLM, bypassing the gateway
    direct: dict[str, str]
    #: model -> the name its vLLM serves it under
    served: dict[str, str]
    receiver: OtlpReceiver
    #: requests per latency figure
    samples: int
    figures: dict[str, Any] = field(default_factory=dict)

    def client(self, **claims: Any) -> openai.OpenAI:
        """The official client through the gateway, with a test token carrying ``claims``."""
        return openai.OpenAI(
            base_url=f"{self.gw.url}/v1", api_key=self.gw.token(**claims), max_retries=0, timeout=120
        )


class Checks:
    """Runs named checks and keeps each one's verdict: ``(name, passed, detail or the error)``."""

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


def routing(ctx: Context) -> str:
    seen = []
    for name in MODELS:
        reply = ctx.client().chat.completions.create(model=ctx.served[name], messages=MESSAGES, max_tokens=4)
        assert reply.model == ctx.served[name], (reply.model, ctx.served[name])
        seen.append(reply.model)
    text = ctx.client().completions.create(model=ctx.served["llama-3-70b"], prompt="the", max_tokens=4)
    assert text.model == ctx.served["llama-3-70b"]
    return ", ".join(seen) + " (chat) and completions"


def alias(ctx: Context) -> str:
    reply = ctx.client().chat.completions.create(model="llama-3.1-70b", messages=MESSAGES, max_tokens=4)
    assert reply.model == ctx.served["llama-3-70b"]
    return f"llama-3.1-70b -> {reply.model}"


def unknown(ctx: Context) -> str:
    try:
        ctx.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4)
    except openai.NotFoundError as err:
        assert isinstance(err.body, dict), err.body
        return f"404 {err.body.get('code')}"
    raise AssertionError("no 404")


def forged(ctx: Context) -> str:
    before = sum(
        v for k, v in ctx.gw.stats().items() if "|v1-premium|" in k and k.endswith("upstream_rq_total")
    )
    reply = ctx.client(sub="forger").chat.completions.create(
        model=ctx.served["llama-3-70b"],
        messages=MESSAGES,
        max_tokens=4,
        extra_headers={"x-fleetkit-tier": "premium", "x-fleetkit-cohort": "beta"},
    )
    after = sum(
        v for k, v in ctx.gw.stats().items() if "|v1-premium|" in k and k.endswith("upstream_rq_total")
    )
    assert reply.model == ctx.served["llama-3-70b"] and after == before
    return "premium subset counter unchanged"


def premium(ctx: Context) -> str:
    before = sum(v for k, v in ctx.gw.stats().items() if "-premium|" in k and k.endswith("upstream_rq_total"))
    ctx.client(plan="enterprise").chat.completions.create(
        model=ctx.served["llama-3-70b"], messages=MESSAGES, max_tokens=4
    )
    after = sum(v for k, v in ctx.gw.stats().items() if "-premium|" in k and k.endswith("upstream_rq_total"))
    assert after == before + 1
    return "premium subset, vLLM accepted priority 0 (scheduling-policy priority)"


def over_limit(ctx: Context) -> str:
    c = ctx.client(tenant="tiny", sub="tiny-user")
    for _ in range(3):
        c.chat.completions.create(model=ctx.served["llama-3-8b"], messages=MESSAGES, max_tokens=2)
    try:
        c.chat.completions.create(model=ctx.served["llama-3-8b"], messages=MESSAGES, max_tokens=2)
    except openai.RateLimitError as err:
        return f"429 for tenant tiny after 3 requests, Retry-After {err.response.headers.get('retry-after')}"
    raise AssertionError("no 429")


def waiting(url: str) -> float:
    """Requests waiting in the queue of the vLLM at ``url`` (its ``/metrics``)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.findall(r"^vllm:num_requests_waiting\{[^}]*\} ([0-9.e+-]+)$", text, re.M)
    return sum(float(v) for v in found)


def overtaking(ctx: Context) -> str:
    model, tokens = ctx.served["llama-3-8b"], 160
    finished: dict[str, float] = {}
    errors: list[BaseException] = []

    def call(label: str, c: openai.OpenAI) -> None:
        try:
            c.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=tokens, extra_body={"ignore_eos": True}
            )
            finished[label] = time.monotonic()
        except BaseException as exc:  # reported below
            errors.append(exc)

    batch, premium = (
        ctx.client(plan="free", sub="queue-batch"),
        ctx.client(plan="enterprise", sub="queue-premium"),
    )
    threads = [
        threading.Thread(target=call, args=(f"batch-{i}", batch), daemon=True) for i in range(QUEUED_BATCH)
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    deadline, queued = time.monotonic() + 30, 0.0
    while time.monotonic() < deadline:
        queued = waiting(ctx.direct["llama-3-8b"])
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
    ctx.figures["priority_order"] = order
    ctx.figures["priority_premium_latency_s"] = round(finished["premium"] - sent, 3)
    # first-come-first-served would finish premium last; priority lets it pass every waiting request
    assert order.index("premium") <= 1, order
    return (
        f"premium sent after {QUEUED_BATCH} batch requests ({queued:g} waiting in vLLM) finished "
        f"#{order.index('premium') + 1}: {' < '.join(order)}"
    )


def tokens_per_tenant(ctx: Context) -> str:
    reply = ctx.client(tenant="acme", sub="acme-user").chat.completions.create(
        model=ctx.served["llama-3-70b"], messages=MESSAGES, max_tokens=7, extra_body={"ignore_eos": True}
    )
    assert reply.usage is not None
    deadline = time.monotonic() + 15
    records: list[LogRecord] = []
    while time.monotonic() < deadline and not records:
        records = [
            r
            for r in ctx.receiver.records(USAGE_PROVIDER_NAME)
            if r.attributes.get("fleetkit_tenant") == "acme"
        ]
        time.sleep(0.2)
    assert len(records) == 1, records
    attrs = records[0].attributes
    got = (attrs["fleetkit_model"], int(attrs["prompt_tokens"]), int(attrs["completion_tokens"]))
    assert got == ("llama-3-70b", reply.usage.prompt_tokens, reply.usage.completion_tokens), got
    return f"usage record tenant acme, model {got[0]}: {got[1]} prompt + {got[2]} completion tokens = vLLM's usage"


def _stream_times(ctx: Context, direct: bool = False) -> tuple[list[float], float]:
    """Arrival times (s) of the content chunks of one 64-token stream through Envoy (or straight
    from vLLM, ``direct``), and its total."""
    times = []
    client = (
        openai.OpenAI(base_url=f"{ctx.direct['llama-3-8b']}/v1", api_key="-", max_retries=0, timeout=120)
        if direct
        else ctx.client()
    )
    start = time.monotonic()
    stream = client.chat.completions.create(
        model=ctx.served["llama-3-8b"],
        messages=MESSAGES,
        max_tokens=64,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.monotonic() - start)
    return times, time.monotonic() - start


#: streams measured before the check gives up: a proxy that buffers fails every one of them, while a
#: CPU hiccup on a shared runner (a slow prefill, tokens flushed in one burst) spoils only one
STREAM_ATTEMPTS = 3


def streaming(ctx: Context) -> str:
    seen: list[dict[str, float]] = []
    for _ in range(STREAM_ATTEMPTS):
        times, total = _stream_times(ctx)
        assert len(times) >= 10, len(times)
        first, last = times[0], times[-1]
        gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
        figures = {
            "chunks": len(times),
            "first_chunk_s": round(first, 4),
            "last_chunk_s": round(last, 4),
            "total_s": round(total, 4),
            "median_gap_ms": round(gaps[len(gaps) // 2] * 1000, 2),
        }
        seen.append(figures)
        # a buffered response would deliver every chunk at the end: first ~ last ~ total
        if (
            first < 0.5 * total
            and last - first > 0.4 * total
            and sum(1 for g in gaps if g > 0.001) >= len(gaps) // 2
        ):
            ctx.figures["stream"] = {**figures, "attempts": len(seen)}
            return (
                f"{len(times)} chunks: first at {first * 1000:.0f} ms, last at {last * 1000:.0f} ms of "
                f"{total * 1000:.0f} ms, median gap {figures['median_gap_ms']} ms (stream {len(seen)} of "
                f"at most {STREAM_ATTEMPTS})"
            )
    ctx.figures["stream"] = {**seen[-1], "attempts": len(seen)}
    # which side bunched the chunks: the same stream straight from vLLM, for the report
    times, total = _stream_times(ctx, direct=True)
    vllm = {"chunks": len(times), "first_chunk_s": round(times[0], 4), "last_chunk_s": round(times[-1], 4)}
    raise AssertionError(
        f"no stream arrived incrementally in {STREAM_ATTEMPTS} attempts: {seen}; "
        f"the same stream straight from vLLM: {vllm}, total {total:.4f} s"
    )


def ttft(ctx: Context) -> str:
    firsts = []
    for _ in range(ctx.samples):
        start = time.monotonic()
        for chunk in ctx.client().chat.completions.create(
            model=ctx.served["llama-3-8b"], messages=MESSAGES, max_tokens=8, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                firsts.append((time.monotonic() - start) * 1000)
                break
    ctx.figures["ttft_through_envoy_ms"] = {
        "p50": round(statistics.median(firsts), 2),
        "max": round(max(firsts), 2),
        "samples": len(firsts),
    }
    return f"time to first token through Envoy p50 {ctx.figures['ttft_through_envoy_ms']['p50']} ms ({len(firsts)} streams)"


def tracing(ctx: Context) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for trace_id, spans in ctx.receiver.by_trace().items():
            services = {s.service for s in spans}
            if "fleetkit-ingress" in services and any(x.startswith("vllm-") for x in services):
                names = sorted({f"{s.service}:{s.name}" for s in spans})
                gateway = {s.span_id for s in spans if s.service == "fleetkit-ingress"}
                engine = [s for s in spans if s.service.startswith("vllm-")]
                # vLLM continued the gateway's context: its span's parent is the gateway's span
                assert any(s.parent_id in gateway for s in engine), spans
                ctx.figures["trace"] = {"trace_id": trace_id, "spans": names}
                return f"trace {trace_id[:12]}… spans {names}, vLLM's span a child of the gateway's"
        time.sleep(1)
    seen = {s.service for s in ctx.receiver.spans}
    raise AssertionError(f"no trace with both gateway and vLLM spans (services seen: {sorted(seen)})")


def latency(ctx: Context) -> str:
    body = json.dumps({"model": ctx.served["llama-3-8b"], "messages": MESSAGES, "max_tokens": 1}).encode()
    headers = {
        "authorization": f"Bearer {ctx.gw.token(plan='enterprise')}",
        "content-type": "application/json",
    }

    def timed(url: str, hdrs: dict[str, str]) -> list[float]:
        out = []
        for _ in range(ctx.samples):
            t = time.monotonic()
            req = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **hdrs})
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
            out.append((time.monotonic() - t) * 1000)
        return out

    via = timed(f"{ctx.gw.url}/v1/chat/completions", headers)
    plain = timed(f"{ctx.direct['llama-3-8b']}/v1/chat/completions", {})
    ctx.figures["latency_ms"] = {
        "through_envoy_p50": round(statistics.median(via), 2),
        "direct_p50": round(statistics.median(plain), 2),
        "through_envoy_p95": round(sorted(via)[int(0.95 * (len(via) - 1))], 2),
        "direct_p95": round(sorted(plain)[int(0.95 * (len(plain) - 1))], 2),
        "samples": ctx.samples,
    }
    lat = ctx.figures["latency_ms"]
    return (
        f"p50 {lat['through_envoy_p50']} ms through Envoy vs {lat['direct_p50']} ms direct "
        f"({ctx.samples} requests, max_tokens 1)"
    )


#: every check, in the order it runs (the names are what ``figures.json`` and the e2e test report)
CHECKS: tuple[tuple[str, Callable[[Context], str]], ...] = (
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
)


def drive(ctx: Context) -> Checks:
    """Run every check against ``ctx`` (its figures fill ``ctx.figures``)."""
    checks = Checks()
    for name, fn in CHECKS:
        checks.run(name, partial(fn, ctx))
    return checks
