"""Issue 14 items 3, 4 and 6: what one cluster's routes may weight, mirror and fail over to.

Pure: a hand-built :class:`RenderContext` per cluster (stack), the policy set rendered for it, and the
spec checks that refuse the defective forms.
"""

from __future__ import annotations

from typing import Any

from policies import LocalModel, PolicySet, RenderContext, ServiceInfo, Variant

#: us-west-2-like: l4 always on, a10g scale-to-zero; a100 exists only in another cluster ("eus").
VARIANTS = {
    "small": ServiceInfo(
        "small",
        "org/small",
        (
            Variant("small", "v1", "l4", "usw2", min_replicas=1, max_replicas=6),
            Variant("small-a10g", "v1", "a10g", "usw2", min_replicas=0, max_replicas=2),
            Variant("small-a100", "v1", "a100-80gb", "eus", min_replicas=1, max_replicas=4),
            Variant("small-use1", "v1", "l4", "use1", min_replicas=1, max_replicas=4),
            Variant("small-use1-l40s", "v1", "l40s", "use1", min_replicas=1, max_replicas=2),
        ),
    ),
    "big": ServiceInfo(
        "big",
        "org/big",
        (
            Variant("big", "v1", "l40s", "use1", min_replicas=1, max_replicas=3),
            Variant("big-v2", "v2", "l40s", "use1", min_replicas=1, max_replicas=1),
            Variant("big-gcp", "v1", "h100", "euw4", min_replicas=1, max_replicas=2),
        ),
    ),
}
LOCAL = {
    "usw2": (
        LocalModel("small", "small", "org/small", 1, 6),
        LocalModel("small-a10g", "small", "org/small", 0, 2),
    ),
    "use1": (
        LocalModel("small-use1", "small", "org/small", 1, 4),
        LocalModel("small-use1-l40s", "small", "org/small", 1, 2),
        LocalModel("big", "big", "org/big", 1, 3, "v1"),
        LocalModel("big-v2", "big", "org/big", 1, 1, "v2"),
    ),
    "euw4": (LocalModel("big-gcp", "big", "org/big", 1, 2, "v1"),),
}


def ctx(stack: str) -> RenderContext:
    return RenderContext(namespace="llm", services=VARIANTS, stack=stack, local_models=LOCAL[stack])


def policy(**sections: Any) -> PolicySet:
    base: dict[str, Any] = {"routing": {"routes": [], "default": {"to": [{"model": "small"}]}}}
    base.update(sections)
    return PolicySet.model_validate(base)


def default_route(ps: PolicySet, stack: str) -> list[tuple[str | None, int]]:
    vs = next(o for o in ps.render(ctx(stack)) if o["kind"] == "VirtualService")
    return [(d["destination"].get("subset"), d["weight"]) for d in vs["spec"]["http"][-1]["route"]]


GPU_WEIGHTS = {
    "load_balancing": {"models": {"small": {"gpu_weights": {"l4": 2, "a10g": 1, "a100-80gb": 3, "l40s": 1}}}}
}


# --------------------------------------------------------------------------- item 3: GPU weights per cluster
def test_a_cluster_never_weights_a_class_that_is_remote_or_may_be_at_zero() -> None:
    # us-west-2: a100-80gb runs only in Azure, a10g may be at zero: no split, the whole model
    assert default_route(policy(**GPU_WEIGHTS), "usw2") == [(None, 100)]


def test_a_cluster_with_two_always_on_classes_splits_over_those_only() -> None:
    assert default_route(policy(**GPU_WEIGHTS), "use1") == [("l4", 200), ("l40s", 100)]


def test_a_split_part_with_no_replica_anywhere_is_a_spec_error() -> None:
    ps = policy(
        routing={
            "routes": [
                {
                    "name": "r",
                    "match": [{"model": "small"}],
                    "to": [
                        {"model": "small", "gpu_class": "a10g", "weight": 1},
                        {"model": "small", "gpu_class": "l4", "weight": 3},
                    ],
                }
            ],
            "default": {"to": [{"model": "small"}]},
        }
    )
    issues = [i for i in ps.check(ctx("usw2")) if i.rule == "routing.weighted-subset-may-be-empty"]
    assert [(i.path, i.value) for i in issues] == [(("routing", "routes", 0, "to", 0), 1)]


# --------------------------------------------------------------------------- item 6: mirror local and sized
MIRROR = {
    "routing": {
        "routes": [
            {
                "name": "canary",
                "match": [{"model": "big", "cohort": "beta"}],
                "to": [
                    {"model": "big", "version": "v1", "weight": 90},
                    {"model": "big", "version": "v2", "weight": 10},
                ],
            },
            {
                "name": "big",
                "match": [{"model": "big"}],
                "to": [{"model": "big", "version": "v1"}],
                "mirror": {"model": "big", "version": "v2", "percent": 5},
            },
        ],
        "default": {"to": [{"model": "small"}]},
    }
}


def _mirrors(ps: PolicySet, stack: str) -> list[Any]:
    vs = next(o for o in ps.render(ctx(stack)) if o["kind"] == "VirtualService")
    return [h.get("mirror") for h in vs["spec"]["http"] if h["name"] == "big"]


def test_mirror_is_rendered_only_where_the_target_runs() -> None:
    ps = policy(**MIRROR)
    assert _mirrors(ps, "use1") == [
        {"host": "big.llm.svc.cluster.local", "port": {"number": 8000}, "subset": "v2"}
    ]
    assert _mirrors(ps, "euw4") == [None]  # v2 runs only in use1: no mirror across clouds
    assert ps.check(ctx("use1")) == [] and ps.check(ctx("euw4")) == []


def test_a_mirror_larger_than_its_target_is_a_spec_error() -> None:
    data = MIRROR["routing"]
    data["routes"][1]["mirror"]["percent"] = 30  # 0.30 + 0.10 canary share of 3 replicas = 1.2 > 1
    ps = policy(routing=data)
    (issue,) = ps.check(ctx("use1"))
    assert issue.rule == "routing.mirror-overloads-target"
    assert issue.path == ("routing", "routes", 1, "mirror", "percent") and issue.value == 30
    assert "1.20 replicas" in issue.message and "at most 1" in issue.message


# --------------------------------------------------------------------------- item 4: fallback chains
def test_a_fallback_chain_cannot_be_one_part_of_a_split() -> None:
    ps = policy(
        resilience={"fallback": {"big": ["small"]}},
        routing={
            "routes": [
                {
                    "name": "r",
                    "match": [{"model": "big"}],
                    "to": [{"model": "big", "weight": 9}, {"model": "small", "weight": 1}],
                }
            ],
            "default": {"to": [{"model": "small"}]},
        },
    )
    assert [i.rule for i in ps.check(ctx("use1"))] == ["routing.fallback-in-split"]


def test_the_fallback_aggregate_lists_the_primary_first_in_every_cluster() -> None:
    ps = policy(
        resilience={"fallback": {"big": ["small"]}},
        routing={
            "routes": [{"name": "big", "match": [{"model": "big"}], "to": [{"model": "big"}]}],
            "default": {"to": [{"model": "small"}]},
        },
    )
    for stack in ("usw2", "use1", "euw4"):  # with and without a local primary
        ef = next(o for o in ps.render(ctx(stack)) if o["metadata"]["name"] == "fleetkit-fallback")
        cluster = ef["spec"]["configPatches"][0]["patch"]["value"]
        assert cluster["cluster_type"]["typed_config"]["clusters"] == [
            "outbound|8000|v1|big.llm.svc.cluster.local",
            "outbound|8000||small.llm.svc.cluster.local",
        ]
        assert ef["spec"]["workloadSelector"] == {"labels": {"istio": "fleetkit-ingress"}}
