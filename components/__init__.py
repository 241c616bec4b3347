"""Pulumi ComponentResources: clusters, GPU node pools, model services, policy sets, the region platform."""
