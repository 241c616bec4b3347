"""Regions of each cloud, and the provider config key that must agree with ``fleetkit:region``.

Data table (domain layer). A region that is not in the table is a spec error (``stack.unknown-region``):
a misspelled region (``us-west-9``, or an AWS region in a GCP stack) would otherwise be accepted
offline and fail only at ``pulumi up``. A region launched after this table was written is added
here, in one line.

Sources (public region lists, 2026):

* AWS: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html (commercial,
  GovCloud and China partitions; the European Sovereign Cloud region ``eusc-de-east-1``).
* GCP: https://cloud.google.com/compute/docs/regions-zones#available
* Azure: ARM location names as ``az account list-locations --query "[].name"`` prints them
  (https://learn.microsoft.com/azure/reliability/regions-list); logical/paired-only names excluded.

Provider keys: the AWS provider reads ``aws:region``, the Google provider ``gcp:region``, Azure Native
``azure-native:location`` (Pulumi registry docs of each provider's configuration). Azure accepts
display names (``East US``) as well as ARM names (``eastus``); both normalise to ``eastus``.
"""

from __future__ import annotations

import difflib

AWS_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "cn-north-1",
        "cn-northwest-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eusc-de-east-1",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-gov-east-1",
        "us-gov-west-1",
        "us-west-1",
        "us-west-2",
    }
)

GCP_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west10",
        "europe-west12",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)

AZURE_REGIONS = frozenset(
    {
        "australiacentral",
        "australiacentral2",
        "australiaeast",
        "australiasoutheast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "brazilsoutheast",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "chilecentral",
        "denmarkeast",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "francesouth",
        "germanynorth",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "jioindiacentral",
        "jioindiawest",
        "koreacentral",
        "koreasouth",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "norwaywest",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southafricawest",
        "southcentralus",
        "southeastasia",
        "southindia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "switzerlandwest",
        "uaecentral",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westindia",
        "westus",
        "westus2",
        "westus3",
    }
)

REGIONS: dict[str, frozenset[str]] = {"aws": AWS_REGIONS, "gcp": GCP_REGIONS, "azure": AZURE_REGIONS}

#: The provider config key holding the region each cloud's Pulumi provider deploys to.
PROVIDER_REGION_KEY: dict[str, str] = {
    "aws": "aws:region",
    "gcp": "gcp:region",
    "azure": "azure-native:location",
}


def normalize(cloud: str, region: str) -> str:
    """The comparable form of a region: Azure display names (``East US``) become ARM names (``eastus``)."""
    text = region.strip()
    return text.lower().replace(" ", "") if cloud == "azure" else text


def is_known(cloud: str, region: str) -> bool:
    return normalize(cloud, region) in REGIONS.get(cloud, frozenset())


def cloud_of(region: str) -> list[str]:
    """The clouds that have a region of this name (to say "that is a GCP region")."""
    return sorted(c for c, names in REGIONS.items() if normalize(c, region) in names)


def suggest(cloud: str, region: str) -> list[str]:
    return difflib.get_close_matches(
        normalize(cloud, region), sorted(REGIONS.get(cloud, ())), n=3, cutoff=0.75
    )


def aws_partition(region: str) -> str:
    """The AWS partition of a region (what ARNs there start with: ``arn:<partition>:``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
