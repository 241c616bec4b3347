"""Pure builders of a model service: Deployment, PDB, ServiceAccount, prefetch DaemonSet."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

import pytest
from model_fixtures import ROOT, all_plans, demo_fleet, plan_for, spec_of, stub_identity, with_model

from components import model_plan
from components import model_render as mr
from fleetkit import catalog
from fleetkit.images import VLLM, VLLM_VERSION, WEIGHTS_AGENT
from fleetkit.resolve import resolve
from fleetkit.scheduling import pod_scheduling
from fleetkit.schema import validate_objects
from fleetkit.spec import RegionStackSpec
from fleetkit.verify import vllm_args


def deployment(stack: str, model: str, **changes: Any) -> dict[str, Any]:
    spec = with_model(spec_of(stack), model, **changes) if changes else None
    plan = plan_for(stack, model, spec=spec)
    return mr.build_deployment(plan, stub_identity(plan))


def pod(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]


def container(dep: dict[str, Any], name: str = "vllm") -> dict[str, Any]:
    spec = pod(dep)
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --------------------------------------------------------------------------- engine
def test_deployment_identity_and_pinned_image():
    dep = deployment("aws-us-east-1", "llama-3-8b")
    assert dep["metadata"]["name"] == "llama-3-8b"
    assert dep["metadata"]["namespace"] == "llm"
    c = container(dep)
    assert c["image"] == f"docker.io/vllm/vllm-openai:v{VLLM_VERSION}"  # fleetkit:images, registry explicit
    assert ":latest" not in c["image"] and c["image"].split(":")[1].startswith("v")
    assert c["command"] == ["vllm", "serve"]


def test_engine_args_every_typed_flag_explicit():
    args = container(deployment("aws-us-east-1", "llama-3-8b"))["args"]
    assert args[0] == "/models/fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct"
    assert flag(args, "--tensor-parallel-size") == "1"
    assert flag(args, "--pipeline-parallel-size") == "1"
    assert flag(args, "--max-model-len") == "8192"
    assert flag(args, "--gpu-memory-utilization") == "0.92"
    assert "--enable-prefix-caching" in args and "--no-enable-prefix-caching" not in args
    assert flag(args, "--max-num-seqs") == "256"
    assert flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--host") == "0.0.0.0"
    assert flag(args, "--port") == "8000"


def test_prefix_caching_off_is_explicit_and_extra_args_come_last():
    dep = deployment(
        "aws-us-east-1",
        "llama-3-8b",
        enable_prefix_caching=False,
        quantization="fp8",
        extra_args=["--kv-cache-dtype", "fp8", "--max-num-batched-tokens", "8192"],
    )
    args = container(dep)["args"]
    assert "--disable-prefix-caching" in args and "--enable-prefix-caching" not in args
    assert vllm_args.check_args(args) == []  # what vLLM 0.33.0's parser accepts
    assert flag(args, "--quantization") == "fp8"
    assert args[-4:] == ["--kv-cache-dtype", "fp8", "--max-num-batched-tokens", "8192"]
    assert args.index("--port") < args.index("--kv-cache-dtype")


def test_quantized_weight_dtype_becomes_dtype_auto():
    args = container(deployment("aws-us-east-1", "llama-3-8b", dtype="fp8"))["args"]
    assert flag(args, "--dtype") == "auto"


def test_no_model_answers_to_another_models_name():
    # llama-3-8b backs llama-3-70b (resilience.fallback), yet it serves only its own name: a request for
    # the 70B must never be answered by the 8B under the 70B's name (issue 13)
    args = container(deployment("aws-us-east-1", "llama-3-8b"))["args"]
    i = args.index("--served-model-name")
    assert args[i + 1] == "meta-llama/Llama-3.1-8B-Instruct" and args[i + 2].startswith("--")
    # the primary serves only its own
    args70 = container(deployment("aws-us-east-1", "llama-3-70b"))["args"]
    assert args70[args70.index("--served-model-name") + 2] == "--tensor-parallel-size"


# --------------------------------------------------------------------------- resources
@pytest.mark.parametrize(
    ("stack", "model", "gpus"),
    [
        ("aws-us-east-1", "llama-3-8b", 1),
        ("aws-us-east-1", "llama-3-70b", 4),
        ("gcp-europe-west4", "llama-3-70b", 4),
        ("azure-eastus", "llama-3-8b", 1),
    ],
)
def test_gpu_requests_equal_limits_equal_tp_times_pp(stack, model, gpus):
    res = container(deployment(stack, model))["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == str(gpus)


def test_pipeline_parallel_multiplies_gpus():
    res = container(deployment("aws-us-east-1", "llama-3-70b", tensor_parallel=2, pipeline_parallel=2))[
        "resources"
    ]
    assert res["limits"]["nvidia.com/gpu"] == "4"


def test_cpu_and_memory_are_the_catalog_share_of_the_node():
    entry = catalog.lookup("aws", "g6.12xlarge")  # 4 x L4, 48 vCPU, 192 GiB
    assert entry is not None
    res = container(deployment("aws-us-east-1", "llama-3-8b"))["resources"]
    assert res["requests"]["cpu"] == str(int(48 / 4 * model_plan.CPU_SHARE))
    assert (
        res["requests"]["memory"]
        == res["limits"]["memory"]
        == f"{int(entry.ram_gib / 4 * model_plan.MEMORY_SHARE)}Gi"
    )
    assert "cpu" not in res["limits"]  # no CPU throttling of the engine
    whole = container(deployment("aws-us-east-1", "llama-3-70b"))["resources"]  # 4 of 4 GPUs
    assert int(whole["requests"]["cpu"]) == int(48 * model_plan.CPU_SHARE)


def test_shm_is_a_memory_emptydir_larger_with_tensor_parallel():
    for model, size in (("llama-3-8b", "2Gi"), ("llama-3-70b", "16Gi")):
        dep = deployment("aws-us-east-1", model)
        shm = next(v for v in pod(dep)["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": size}
        mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
        assert mounts["/dev/shm"]["name"] == "shm"
        # shm counts against the pod memory: it must fit inside the limit
        limit = int(container(dep)["resources"]["limits"]["memory"].removesuffix("Gi"))
        assert int(size.removesuffix("Gi")) * 4 <= limit


# --------------------------------------------------------------------------- probes and lifecycle
def test_startup_probe_budget_covers_slow_70b_loads():
    c = container(deployment("aws-us-east-1", "llama-3-70b"))
    sp = c["startupProbe"]
    assert sp["httpGet"] == {"path": "/health", "port": "http"}
    assert sp["failureThreshold"] * sp["periodSeconds"] >= 30 * 60
    small = container(deployment("aws-us-east-1", "llama-3-8b"))["startupProbe"]
    assert small["failureThreshold"] * small["periodSeconds"] >= 15 * 60
    assert small["failureThreshold"] < sp["failureThreshold"]


def test_readiness_and_liveness_probe_health():
    c = container(deployment("aws-us-east-1", "llama-3-8b"))
    rp, lp = c["readinessProbe"], c["livenessProbe"]
    assert rp["httpGet"]["path"] == lp["httpGet"]["path"] == "/health"
    # readiness reacts fast; liveness only restarts after a sustained failure
    assert rp["periodSeconds"] * rp["failureThreshold"] < lp["periodSeconds"] * lp["failureThreshold"]
    assert rp is not lp and rp["httpGet"] is not lp["httpGet"]


def test_drain_prestop_fits_in_the_grace_period():
    dep = deployment("aws-us-east-1", "llama-3-8b")
    sleep = container(dep)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < sleep <= model_plan.MAX_DRAIN_SECONDS
    assert pod(dep)["terminationGracePeriodSeconds"] > sleep
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert dep["spec"]["progressDeadlineSeconds"] > container(dep)["startupProbe"]["failureThreshold"] * 10


def test_pod_basics():
    dep = deployment("aws-us-east-1", "llama-3-8b")
    p, c = pod(dep), container(dep)
    assert p["enableServiceLinks"] is False
    assert p["serviceAccountName"] == "llama-3-8b"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_LOGGING_LEVEL"]
    assert not any(k.startswith("AWS_") for k in env)  # object-store credentials only for the agent
    assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsUser"] == mr.VLLM_UID
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    spread = p["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_replicas_left_to_the_autoscaler():
    assert "replicas" not in deployment("aws-us-east-1", "llama-3-8b")["spec"]
    data = spec_of("aws-us-east-1").model_dump()
    data["policies"]["autoscaling"]["default"]["engine"] = "none"
    plan = plan_for("aws-us-east-1", "llama-3-8b", spec=RegionStackSpec.model_validate(data))
    assert mr.build_deployment(plan, stub_identity(plan))["spec"]["replicas"] == 1


# --------------------------------------------------------------------------- labels and scheduling
def test_pod_labels_for_routing_and_fallback():
    plan = plan_for("aws-us-east-1", "llama-3-8b")
    labels = mr.build_deployment(plan, stub_identity(plan))["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "llama-3-8b"
    assert labels["version"] == "v1"
    assert labels["fleetkit.dev/model"] == "llama-3-8b"
    assert labels["fleetkit.dev/gpu-class"] == "l4"
    assert labels["fleetkit.dev/tier"] == "standard"
    assert labels["sidecar.istio.io/inject"] == "true"
    # fallback chains are Envoy aggregate clusters (policies.fallback), not pod labels
    assert not [k for k in labels if k.startswith("fallback.fleetkit.dev/")]


def test_canary_version_shares_the_service_label():
    plan = plan_for("aws-us-east-1", "llama-3-70b-v2")
    labels = mr.build_deployment(plan, stub_identity(plan))["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "llama-3-70b" and labels["version"] == "v2"
    assert labels["fleetkit.dev/model"] == "llama-3-70b-v2"
    assert labels["fleetkit.dev/gpu-class"] == "l40s"


def test_every_policy_selector_for_a_model_matches_its_pods(fleet):
    """Service selectors and DestinationRule subsets rendered by the policy layer select real pods."""
    for stack, model in all_plans():
        spec = spec_of(stack)
        plan = plan_for(stack, model)
        labels = mr.build_deployment(plan, stub_identity(plan))["spec"]["template"]["metadata"]["labels"]
        for obj in spec.policies.render(fleet.context_for(stack)):
            if obj["kind"] == "DestinationRule":
                host = obj["spec"]["host"].split(".")[0]
                if host != plan.service:
                    continue
                for subset in obj["spec"].get("subsets", []):
                    sel = subset["labels"]
                    versions = {sel.get("version")} - {None}
                    gpus = {sel.get("fleetkit.dev/gpu-class")} - {None}
                    if (not versions or plan.model.version in versions) and (
                        not gpus or plan.gpu_class in gpus
                    ):
                        assert all(labels.get(k) == v for k, v in sel.items()), (stack, model, subset)
            if obj["kind"] == "Service" and obj["metadata"]["name"] == plan.service:
                assert all(labels.get(k) == v for k, v in obj["spec"]["selector"].items())


def test_tolerations_and_node_selector_come_from_the_pool():
    for stack, model in all_plans():
        spec = spec_of(stack)
        dep = deployment(stack, model)
        expected = pod_scheduling(spec, spec.models[model].pool or "")
        assert pod(dep)["nodeSelector"] == expected.node_selector
        assert pod(dep)["tolerations"] == expected.tolerations
    azure = pod(deployment("azure-eastus", "llama-3-8b"))
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Equal",
        "value": "present",
        "effect": "NoSchedule",
    } in azure["tolerations"]


def test_priority_class_follows_the_tier(fleet):
    dep = deployment("aws-us-east-1", "llama-3-70b")
    assert pod(dep)["priorityClassName"] == "fleetkit-premium"
    rendered = {
        o["metadata"]["name"]
        for o in spec_of("aws-us-east-1").policies.render(fleet.context_for("aws-us-east-1"))
        if o["kind"] == "PriorityClass"
    }
    assert "fleetkit-premium" in rendered
    assert "priorityClassName" not in pod(deployment("aws-us-east-1", "llama-3-8b", tier=None))


# --------------------------------------------------------------------------- weight cache
def test_sync_init_container_uses_the_agent_cli_and_a_read_only_serving_mount():
    plan = plan_for("aws-us-east-1", "llama-3-8b")
    dep = mr.build_deployment(plan, stub_identity(plan))
    inits = pod(dep)["initContainers"]
    assert [c["name"] for c in inits] == ["weights-sync", "weights-lease"]
    sync, lease = inits
    assert sync["image"] == WEIGHTS_AGENT.ref
    assert [*sync["command"], *sync["args"][:3]] == [
        "fleetkit-weights",
        "sync",
        "s3://fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct",
        "/cache/models",
    ]
    assert flag(sync["args"], "--concurrency") == "16"
    assert int(flag(sync["args"], "--max-cache-bytes")) == plan.max_cache_bytes
    assert {e["name"] for e in sync["env"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # the lease is a native sidecar holding exactly the path vLLM serves
    assert lease["restartPolicy"] == "Always"
    assert lease["args"] == ["lease", "/cache/models/fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct"]
    assert "env" not in lease
    vllm = container(dep)
    mounts = {m["name"]: m for m in vllm["volumeMounts"]}
    assert mounts["weights-cache"] == {"name": "weights-cache", "mountPath": "/models", "readOnly": True}
    assert vllm["args"][0] == lease["args"][1].replace("/cache/models", "/models", 1)
    sync_mount = next(m for m in sync["volumeMounts"] if m["name"] == "weights-cache")
    assert sync_mount.get("readOnly") is not True
    cache = next(v for v in pod(dep)["volumes"] if v["name"] == "weights-cache")
    assert cache["hostPath"] == {"path": model_plan.NODE_CACHE_DIR, "type": "DirectoryOrCreate"}


def test_cache_capacity_follows_the_nodes_local_disks():
    nvme = plan_for("aws-us-east-1", "llama-3-8b")  # g6.12xlarge AL2023: 3760 GB instance store RAID0
    assert nvme.max_cache_bytes == int(3760 * 10**9 * 0.6)
    l40s = plan_for("aws-us-east-1", "llama-3-70b")  # g6e.12xlarge AL2023: 3800 GB instance store RAID0
    assert l40s.max_cache_bytes == int(3800 * 10**9 * 0.6)
    data = spec_of("aws-us-east-1").model_dump()
    data["node_pools"]["l40s"]["aws"] = {"ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}  # no RAID0: data volume
    br = model_plan.plan_model(
        resolve(RegionStackSpec.model_validate(data)),
        "llama-3-70b",
        demo_fleet().context_for("aws-us-east-1"),
        stack="aws-us-east-1",
    )
    assert br.max_cache_bytes == int(200 * 2**30 * 0.4)
    gke = plan_for("gcp-europe-west4", "llama-3-8b")  # local_ssd_count: 2
    assert gke.max_cache_bytes == int(2 * 375 * 2**30 * 0.6)
    spec = spec_of("aws-us-east-1")
    data = spec.model_dump()
    data["node_pools"]["l4"]["aws"]["instance_store_cache"] = False
    off = model_plan.plan_model(
        resolve(RegionStackSpec.model_validate(data)),
        "llama-3-8b",
        demo_fleet().context_for("aws-us-east-1"),
        stack="aws-us-east-1",
    )
    assert off.max_cache_bytes == int(200 * 2**30 * 0.4)


def test_prefetch_daemonset_only_for_hot_models():
    assert (
        mr.build_prefetch_daemonset(
            plan_for("aws-us-east-1", "llama-3-70b-v2"),
            stub_identity(plan_for("aws-us-east-1", "llama-3-70b-v2")),
        )
        is None
    )
    plan = plan_for("aws-us-east-1", "llama-3-8b")
    ds = mr.build_prefetch_daemonset(plan, stub_identity(plan))
    assert ds is not None and ds["kind"] == "DaemonSet" and ds["metadata"]["name"] == "llama-3-8b-prefetch"
    spec = ds["spec"]["template"]["spec"]
    sched = pod_scheduling(spec_of("aws-us-east-1"), "l4")
    assert spec["nodeSelector"] == sched.node_selector and spec["tolerations"] == sched.tolerations
    warm = spec["containers"][0]
    assert [*warm["command"], *warm["args"][:3]] == [
        "fleetkit-weights",
        "warm",
        "s3://fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct",
        "/cache/models",
    ]
    assert flag(warm["args"], "--interval") == str(mr.WARM_INTERVAL_SECONDS)
    labels = ds["spec"]["template"]["metadata"]["labels"]
    # no Service or subset may select prefetch pods, and they are not in the mesh
    assert "app" not in labels and "version" not in labels
    assert labels["sidecar.istio.io/inject"] == "false"
    assert spec["serviceAccountName"] == "llama-3-8b"
    kinds = [
        o["kind"]
        for o in mr.render_model(
            plan_for("aws-us-east-1", "llama-3-70b-v2"),
            stub_identity(plan_for("aws-us-east-1", "llama-3-70b-v2")),
        )
    ]
    assert "DaemonSet" not in kinds


def test_pdb_and_service_account():
    plan = plan_for("aws-us-east-1", "llama-3-8b")
    pdb = mr.build_pdb(plan)
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == plan.selector
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    sa = mr.build_service_account(plan, stub_identity(plan))
    assert sa["metadata"]["name"] == "llama-3-8b"
    assert sa["metadata"]["annotations"] == {"example.com/identity": "stub"}
    assert sa["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------- validity
@pytest.mark.parametrize(("stack", "model"), all_plans())
def test_every_object_is_schema_valid(stack, model):
    plan = plan_for(stack, model)
    objs = mr.render_model(plan, stub_identity(plan))
    assert validate_objects(objs) == []
    names = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(set(names)) == len(names)


def test_images_are_pinned_and_agent_tag_matches_its_package():
    for ref in (VLLM, WEIGHTS_AGENT):
        assert ref.tag and ref.tag != "latest"
    pyproject = tomllib.loads((ROOT / "images" / "weight-cache" / "pyproject.toml").read_text())
    assert WEIGHTS_AGENT.tag == pyproject["project"]["version"]
    dockerfile = ROOT / "images" / "vllm" / "Dockerfile"
    if dockerfile.exists() and f"vllm/vllm-openai:{VLLM.tag}" not in dockerfile.read_text():
        pytest.fail(f"images/vllm/Dockerfile does not build FROM {VLLM.ref} (fleetkit/images.py)")


def test_builders_are_pure():
    code = "import sys, components.model_render, fleetkit.model_checks; print('pulumi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pinned_weights_digest_reaches_sync_and_prefetch_and_the_agent_accepts_it():
    from fleetkit_weights.cli import build_parser

    pin = "sha256:" + "5e" * 32  # any well-formed digest: rendering only passes it through
    spec = with_model(spec_of("aws-us-east-1"), "llama-3-8b", weights_digest=pin)
    plan = plan_for("aws-us-east-1", "llama-3-8b", spec=spec)
    sync = container(mr.build_deployment(plan, stub_identity(plan)), "weights-sync")
    ds = mr.build_prefetch_daemonset(plan, stub_identity(plan))
    assert ds is not None
    warm = ds["spec"]["template"]["spec"]["containers"][0]
    for c in (sync, warm):
        assert flag(c["args"], "--manifest-digest") == pin
        args = build_parser().parse_args(c["args"])  # the agent's own parser takes the rendered line
        assert args.manifest_digest in (pin, [pin])
    unpinned = plan_for("aws-us-east-1", "llama-3-8b")
    assert "--manifest-digest" not in mr.agent_sync_args(unpinned) + mr.agent_warm_args(unpinned)


@pytest.mark.parametrize("bad", ["sha256:ABC", "5e" * 32, "sha512:" + "0" * 64])
def test_weights_digest_must_be_a_sha256_pin(bad):
    with pytest.raises(ValueError, match="weights_digest"):
        with_model(spec_of("aws-us-east-1"), "llama-3-8b", weights_digest=bad)
