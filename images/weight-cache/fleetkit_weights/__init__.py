"""fleetkit-weights: a node-local, S3-backed model weight cache for vLLM."""

__version__ = "0.1.0"

MANIFEST_NAME = "fleetkit-manifest.json"
