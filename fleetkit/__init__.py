"""fleetkit: multi-cloud deployment kit for self-hosted LLM inference (CLI and shared code)."""

__version__ = "0.1.0"
