"""Unit tests for the GPU instance catalog (pure: no engine, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetkit import catalog
from fleetkit.catalog import GpuInstanceType

REPO = Path(__file__).resolve().parents[2]

# Accelerator type names GKE accepts (REFERENCE d.3).
GKE_ACCELERATORS = {
    "nvidia-tesla-t4",
    "nvidia-l4",
    "nvidia-tesla-a100",
    "nvidia-a100-80gb",
    "nvidia-h100-80gb",
    "nvidia-h100-mega-80gb",
    "nvidia-h200-141gb",
    "nvidia-b200",
    "nvidia-gb200",
}

REQUIRED = {
    "aws": [
        "g5.xlarge",
        "g5.2xlarge",
        "g5.12xlarge",
        "g5.48xlarge",
        "g6.xlarge",
        "g6.12xlarge",
        "g6.48xlarge",
        "g6e.xlarge",
        "g6e.12xlarge",
        "g6e.48xlarge",
        "p4d.24xlarge",
        "p4de.24xlarge",
        "p5.48xlarge",
        "p5e.48xlarge",
        "p5en.48xlarge",
    ],
    "gcp": [
        *(f"g2-standard-{n}" for n in (4, 8, 12, 16, 24, 32, 48, 96)),
        *(f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)),
        *(f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)),
        "a3-highgpu-8g",
        "a3-megagpu-8g",
        "a3-ultragpu-8g",
    ],
    "azure": [
        "Standard_NC4as_T4_v3",
        "Standard_NC8as_T4_v3",
        "Standard_NC16as_T4_v3",
        "Standard_NC64as_T4_v3",
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND96amsr_A100_v4",
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
        "Standard_ND96isr_H100_v5",
        "Standard_ND96isr_H200_v5",
    ],
}

ALL = catalog.instance_types()


# ------------------------------------------------------------------------------------ consistency


@pytest.mark.parametrize("t", ALL, ids=lambda t: f"{t.cloud}:{t.name}")
def test_entry_is_consistent(t: GpuInstanceType) -> None:
    assert t.gpu_count > 0
    assert t.gpu_memory_gib > 0
    assert t.vcpu > 0 and t.ram_gib > 0 and t.local_nvme_gb >= 0
    assert t.source.strip()
    if t.cloud == "gcp":
        assert t.gke_accelerator in GKE_ACCELERATORS
        assert t.name.startswith(t.family + "-")
    else:
        assert t.gke_accelerator is None
    if t.cloud == "aws":
        assert t.name.startswith(t.family + ".")
    if t.cloud == "azure":
        assert t.name.startswith("Standard_")
    if not t.verified:
        assert "unverified" in t.note, "an unverified entry must say what is unverified and why"
    assert t.gpu_model.startswith("NVIDIA ")
    assert t.tensor_parallel_options()[0] == 1
    assert t.tensor_parallel_options()[-1] == t.gpu_count


def test_names_are_unique() -> None:
    names = [t.name.lower() for t in ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("cloud", sorted(REQUIRED))
def test_required_types_are_present(cloud: str) -> None:
    missing = [n for n in REQUIRED[cloud] if catalog.lookup(cloud, n) is None]
    assert missing == []


def test_same_gpu_class_has_same_memory_everywhere() -> None:
    seen: dict[str, float] = {}
    for t in ALL:
        assert seen.setdefault(t.gpu_class, t.gpu_memory_gib) == pytest.approx(t.gpu_memory_gib)


def test_known_figures() -> None:
    g6e = catalog.lookup("aws", "g6e.12xlarge")
    assert g6e is not None
    assert (g6e.gpu_class, g6e.gpu_count, g6e.gpu_memory_mib, g6e.vcpu, g6e.ram_gib) == (
        "l40s",
        4,
        45776,
        48,
        384,
    )
    a3 = catalog.lookup("gcp", "a3-highgpu-8g")
    assert a3 is not None
    assert (a3.gke_accelerator, a3.gpu_count, a3.vcpu, a3.ram_gib) == ("nvidia-h100-80gb", 8, 208, 1872)
    mega = catalog.lookup("gcp", "a3-megagpu-8g")
    assert mega is not None and mega.gke_accelerator == "nvidia-h100-mega-80gb" and mega.gpu_class == "h100"
    g2 = catalog.lookup("gcp", "g2-standard-24")
    assert g2 is not None and g2.gpu_count == 2
    nvl = catalog.lookup("azure", "Standard_NC40ads_H100_v5")
    assert nvl is not None and nvl.gpu_class == "h100-nvl" and nvl.gpu_memory_gib == 94
    assert catalog.lookup("gcp", "a2-highgpu-1g").gke_accelerator == "nvidia-tesla-a100"  # type: ignore[union-attr]


def test_reference_verify_marks_are_carried() -> None:
    for cloud, name in (
        ("gcp", "a3-ultragpu-8g"),
        ("gcp", "g2-standard-4"),
        ("azure", "Standard_ND96amsr_A100_v4"),
        ("azure", "Standard_ND96isr_H200_v5"),
    ):
        t = catalog.lookup(cloud, name)
        assert t is not None and not t.verified
    assert catalog.lookup("aws", "p5.48xlarge").verified  # type: ignore[union-attr]


def test_entries_are_frozen_and_strict() -> None:
    t = ALL[0]
    with pytest.raises(ValidationError):
        t.gpu_count = 99  # type: ignore[misc]
    with pytest.raises(ValidationError):
        GpuInstanceType(**{**t.model_dump(), "cloud": "oci"})
    with pytest.raises(ValidationError):
        GpuInstanceType(**{**t.model_dump(), "gpu_count": 0})
    with pytest.raises(ValidationError):
        GpuInstanceType(**{**t.model_dump(), "colour": "green"})


def test_catalog_module_does_not_import_pulumi() -> None:
    code = "import sys, fleetkit.catalog, fleetkit.capacity; assert 'pulumi' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)


# ------------------------------------------------------------------------------------ lookups


def test_lookup_exact_and_case_insensitive() -> None:
    assert catalog.lookup("aws", "g6.xlarge").name == "g6.xlarge"  # type: ignore[union-attr]
    assert catalog.lookup("azure", "standard_nc24ads_a100_v4").name == "Standard_NC24ads_A100_v4"  # type: ignore[union-attr]
    assert catalog.lookup("AWS", " g6.xlarge ") is not None


def test_lookup_misses() -> None:
    assert catalog.lookup("gcp", "g6.xlarge") is None  # right name, wrong cloud
    assert catalog.lookup("aws", "g7.xlarge") is None
    assert catalog.lookup("azure", "NC24ads_A100_v4") is None  # no Standard_ prefix
    assert catalog.lookup("oci", "g6.xlarge") is None


def test_instance_types_order_and_filter() -> None:
    assert catalog.instance_types() == catalog.instance_types()
    assert [t.cloud for t in ALL] == sorted((t.cloud for t in ALL), key=["aws", "gcp", "azure"].index)
    gcp = catalog.instance_types("gcp")
    assert gcp and all(t.cloud == "gcp" for t in gcp)
    assert catalog.instance_types("GCP") == gcp
    assert catalog.instance_types("oci") == []
    assert len(ALL) == sum(len(catalog.instance_types(c)) for c in catalog.CLOUDS)


def test_suggest_for_typos() -> None:
    assert catalog.suggest("aws", "g6e.12xlarg")[0] == "g6e.12xlarge"
    assert catalog.suggest("aws", "p5.48xlage")[0] == "p5.48xlarge"
    assert catalog.suggest("gcp", "a3-highgpu")[0] == "a3-highgpu-8g"
    assert catalog.suggest("azure", "NC24ads_A100_v4")[0] == "Standard_NC24ads_A100_v4"
    assert catalog.suggest("gcp", "g2-standart-8")[0] == "g2-standard-8"
    assert len(catalog.suggest("aws", "g6.xlarg")) <= 3


def test_suggest_nothing_close() -> None:
    assert catalog.suggest("aws", "zzzzzz") == []
    assert catalog.suggest("oci", "g6.xlarge") == []


# ------------------------------------------------------------------------------------ offered_in


def test_offered_in_known_offered() -> None:
    assert catalog.offered_in("gcp", "a3-highgpu-8g", "us-central1") is True
    assert catalog.offered_in("aws", "g6e.12xlarge", "us-east-1") is True
    assert catalog.offered_in("gcp", "g2-standard-8", "europe-west4") is True


def test_offered_in_known_absent_family() -> None:
    # Every a3 variant is rejected in a region listed as having no A3 at all.
    for name in ("a3-highgpu-8g", "a3-megagpu-8g", "a3-ultragpu-8g"):
        assert catalog.offered_in("gcp", name, "southamerica-west1") is False


def test_offered_in_is_unknown_rather_than_wrong() -> None:
    # A variant whose own rollout is not listed is unknown even where a sibling is offered.
    assert catalog.offered_in("gcp", "a3-ultragpu-8g", "us-central1") is None
    # Regions not in the table, other clouds' regions, zones and unknown types are all unknown.
    assert catalog.offered_in("gcp", "a3-highgpu-8g", "asia-northeast1") is None
    assert catalog.offered_in("gcp", "a3-highgpu-8g", "us-east-1") is None
    assert catalog.offered_in("gcp", "a3-highgpu-8g", "us-central1-a") is None
    assert catalog.offered_in("aws", "p5e.48xlarge", "us-east-1") is None
    assert catalog.offered_in("aws", "g7.xlarge", "us-east-1") is None
    assert catalog.offered_in("azure", "Standard_NC24ads_A100_v4", "eastus") is None


def test_offered_in_normalises_azure_display_names() -> None:
    assert catalog.offered_in("azure", "Standard_NC4as_T4_v3", "East US") is True
    assert catalog.offered_in("azure", "Standard_NC4as_T4_v3", "eastus") is True


def test_regional_table_is_sound() -> None:
    for row in catalog.REGIONAL_OFFERINGS:
        assert any(row.applies_to(t) for t in ALL), f"row {row.cloud}/{row.match} matches no catalog entry"
        assert not (row.offered & row.absent)
        assert "unverified" in row.note
    # No region is both offered (for some variant) and absent (for its family).
    for t in ALL:
        rows = [r for r in catalog.REGIONAL_OFFERINGS if r.applies_to(t)]
        offered = set().union(*(r.offered for r in rows)) if rows else set()
        absent = set().union(*(r.absent for r in rows)) if rows else set()
        assert not (offered & absent), t.name


# ------------------------------------------------------------------------------------ sizing


def test_smallest_fitting_orders_by_memory_then_gpus_then_name() -> None:
    # g5.xlarge, g5.2xlarge and g6.xlarge tie on GPUs: the smaller host, then the name decides.
    assert catalog.smallest_fitting("aws", 20).name == "g5.xlarge"  # type: ignore[union-attr]
    assert catalog.smallest_fitting("aws", 30).name == "g6e.xlarge"  # type: ignore[union-attr]
    # 4 x 22.35 GiB beats anything bigger.
    assert catalog.smallest_fitting("aws", 60).name == "g5.12xlarge"  # type: ignore[union-attr]
    # g6e.12xlarge (4 x L40S) and g5.48xlarge (8 x A10G) tie on memory: fewer GPUs wins.
    assert catalog.smallest_fitting("aws", 100).name == "g6e.12xlarge"  # type: ignore[union-attr]


def test_smallest_fitting_with_tensor_parallel() -> None:
    # TP 2 must hold 60 GiB on two GPUs: L40S pairs are the smallest that do.
    assert catalog.smallest_fitting("aws", 60, tensor_parallel=2).name == "g6e.12xlarge"  # type: ignore[union-attr]
    # No AWS machine has a GPU count divisible by 3.
    assert catalog.smallest_fitting("aws", 10, tensor_parallel=3) is None
    # A single 94 GiB H100 NVL is Azure's smallest home for 90 GiB on one GPU.
    t = catalog.smallest_fitting("azure", 90, tensor_parallel=1)
    assert t is not None and t.name == "Standard_NC40ads_H100_v5"


def test_smallest_fitting_overhead_and_utilization() -> None:
    # 20 GiB fits one A10G raw, but not after 8% reserve and 1.5 GiB overhead.
    t = catalog.smallest_fitting("aws", 20, per_gpu_overhead_gib=1.5, gpu_memory_utilization=0.92)
    assert t is not None and t.name == "g6e.xlarge"


def test_smallest_fitting_none_when_too_big() -> None:
    assert catalog.smallest_fitting("aws", 5000) is None
    assert catalog.smallest_fitting("oci", 1) is None


def test_min_tensor_parallel_and_fits() -> None:
    g6e = catalog.lookup("aws", "g6e.48xlarge")
    assert g6e is not None
    assert catalog.min_tensor_parallel(g6e, 40) == 1
    assert catalog.min_tensor_parallel(g6e, 50) == 2
    assert catalog.min_tensor_parallel(g6e, 150) == 4
    assert catalog.min_tensor_parallel(g6e, 400) is None
    assert not catalog.fits(g6e, 10, 3)  # 3 does not divide 8
    assert not catalog.fits(g6e, 10, 0)
