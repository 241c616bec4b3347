"""Properties of the simulator over generated fleets (1–4 clusters, 1–2 networks)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetkit.simulate.core import Request
from fleetkit.simulate.engine import Simulator
from fleetkit.simulate.scenarios import Scenario
from tests.simulate.fleets import (
    OUTLIER,
    TOPOLOGY,
    aggregate_cluster_patch,
    cluster,
    deployment,
    fleet,
    fqdn,
    route,
    rule,
    scaled,
    service,
    vs,
)

BIG, SMALL = "org/big", "org/small"


@st.composite
def fleets(draw, aggregate_fallback: bool = False):
    n = draw(st.integers(1, 4))
    nets = draw(st.integers(1, 2))
    outlier = draw(st.sampled_from([OUTLIER, {**OUTLIER, "maxEjectionPercent": 10}, None]))
    failover = draw(st.sampled_from([TOPOLOGY, None]))
    weights = draw(st.lists(st.integers(0, 3), min_size=2, max_size=2).filter(lambda w: sum(w) > 0))
    stacks = {}
    for i in range(n):
        c = cluster(f"c{i + 1}", f"net{i % nets + 1}", f"r{i + 1}")
        objs = [
            service("big"),
            service("small"),
            rule(
                "big",
                {"l4": {"fleetkit.dev/gpu-class": "l4"}, "h100": {"fleetkit.dev/gpu-class": "h100"}},
                failover=failover,
                outlier=outlier,
            ),
            rule("small", failover=failover, outlier=outlier),
        ]
        big = draw(st.integers(0, 3))
        if big:
            objs += [
                deployment(
                    "big", "big", served=[BIG], gpu=draw(st.sampled_from(["l4", "h100"])), replicas=big
                ),
                scaled("big", draw(st.integers(0, big)), big),
            ]
        small = draw(st.integers(0, 2))
        if small:
            objs.append(deployment("small", "small", served=[SMALL, BIG], replicas=small))
        if aggregate_fallback:
            agg = "agg"
            members = [f"outbound|8000||{fqdn('big')}", f"outbound|8000||{fqdn('small')}"]
            objs.append(
                {
                    "apiVersion": "networking.istio.io/v1alpha3",
                    "kind": "EnvoyFilter",
                    "metadata": {"name": "fb", "namespace": "llm"},
                    "spec": {
                        "configPatches": [
                            aggregate_cluster_patch(agg, members),
                            {
                                "applyTo": "HTTP_ROUTE",
                                "match": {"routeConfiguration": {"vhost": {"route": {"name": "big"}}}},
                                "patch": {"operation": "MERGE", "value": {"route": {"cluster": agg}}},
                            },
                        ]
                    },
                }
            )
            objs.append(vs(route("big", [("big", None, 100)])))
        else:
            objs.append(vs(route("big", [("big", "l4", weights[0]), ("big", "h100", weights[1])])))
        stacks[c] = objs
    return fleet(stacks)


@st.composite
def scenarios(draw, fl):
    names = sorted(fl.clusters)
    down = draw(st.sets(st.sampled_from(names), max_size=len(names)))
    zero = (
        draw(st.sets(st.sampled_from([w.key for w in fl.workloads]), max_size=3)) if fl.workloads else set()
    )
    eject = draw(st.sampled_from([(), (("big", "v1"),), (("small", "v1"),)]))
    return Scenario(
        "generated",
        clusters=frozenset(down),
        replicas=tuple((k, "zero") for k in sorted(zero)),
        ejected=eject,
    )


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_probabilities_sum_to_one(data):
    fl = data.draw(fleets())
    sc = data.draw(scenarios(fl))
    origin = data.draw(st.sampled_from(sorted(fl.clusters)))
    dist = Simulator(fl).run(Request(BIG, origin, concurrency=data.draw(st.sampled_from([0, 5000]))), sc)
    assert abs(sum(dist.values()) - 1) < 1e-9
    assert all(p >= 0 for p in dist.values())


@SETTINGS
@given(st.data())
def test_removing_endpoints_never_adds_a_destination(data):
    """Every pod that serves after a cluster goes down or a Deployment is scaled to zero had pods
    before, and nothing is ever served from what was removed."""
    fl = data.draw(fleets(aggregate_fallback=data.draw(st.booleans())))
    origin = data.draw(st.sampled_from(sorted(fl.clusters)))
    sc = data.draw(scenarios(fl))
    sim = Simulator(fl)
    after = {(o.cluster, o.model) for o in sim.run(Request(BIG, origin), sc) if o.ok}
    alive_before = {(w.cluster, w.model) for w in fl.workloads if sum(Scenario().pods(fl, w).values())}
    alive_after = {(w.cluster, w.model) for w in fl.workloads if sum(sc.pods(fl, w).values())}
    assert after <= alive_before
    assert after <= alive_after
    assert not any(c in sc.clusters for c, _ in after)


@SETTINGS
@given(st.data())
def test_healthy_never_serves_the_fallback_while_the_primary_has_endpoints(data):
    """With the aggregate-cluster fallback (R8), all healthy: if the primary has a pod anywhere, the
    fallback model never answers."""
    fl = data.draw(fleets(aggregate_fallback=True))
    origin = data.draw(st.sampled_from(sorted(fl.clusters)))
    healthy = Scenario()
    primary_up = any(w.model == "big" and sum(healthy.pods(fl, w).values()) for w in fl.workloads)
    dist = Simulator(fl).run(Request(BIG, origin), healthy)
    if primary_up:
        assert not [o for o in dist if o.ok and o.model == "small"], dist
