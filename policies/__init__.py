"""Serving policies as typed objects that render to plain Istio / Kubernetes / KEDA manifests.

Pure: nothing here imports ``pulumi``; rendering, linting and reviewing need no engine.
"""

from policies.autoscaling import AutoscalerSpec, AutoscalingPolicy
from policies.context import LocalModel, RenderContext, ServiceInfo, Variant
from policies.failover import FailoverPolicy
from policies.load_balancing import LoadBalancerSpec, LoadBalancingPolicy
from policies.policy_set import PolicySet
from policies.qos import QosPolicy, Tier
from policies.resilience import CircuitBreaker, ResiliencePolicy, ResilienceSpec, Retries
from policies.routing import Destination, Mirror, Route, RouteMatch, RoutingPolicy
from policies.security import SecurityPolicy

__all__ = [
    "AutoscalerSpec",
    "AutoscalingPolicy",
    "CircuitBreaker",
    "Destination",
    "FailoverPolicy",
    "LoadBalancerSpec",
    "LoadBalancingPolicy",
    "LocalModel",
    "Mirror",
    "PolicySet",
    "QosPolicy",
    "RenderContext",
    "ResiliencePolicy",
    "ResilienceSpec",
    "Retries",
    "Route",
    "RouteMatch",
    "RoutingPolicy",
    "SecurityPolicy",
    "ServiceInfo",
    "Tier",
    "Variant",
]
