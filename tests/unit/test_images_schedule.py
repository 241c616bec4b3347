"""Issue 14.10 image references per fleet/stack, and scheduled capacity (KEDA cron + prewarm)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleetkit.spec import ImageSpec, ImagesSpec
from policies.autoscaling import AutoscalingPolicy, CapacityWindow

DIGEST = "sha256:" + "ab" * 32


def test_image_reference_parts_and_digest() -> None:
    img = ImageSpec(
        registry="123456789012.dkr.ecr.us-east-1.amazonaws.com",
        repository="fleetkit/fleetkit-weights",
        tag="0.1.0",
        digest=DIGEST,
    )
    assert (
        img.reference()
        == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetkit/fleetkit-weights:0.1.0@{DIGEST}"
    )


def test_a_mirror_stands_in_for_public_registries_only() -> None:
    images = ImagesSpec(mirror="europe-west4-docker.pkg.dev/acme/dockerhub")
    assert (
        images.vllm.reference(images.mirror)
        == "europe-west4-docker.pkg.dev/acme/dockerhub/vllm/vllm-openai:v0.33.0"
    )
    private = ImageSpec(registry="acme.azurecr.io", repository="fleetkit/vllm", tag="v1")
    assert private.reference(images.mirror) == "acme.azurecr.io/fleetkit/vllm:v1"


def test_private_cluster_with_public_images_and_no_mirror_is_reported() -> None:
    assert ImagesSpec().unreachable() == []  # nodes with internet egress
    unreachable = ImagesSpec(internet_egress=False).unreachable()
    assert [name for name, _ in unreachable] == ["vllm", "weights_agent"]
    assert ImagesSpec(internet_egress=False, mirror="acme.azurecr.io/hub").unreachable() == []


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"registry": "ghcr.io", "repository": "x/y", "tag": "latest"}, "pin a version tag"),
        ({"registry": "ghcr.io", "repository": "x/y", "tag": "1", "digest": "md5:abc"}, "sha256"),
        ({"registry": "https://ghcr.io", "repository": "x/y", "tag": "1"}, "pattern"),
    ],
)
def test_bad_image_references_are_rejected(data: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        ImageSpec.model_validate(data)


def test_model_pods_use_the_configured_images() -> None:
    from tests.models.model_fixtures import plan_for

    plan = plan_for("aws-us-east-1", "llama-3-8b")
    assert plan.vllm_image == "docker.io/vllm/vllm-openai:v0.33.0"
    assert plan.agent_image == "ghcr.io/fleetkit/fleetkit-weights:0.1.0"


WINDOW = {
    "name": "business",
    "timezone": "America/New_York",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "08:00",
    "end": "18:00",
    "min_replicas": 2,
    "prewarm": "45m",
}


def test_a_window_renders_a_keda_cron_trigger_warmed_ahead() -> None:
    policy = AutoscalingPolicy.model_validate({"models": {"m": {"schedule": [WINDOW]}}})
    (so,) = policy.render_for(
        model="m", deployment="m", namespace="llm", served_name="org/m", min_replicas=1, max_replicas=3
    )
    cron = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
    assert cron == [
        {
            "type": "cron",
            "name": "window-business",
            "metadata": {
                "timezone": "America/New_York",
                "start": "15 7 * * 1,2,3,4,5",
                "end": "0 18 * * 1,2,3,4,5",
                "desiredReplicas": "2",
            },
        }
    ]
    assert so["spec"]["minReplicaCount"] == 1  # outside the window the queue triggers decide


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"end": "07:00"}, "must be after start"),
        ({"start": "00:10"}, "before midnight"),
        ({"days": ["mon", "mon"]}, "twice"),
    ],
)
def test_bad_windows_are_rejected(change: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        CapacityWindow.model_validate({**WINDOW, **change})


def test_a_schedule_needs_keda() -> None:
    with pytest.raises(ValidationError, match="needs engine: keda"):
        AutoscalingPolicy.model_validate(
            {"default": {"engine": "hpa", "kv_cache_target": None, "schedule": [WINDOW]}}
        )


def test_a_scheduled_model_gets_the_prefetch_daemonset_even_when_not_hot() -> None:
    from components import model_render as mr
    from components.model_plan import plan_model
    from fleetkit.resolve import resolve
    from fleetkit.spec import RegionStackSpec
    from tests.models.model_fixtures import demo_fleet, plan_for, spec_of, stub_identity

    plan = plan_for("aws-us-east-1", "llama-3-70b-v2")  # hot: false, no schedule: no prefetch
    assert not plan.model.hot and mr.build_prefetch_daemonset(plan, stub_identity(plan)) is None
    data = spec_of("aws-us-east-1").model_dump(mode="json")
    data["policies"]["autoscaling"]["models"]["llama-3-70b-v2"] = {"schedule": [WINDOW]}
    spec = RegionStackSpec.model_validate(data)
    scheduled = plan_model(
        resolve(spec), "llama-3-70b-v2", demo_fleet().context_for("aws-us-east-1"), stack="aws-us-east-1"
    )
    ds = mr.build_prefetch_daemonset(scheduled, stub_identity(scheduled))
    assert ds is not None and ds["metadata"]["name"] == "llama-3-70b-v2-prefetch"


def test_a_window_above_the_models_max_is_a_spec_error() -> None:
    from policies import LocalModel, PolicySet, RenderContext, ServiceInfo, Variant

    ctx = RenderContext(
        namespace="llm",
        services={"m": ServiceInfo("m", "org/m", (Variant("m", "v1", "l4"),))},
        local_models=(LocalModel("m", "m", "org/m", 1, 2),),
    )
    ps = PolicySet.model_validate(
        {
            "routing": {"routes": [], "default": {"to": [{"model": "m"}]}},
            "autoscaling": {"models": {"m": {"schedule": [{**WINDOW, "min_replicas": 3}]}}},
        }
    )
    (issue,) = ps.check(ctx)
    assert issue.rule == "autoscaling.window-above-max"
    assert issue.path == ("autoscaling", "models", "m", "schedule", 0, "min_replicas") and issue.value == 3
