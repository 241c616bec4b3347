"""EKS GPU node groups under Pulumi mocks: AMI, capacity type, taints, launch template, autoscaling."""

from __future__ import annotations

import base64

import pytest

from components.node_pools import build_nodeadm_user_data
from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "aws-us-east-1"
NG = "aws:eks/nodeGroup:NodeGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture(scope="module")
def mocks():
    spec = demo_spec(STACK)
    pools = spec.model_dump()["node_pools"]
    # the demo runs l40s on AL2023 (its NVMe holds both 70B versions); keep the Bottlerocket path under test
    pools["l40s"]["aws"] = {"ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}
    pools["l40s"]["spot"] = True
    spec = with_changes(spec, node_pools=pools)
    return run(STACK, spec, build_infra(STACK, spec))[0]


def test_al2023_on_demand_pool(mocks):
    ng = mocks.one(NG, "-l4-ng").plain_inputs
    assert ng["amiType"] == "AL2023_x86_64_NVIDIA"
    assert ng["instanceTypes"] == ["g6.12xlarge"]
    assert ng["capacityType"] == "ON_DEMAND"
    assert ng["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 4}
    assert ng["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert ng["labels"]["fleetkit.dev/gpu-class"] == "l4"
    assert ng["labels"]["fleetkit.dev/pool"] == "l4"
    assert ng["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    assert ng["nodeGroupNamePrefix"] == "l4-"
    assert len(ng["subnetIds"]) == 2  # the pool's two zones


def test_bottlerocket_spot_pool_scales_to_zero(mocks):
    ng = mocks.one(NG, "-l40s-ng").plain_inputs
    assert ng["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert ng["capacityType"] == "SPOT"
    assert ng["scalingConfig"]["minSize"] == 0 and ng["scalingConfig"]["maxSize"] == 6


def test_launch_templates_disks_and_raid0(mocks):
    al2023 = mocks.one(LT, "-l4-lt").plain_inputs
    (root,) = al2023["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda" and root["ebs"]["volumeSize"] == 200
    assert root["ebs"]["volumeType"] == "gp3" and root["ebs"]["encrypted"] == "true"
    user_data = base64.b64decode(al2023["userData"]).decode()
    assert "Content-Type: application/node.eks.aws" in user_data
    assert "kind: NodeConfig" in user_data and "strategy: RAID0" in user_data
    assert al2023["metadataOptions"]["httpTokens"] == "required"
    # pods must not reach IMDS (and the node role) past their own IRSA identity
    assert al2023["metadataOptions"]["httpPutResponseHopLimit"] == 1
    bottlerocket = mocks.one(LT, "-l40s-lt").plain_inputs
    devices = {d["deviceName"]: d["ebs"]["volumeSize"] for d in bottlerocket["blockDeviceMappings"]}
    assert devices == {"/dev/xvda": 4, "/dev/xvdb": 200}
    assert "userData" not in bottlerocket  # nodeadm is AL2023-only
    ng = mocks.one(NG, "-l4-ng").plain_inputs
    assert ng["launchTemplate"]["id"].startswith("lt-") and ng["launchTemplate"]["version"] == "1"


def test_cluster_autoscaler_tags_for_scale_from_zero(mocks):
    tags = {
        t.plain_inputs["tag"]["key"]: t.plain_inputs["tag"]["value"]
        for t in mocks.of_type("aws:autoscaling/tag:Tag")
        if t.name.startswith(f"{STACK}-l40s-")
    }
    assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert tags["k8s.io/cluster-autoscaler/fleetkit-use1"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "4"
    assert tags["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags["k8s.io/cluster-autoscaler/node-template/label/fleetkit.dev/pool"] == "l40s"
    asgs = {
        t.plain_inputs["autoscalingGroupName"]
        for t in mocks.of_type("aws:autoscaling/tag:Tag")
        if t.name.startswith(f"{STACK}-l40s-")
    }
    assert len(asgs) == 1 and asgs.pop().startswith("eks-l40s-")


def test_instance_store_cache_off_drops_the_user_data():
    spec = demo_spec(STACK)
    pools = {k: v.model_dump() for k, v in spec.node_pools.items()}
    pools["l4"]["aws"] = {"ami_type": "AL2023_x86_64_NVIDIA", "instance_store_cache": False}
    spec = with_changes(spec, node_pools=pools)
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    assert "userData" not in mocks.one(LT, "-l4-lt").plain_inputs
    assert build_nodeadm_user_data(False) is None
