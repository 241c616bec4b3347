"""Property tests: any valid policy set renders schema-valid, deterministic, self-consistent manifests."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fleetkit.schema import validate_objects
from policies import LocalModel, PolicySet, RenderContext, ServiceInfo, Variant

CTX = RenderContext(
    namespace="llm",
    services={
        "alpha": ServiceInfo(
            "alpha", "org/alpha", (Variant("alpha", "v1", "l4"), Variant("alpha-v2", "v2", "h100"))
        ),
        "beta": ServiceInfo("beta", "org/beta", (Variant("beta", "v1", "a10g"),)),
        "gamma": ServiceInfo(
            "gamma", "org/gamma", (Variant("gamma", "v1", "l4"), Variant("gamma-b", "v1", "a100-80gb"))
        ),
    },
    local_models=(
        LocalModel("alpha", "alpha", "org/alpha", 0, 3),
        LocalModel("beta", "beta", "org/beta", 1, 2),
    ),
    fleet_regions=frozenset({"us-east-1", "us-west-2", "eastus"}),
)
MODELS = sorted(CTX.services)
HEADER = st.from_regex(r"x-[a-z]{1,8}", fullmatch=True)
VALUE = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)


@st.composite
def destination(draw: Any, weighted: bool = True) -> dict[str, Any]:
    model = draw(st.sampled_from(MODELS))
    info = CTX.services[model]
    d: dict[str, Any] = {"model": model}
    if draw(st.booleans()):
        d["version"] = draw(st.sampled_from(sorted(info.versions)))
    if draw(st.booleans()):
        d["gpu_class"] = draw(st.sampled_from(sorted(info.gpu_classes(d.get("version")))))
    if weighted:
        d["weight"] = draw(st.integers(1, 1000))
    return d


@st.composite
def route(draw: Any, name: str) -> dict[str, Any]:
    dests = draw(
        st.lists(
            destination(),
            min_size=1,
            max_size=3,
            unique_by=lambda d: (d["model"], d.get("version"), d.get("gpu_class")),
        )
    )
    match = draw(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "model": st.sampled_from(MODELS),  # a match on a model no service has is an error
                    "task": VALUE,
                    "headers": st.dictionaries(HEADER, VALUE, min_size=1, max_size=2),
                    "uri_prefix": st.just("/v1/"),
                },
            ).filter(bool),
            min_size=1,
            max_size=2,
        )
    )
    r: dict[str, Any] = {"name": name, "match": match, "to": dests}
    if draw(st.booleans()):
        m = draw(destination(weighted=False))
        m["percent"] = draw(st.floats(0.5, 100))
        r["mirror"] = m
    return r


@st.composite
def policy_sets(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(st.from_regex(r"r[a-z0-9]{1,6}", fullmatch=True), max_size=4, unique=True))
    routing = {
        "routes": [draw(route(n)) for n in names],
        "default": {"to": [draw(destination())]},
        "tls_credential": draw(st.one_of(st.none(), st.just("cert"))),
    }
    ps: dict[str, Any] = {"routing": routing}
    lb_models: dict[str, Any] = {}
    for m in draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=3)):
        kind = draw(st.sampled_from(["least_request", "round_robin", "random", "consistent_hash"]))
        spec: dict[str, Any] = {"algorithm": kind}
        if kind == "consistent_hash":
            spec["hash_on"] = draw(
                st.sampled_from([{"header": "x-session"}, {"cookie": {"name": "sid", "ttl": "10m"}}])
            )
            if draw(st.booleans()):
                spec.update(hash_algorithm="maglev", maglev_table_size=65537)
        if draw(st.booleans()):
            spec["gpu_weights"] = {g: draw(st.integers(1, 5)) for g in sorted(CTX.services[m].gpu_classes())}
        lb_models[m] = spec
    ps["load_balancing"] = {"models": lb_models}
    attempts = draw(st.integers(0, 3))
    per_try = draw(st.integers(30, 300))
    retries: dict[str, Any] = {"attempts": attempts}
    timeout = per_try + draw(st.integers(0, 100))
    if attempts and draw(st.booleans()):
        # a per-try timeout is only valid when it does not cut a generation short (>= the route timeout)
        retries["per_try_timeout"] = f"{timeout}s"
    res: dict[str, Any] = {"default": {"timeout": f"{timeout}s", "retries": retries}}
    if draw(st.booleans()):
        primary = draw(st.sampled_from(MODELS))
        rest = [m for m in MODELS if m != primary]
        res["fallback"] = {
            primary: draw(st.lists(st.sampled_from(rest), min_size=1, max_size=2, unique=True))
        }
    ps["resilience"] = res
    if draw(st.booleans()):
        ps["qos"] = {
            "default_tier": "std",
            "tiers": {
                "gold": {"priority": 100, "max_requests": 400, "max_pending_requests": 40},
                "std": {
                    "priority": 50,
                    "max_requests": draw(st.integers(50, 400)),
                    "max_pending_requests": 20,
                },
                "bulk": {
                    "priority": 1,
                    "max_requests": draw(st.integers(1, 50)),
                    "max_pending_requests": 1,
                    "preemptible": True,
                },
            },
        }
    ps["failover"] = draw(
        st.sampled_from(
            [
                {"mode": "priority"},
                {
                    "mode": "regions",
                    "regions": ["us-east-1", "us-west-2", "eastus"],
                    "priority_labels": ["topology.istio.io/network"],
                },
            ]
        )
    )
    ps["autoscaling"] = draw(
        st.sampled_from(
            [
                {"default": {"engine": "keda"}},
                {"default": {"engine": "hpa", "kv_cache_target": None}},
                {"default": {"engine": "keda", "kv_cache_target": None, "fallback_replicas": 1}},
            ]
        )
    )
    ps["security"] = draw(
        st.sampled_from(
            [
                {"require_jwt": False},
                {"jwt": [{"issuer": "https://id.example/", "audiences": ["a"]}]},
                {
                    "jwt": [{"issuer": "https://id.example/"}],
                    "extra_callers": [{"namespace": "batch", "service_account": "runner"}],
                },
            ]
        )
    )
    return ps


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets())
def test_any_valid_policy_renders_schema_valid_deterministic_manifests(data):
    ps = PolicySet.model_validate(data)
    # two rules bound what a policy may ask for; their own tests are in test_policies.py
    bounded = {
        "routing.fallback-in-split",
        "routing.mirror-overloads-target",
        "routing.weighted-subset-may-be-empty",
    }
    issues = ps.check(CTX)
    assume(not any(i.rule in bounded for i in issues))
    assert issues == []
    first = ps.render(CTX)
    assert first == PolicySet.model_validate(data).render(CTX)  # deterministic
    assert validate_objects(first) == []
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in first]
    assert len(names) == len(set(names))
    # referenced subsets == defined subsets (no dangling, no unused)
    vs = next(o for o in first if o["kind"] == "VirtualService")
    used = {
        (d["destination"]["host"], d["destination"]["subset"])
        for h in vs["spec"]["http"]
        for d in h["route"]
        if "subset" in d["destination"]
    }
    used |= {
        (h["mirror"]["host"], h["mirror"]["subset"])
        for h in vs["spec"]["http"]
        if "subset" in h.get("mirror", {})
    }
    # fallback chains: the aggregate clusters' members (outbound|port|subset|host) need their subsets too
    for ef in (o for o in first if o["kind"] == "EnvoyFilter"):
        for patch in ef["spec"]["configPatches"]:
            for member in (
                patch["patch"]["value"].get("cluster_type", {}).get("typed_config", {}).get("clusters", [])
            ):
                _, _, subset, host = member.split("|")
                if subset:
                    used.add((host, subset))
    defined = {
        (dr["spec"]["host"], s["name"])
        for dr in first
        if dr["kind"] == "DestinationRule"
        for s in dr["spec"].get("subsets", [])
    }
    assert used == defined
    for dr in (o for o in first if o["kind"] == "DestinationRule"):
        assert dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets())
def test_kit_rendered_policies_have_no_error_lint_findings(data):
    from fleetkit.lint import lint_objects

    objs = PolicySet.model_validate(data).render(CTX)
    findings = lint_objects([("rendered", o) for o in objs])
    errors = [f for f in findings if f.severity == "error"]
    assert errors == [], "\n".join(f"{f.rule} {f.object}: {f.message}" for f in errors)
