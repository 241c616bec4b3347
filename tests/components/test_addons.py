"""Add-on Helm releases under Pulumi mocks: NVIDIA device plugin where needed, KEDA when enabled."""

from __future__ import annotations

from components.addons import DEVICE_PLUGIN_VERSION, KEDA_VERSION
from tests.components.infra_mocks import build_infra, demo_spec, run

RELEASE = "kubernetes:helm.sh/v3:Release"


def releases(stack: str) -> dict[str, dict]:
    spec = demo_spec(stack)
    mocks, _ = run(stack, spec, build_infra(stack, spec))
    return {r.plain_inputs["chart"]: r.plain_inputs for r in mocks.of_type(RELEASE)}


def test_eks_with_al2023_gets_device_plugin_and_keda():
    rel = releases("aws-us-east-1")
    assert sorted(rel) == ["keda", "kube-prometheus-stack", "nvidia-device-plugin"]
    dp = rel["nvidia-device-plugin"]
    assert dp["version"] == DEVICE_PLUGIN_VERSION
    assert dp["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    assert dp["values"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in dp["values"][
        "tolerations"
    ]
    keda = rel["keda"]
    assert keda["version"] == KEDA_VERSION and keda["namespace"] == "keda"
    assert keda["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}


def test_gke_installs_no_device_plugin():
    assert sorted(releases("gcp-europe-west4")) == ["keda", "kube-prometheus-stack"]


def test_aks_gets_keda_and_the_device_plugin():
    # Azure autoscales with KEDA like the others (an HPA custom metric would need prometheus-adapter)
    assert sorted(releases("azure-eastus")) == ["keda", "kube-prometheus-stack", "nvidia-device-plugin"]


def test_monitoring_stack_selects_every_namespace_and_watches_dashboards():
    mon = releases("aws-us-east-1")["kube-prometheus-stack"]
    assert mon["namespace"] == "monitoring"
    assert mon["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    prom = mon["values"]["prometheus"]["prometheusSpec"]
    assert (
        prom["podMonitorSelectorNilUsesHelmValues"] is False
        and prom["ruleSelectorNilUsesHelmValues"] is False
    )
    assert mon["values"]["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
