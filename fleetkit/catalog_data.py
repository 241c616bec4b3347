"""The GPU data tables of :mod:`fleetkit.catalog`, with their sources: every machine type fleetkit
knows how to size (:data:`CATALOG`), the per-GPU figures they are built from, and the regional
offerings table (:data:`REGIONAL_OFFERINGS`). Data only: the lookups over it are ``fleetkit.catalog``.

Units
-----
* ``gpu_memory_gib`` is GiB (2**30 bytes) **per GPU**, the usable figure the provider reports for
  the device where one is published. One figure per GPU model, used on every cloud, so that a model
  that fits an L4 on EKS also fits an L4 on GKE: EC2 reports GPU memory in MiB (Karpenter label
  ``karpenter.k8s.aws/instance-gpu-memory``), e.g. 22,888 MiB for an A10G or L4, and those MiB
  figures are the most precise published numbers, so they are used for the same GPU elsewhere
  (the T4 figure is EC2's g4dn one). The H100 NVL, not sold on EC2, uses Azure's published 94 GiB.
* ``ram_gib`` is host memory in GiB. GCE and Azure write "GB" for machine memory but mean GiB.
* ``local_nvme_gb`` is bundled local NVMe in decimal GB (10**9 bytes), for display and node-cache
  sizing only. Figures published in GiB (GCE Local SSD, 375 GiB a disk; Azure temp/NVMe disks) are
  converted and rounded. 0 means the type bundles none (GCE types that only *accept* optional Local
  SSD, or Azure types whose temp disk is not NVMe).

Trust
-----
``verified`` follows the convention of the project's technical reference: a value is verified when
it was confirmed against a primary source (the cited provider document or generated provider
listing). Every entry whose values include anything the reference marks "verify", or anything
added beyond the reference table without such a check, has ``verified=False`` and a ``note`` that
says which value and why. ``source`` cites where the figures come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Cloud = Literal["aws", "gcp", "azure"]
CLOUDS: tuple[str, ...] = get_args(Cloud)

#: Short GPU labels used for routing, subsets and node selection. Same GPU, same label, any cloud.
GpuClass = Literal[
    "t4",
    "a10g",
    "l4",
    "l40s",
    "a100-40gb",
    "a100-80gb",
    "h100",
    "h100-nvl",
    "h200",
    "b200",
]

_MIB_PER_GIB = 1024
_GIB = 2**30


class GpuInstanceType(BaseModel):
    """One provider machine type with NVIDIA GPUs, as fleetkit sizes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: Cloud
    #: Exact provider name: ``g6e.12xlarge``, ``a3-highgpu-8g``, ``Standard_NC24ads_A100_v4``.
    name: str = Field(min_length=1)
    #: Provider family or series: ``g6e``, ``a3``, ``NCads_A100_v4``.
    family: str = Field(min_length=1)
    #: Marketing name of the GPU, e.g. ``NVIDIA L40S``.
    gpu_model: str = Field(min_length=1)
    gpu_class: GpuClass
    gpu_count: int = Field(gt=0)
    #: Usable memory of one GPU in GiB (see the module docstring for the figure used).
    gpu_memory_gib: float = Field(gt=0)
    vcpu: int = Field(gt=0)
    #: Host memory in GiB.
    ram_gib: float = Field(gt=0)
    #: Bundled local NVMe in decimal GB; 0 when the type bundles none.
    local_nvme_gb: int = Field(ge=0)
    #: GKE ``guest_accelerators.type`` / ``cloud.google.com/gke-accelerator`` value; GCP only.
    gke_accelerator: str | None = None
    #: True when every value was confirmed against the cited primary source.
    verified: bool
    #: What is unverified and why; other caveats. Empty when there is nothing to say.
    note: str = ""
    #: Citation for the figures (``owner/repo:path`` or document title).
    source: str = Field(min_length=1)

    @property
    def total_gpu_memory_gib(self) -> float:
        """GPU memory of the whole machine in GiB."""
        return self.gpu_memory_gib * self.gpu_count

    @property
    def gpu_memory_mib(self) -> int:
        """Per-GPU memory in MiB, the unit of the Karpenter and GPU Feature Discovery labels."""
        return round(self.gpu_memory_gib * _MIB_PER_GIB)

    def tensor_parallel_options(self) -> list[int]:
        """Tensor-parallel sizes that divide this machine's GPUs evenly, smallest first."""
        return [tp for tp in range(1, self.gpu_count + 1) if self.gpu_count % tp == 0]


# --------------------------------------------------------------------------------------------------
# Source data
# --------------------------------------------------------------------------------------------------

_SRC_AWS = "aws/karpenter-provider-aws:website/content/en/docs/reference/instance-types.md"
_SRC_GKE_ACCEL = "GoogleCloudPlatform/cluster-toolkit:modules/internal/gpu-definition/main.tf"
_SRC_GCE = "GCE accelerator-optimized machine family docs"
_SRC_AZURE = "MicrosoftDocs/azure-docs:articles/virtual-machines/sizes/gpu-accelerated/{page}"


@dataclass(frozen=True)
class _Gpu:
    model: str
    gpu_class: str
    memory_gib: float
    gke_accelerator: str | None = None


# Per-GPU usable memory. MiB figures are EC2's (Karpenter instance-types reference); the H100 NVL
# figure is Azure's published 94 GiB.
_GPUS: dict[str, _Gpu] = {
    "t4": _Gpu("NVIDIA T4", "t4", 16384 / _MIB_PER_GIB, "nvidia-tesla-t4"),
    "a10g": _Gpu("NVIDIA A10G", "a10g", 22888 / _MIB_PER_GIB),
    "l4": _Gpu("NVIDIA L4", "l4", 22888 / _MIB_PER_GIB, "nvidia-l4"),
    "l40s": _Gpu("NVIDIA L40S", "l40s", 45776 / _MIB_PER_GIB),
    "a100-40gb": _Gpu("NVIDIA A100 40GB", "a100-40gb", 40960 / _MIB_PER_GIB, "nvidia-tesla-a100"),
    "a100-80gb": _Gpu("NVIDIA A100 80GB", "a100-80gb", 81920 / _MIB_PER_GIB, "nvidia-a100-80gb"),
    "h100": _Gpu("NVIDIA H100 80GB", "h100", 81920 / _MIB_PER_GIB, "nvidia-h100-80gb"),
    "h100-mega": _Gpu("NVIDIA H100 80GB", "h100", 81920 / _MIB_PER_GIB, "nvidia-h100-mega-80gb"),
    "h100-nvl": _Gpu("NVIDIA H100 NVL", "h100-nvl", 94.0),
    "h200": _Gpu("NVIDIA H200", "h200", 144384 / _MIB_PER_GIB, "nvidia-h200-141gb"),
    "b200": _Gpu("NVIDIA B200", "b200", 183359 / _MIB_PER_GIB, "nvidia-b200"),
}

#: GiB of one GCE Local SSD (https://cloud.google.com/compute/docs/disks/local-ssd); the one owner of the figure.
GCE_LOCAL_SSD_GIB = 375


def _gib_to_gb(gib: float) -> int:
    return round(gib * _GIB / 10**9)


def _gce_ssd_gb(disks: int) -> int:
    return _gib_to_gb(disks * GCE_LOCAL_SSD_GIB)


def _entry(
    cloud: str,
    name: str,
    family: str,
    gpu: str,
    count: int,
    vcpu: int,
    ram_gib: float,
    nvme_gb: int,
    *,
    source: str,
    note: str = "",
    verified: bool = True,
    gpu_model: str | None = None,
) -> GpuInstanceType:
    spec = _GPUS[gpu]
    return GpuInstanceType(
        cloud=cloud,  # type: ignore[arg-type]
        name=name,
        family=family,
        gpu_model=gpu_model or spec.model,
        gpu_class=spec.gpu_class,  # type: ignore[arg-type]
        gpu_count=count,
        gpu_memory_gib=spec.memory_gib,
        vcpu=vcpu,
        ram_gib=ram_gib,
        local_nvme_gb=nvme_gb,
        gke_accelerator=spec.gke_accelerator if cloud == "gcp" else None,
        verified=verified,
        note=note,
        source=source,
    )


def _aws(name: str, gpu: str, count: int, vcpu: int, ram_mib: int, nvme_gb: int) -> GpuInstanceType:
    # Every AWS row was read from the generated Karpenter listing (GPU memory MiB, memory MiB,
    # local NVMe GB), which is what REFERENCE d.5 summarises.
    return _entry(
        "aws", name, name.split(".")[0], gpu, count, vcpu, ram_mib / _MIB_PER_GIB, nvme_gb, source=_SRC_AWS
    )


_G2_NOTE = (
    "unverified: host RAM is marked 'verify' in the reference (g2 is 4 GiB per vCPU); "
    "Local SSD is optional on g2, not bundled"
)
_A2_HIGH_NOTE = (
    "unverified: vCPU/RAM beyond a2-highgpu-1g are not in the reference and 1g's RAM is marked "
    "'verify' (a2-highgpu scales 12 vCPU / 85 GB per GPU); Local SSD optional, not bundled"
)
_A2_ULTRA_NOTE = (
    "unverified: RAM and bundled Local SSD are marked 'verify' for 1g and absent from the reference "
    "for 2g-8g (a2-ultragpu scales 12 vCPU / 170 GB / one 375 GiB Local SSD per GPU)"
)

CATALOG: tuple[GpuInstanceType, ...] = (
    # ---------------------------------------------------------------- AWS (EC2, via Karpenter)
    _aws("g5.xlarge", "a10g", 1, 4, 16384, 250),
    _aws("g5.2xlarge", "a10g", 1, 8, 32768, 450),
    _aws("g5.12xlarge", "a10g", 4, 48, 196608, 3800),
    _aws("g5.48xlarge", "a10g", 8, 192, 786432, 7600),
    _aws("g6.xlarge", "l4", 1, 4, 16384, 250),
    _aws("g6.12xlarge", "l4", 4, 48, 196608, 3760),
    _aws("g6.48xlarge", "l4", 8, 192, 786432, 7520),
    _aws("g6e.xlarge", "l40s", 1, 4, 32768, 250),
    _aws("g6e.12xlarge", "l40s", 4, 48, 393216, 3800),
    _aws("g6e.48xlarge", "l40s", 8, 192, 1572864, 7600),
    _aws("p4d.24xlarge", "a100-40gb", 8, 96, 1179648, 8000),
    _aws("p4de.24xlarge", "a100-80gb", 8, 96, 1179648, 8000),
    _aws("p5.48xlarge", "h100", 8, 192, 2097152, 30400),
    _aws("p5e.48xlarge", "h200", 8, 192, 2097152, 30400),
    _aws("p5en.48xlarge", "h200", 8, 192, 2097152, 30400),
    _aws("p6-b200.48xlarge", "b200", 8, 192, 2097152, 30400),
    # ---------------------------------------------------------------- GCP (GCE machine types)
    *(
        _entry(
            "gcp",
            f"g2-standard-{vcpu}",
            "g2",
            "l4",
            gpus,
            vcpu,
            4 * vcpu,
            0,
            source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE} (vCPU/RAM)",
            verified=False,
            note=_G2_NOTE,
        )
        for vcpu, gpus in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))
    ),
    *(
        _entry(
            "gcp",
            f"a2-highgpu-{gpus}g",
            "a2",
            "a100-40gb",
            gpus,
            12 * gpus,
            85 * gpus,
            0,
            source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE} (vCPU/RAM)",
            verified=False,
            note=_A2_HIGH_NOTE,
        )
        for gpus in (1, 2, 4, 8)
    ),
    *(
        _entry(
            "gcp",
            f"a2-ultragpu-{gpus}g",
            "a2",
            "a100-80gb",
            gpus,
            12 * gpus,
            170 * gpus,
            _gce_ssd_gb(gpus),
            source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE} (vCPU/RAM/Local SSD)",
            verified=False,
            note=_A2_ULTRA_NOTE,
        )
        for gpus in (1, 2, 4, 8)
    ),
    _entry(
        "gcp",
        "a3-highgpu-8g",
        "a3",
        "h100",
        8,
        208,
        1872,
        _gce_ssd_gb(16),
        source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE} (208 vCPU, 1,872 GB)",
        verified=False,
        note="unverified: bundled Local SSD (16 x 375 GiB) is marked 'verify' in the reference",
    ),
    _entry(
        "gcp",
        "a3-megagpu-8g",
        "a3",
        "h100-mega",
        8,
        208,
        1872,
        _gce_ssd_gb(16),
        source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE}",
        verified=False,
        note=(
            "unverified: vCPU, RAM and Local SSD are not in the reference; taken to match "
            "a3-highgpu-8g (same host, more GPU NICs)"
        ),
    ),
    _entry(
        "gcp",
        "a3-ultragpu-8g",
        "a3",
        "h200",
        8,
        224,
        2952,
        _gce_ssd_gb(32),
        source=f"{_SRC_GKE_ACCEL} (GPU type/count); {_SRC_GCE}",
        verified=False,
        note=(
            "unverified: vCPU, RAM (2,952 GB) and Local SSD (32 x 375 GiB) are marked 'verify'; "
            "a GCE docs snapshot gives the A3 series maximum as 2,944 GB, so RAM is disputed"
        ),
    ),
    _entry(
        "gcp",
        "a4-highgpu-8g",
        "a4",
        "b200",
        8,
        224,
        3968,
        _gce_ssd_gb(32),
        source=f"{_SRC_GKE_ACCEL} (nvidia-b200); {_SRC_GCE}",
        verified=False,
        note=(
            "unverified: not in the reference table; vCPU, RAM and Local SSD are from memory of the "
            "GCE A4 docs and the GPU memory is EC2's B200 figure"
        ),
    ),
    # ---------------------------------------------------------------- Azure (VM sizes)
    *(
        _entry(
            "azure",
            f"Standard_NC{vcpu}as_T4_v3",
            "NCasT4_v3",
            "t4",
            gpus,
            vcpu,
            ram,
            0,
            source=_SRC_AZURE.format(page="ncast4v3-series.md"),
            note=f"{temp} GiB temp disk is SCSI SSD, not NVMe",
        )
        for vcpu, ram, gpus, temp in ((4, 28, 1, 176), (8, 56, 1, 352), (16, 110, 1, 352), (64, 440, 4, 2816))
    ),
    *(
        _entry(
            "azure",
            f"Standard_NC{vcpu}ads_A100_v4",
            "NCads_A100_v4",
            "a100-80gb",
            gpus,
            vcpu,
            ram,
            960 * gpus,
            source="MicrosoftDocs/azure-docs:articles/virtual-machines/nc-a100-v4-series.md",
            gpu_model="NVIDIA A100 80GB PCIe",
            note="NVMe is 960 GB per GPU, unformatted on a new VM; the SCSI temp disk is separate",
        )
        for vcpu, ram, gpus in ((24, 220, 1), (48, 440, 2), (96, 880, 4))
    ),
    _entry(
        "azure",
        "Standard_ND96asr_v4",
        "NDasrA100_v4",
        "a100-40gb",
        8,
        96,
        900,
        0,
        source=_SRC_AZURE.format(page="ndasra100v4-series.md"),
        verified=False,
        note=(
            "unverified: the docs list a 6,000 GiB temp disk and do not say it is NVMe (the reference "
            "lists no NVMe); the same docs page spells the size Standard_ND96asr_A100_v4"
        ),
    ),
    _entry(
        "azure",
        "Standard_ND96amsr_A100_v4",
        "NDm_A100_v4",
        "a100-80gb",
        8,
        96,
        1900,
        _gib_to_gb(6400),
        source=_SRC_AZURE.format(page="ndma100v4-series.md"),
        verified=False,
        note="unverified: RAM is disputed (docs page 1,900; an older include 900; another list 1,800 GB)",
    ),
    _entry(
        "azure",
        "Standard_NC40ads_H100_v5",
        "NCads_H100_v5",
        "h100-nvl",
        1,
        40,
        320,
        _gib_to_gb(3576),
        source=_SRC_AZURE.format(page="ncadsh100v5-series.md"),
    ),
    _entry(
        "azure",
        "Standard_NC80adis_H100_v5",
        "NCads_H100_v5",
        "h100-nvl",
        2,
        80,
        640,
        _gib_to_gb(7152),
        source=_SRC_AZURE.format(page="ncadsh100v5-series.md"),
    ),
    _entry(
        "azure",
        "Standard_ND96isr_H100_v5",
        "ND_H100_v5",
        "h100",
        8,
        96,
        1900,
        _gib_to_gb(28000),
        source=_SRC_AZURE.format(page="ndh100v5-series.md"),
    ),
    _entry(
        "azure",
        "Standard_ND96isr_H200_v5",
        "ND_H200_v5",
        "h200",
        8,
        96,
        1850,
        _gib_to_gb(28000),
        source="kaito-project/kaito:pkg/sku/azure_sku_handler.go (GPU count/memory)",
        verified=False,
        note=(
            "unverified: RAM is marked 'verify' in the reference (1,850 GiB from memory); NVMe taken "
            "to match ND96isr_H100_v5"
        ),
    ),
)


# --------------------------------------------------------------------------------------------------
# Regional offerings (conservative, unverified; see the docstring of fleetkit.catalog)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionalOffering:
    """What fleetkit believes about where one family (or machine-type prefix) is offered.

    ``match`` is either a family (``g6e``, ``a3``) or a machine-type prefix (``a3-highgpu``).
    ``offered`` lists regions where it is known to be offered; ``absent`` lists regions where the
    family is known to be missing altogether. Regions in neither set are unknown.
    """

    cloud: str
    match: str
    offered: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    note: str = "unverified: stated from general knowledge, not checked against a live listing"

    def applies_to(self, t: GpuInstanceType) -> bool:
        return t.cloud == self.cloud and (t.family == self.match or t.name.startswith(self.match + "-"))


def _r(*regions: str) -> frozenset[str]:
    return frozenset(regions)


REGIONAL_OFFERINGS: tuple[RegionalOffering, ...] = (
    # AWS: launch regions of each family; no absences are claimed.
    RegionalOffering("aws", "g5", offered=_r("us-east-1", "us-east-2", "us-west-2", "eu-west-1")),
    RegionalOffering("aws", "g6", offered=_r("us-east-1", "us-east-2", "us-west-2")),
    RegionalOffering("aws", "g6e", offered=_r("us-east-1", "us-east-2", "us-west-2")),
    RegionalOffering("aws", "p4d", offered=_r("us-east-1", "us-west-2")),
    RegionalOffering("aws", "p5", offered=_r("us-east-1", "us-east-2", "us-west-2")),
    # GCP: offered regions per machine-type prefix, absence per family.
    RegionalOffering("gcp", "g2", offered=_r("us-central1", "us-east4", "europe-west4", "asia-southeast1")),
    RegionalOffering("gcp", "a2-highgpu", offered=_r("us-central1", "europe-west4", "asia-southeast1")),
    RegionalOffering("gcp", "a2-ultragpu", offered=_r("us-central1", "europe-west4")),
    RegionalOffering("gcp", "a3-highgpu", offered=_r("us-central1", "us-east4", "europe-west4")),
    RegionalOffering("gcp", "a3-megagpu", offered=_r("us-central1", "us-east4")),
    RegionalOffering(
        "gcp",
        "a2",
        absent=_r("southamerica-west1", "africa-south1"),
        note="unverified: regions believed to have no A100 machine types at all",
    ),
    RegionalOffering(
        "gcp",
        "a3",
        absent=_r("southamerica-west1", "africa-south1", "northamerica-northeast1"),
        note="unverified: regions believed to have no H100/H200 (A3) machine types at all",
    ),
    # Azure: regions written as ARM location names (``eastus``); no absences are claimed.
    RegionalOffering("azure", "NCasT4_v3", offered=_r("eastus", "westus2", "westeurope")),
    RegionalOffering("azure", "ND_H100_v5", offered=_r("eastus", "southcentralus")),
)
