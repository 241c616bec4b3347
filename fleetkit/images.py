"""Pinned container images: the kit's default image references.

The versions live with the typed ``fleetkit:images`` settings (:class:`fleetkit.spec.ImagesSpec`,
whose defaults are these images); stacks may point at their own registry, repository, tag and digest.

Tags are pinned (never ``latest``): an image change is a reviewed diff that rolls every model pod.
Add a digest (``@sha256:…``) once the image has been pulled from a trusted network; with a digest
the reference is immutable even if a registry re-tags.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetkit.spec import VLLM_VERSION, WEIGHTS_AGENT_VERSION


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str | None = None

    def __post_init__(self) -> None:
        if not self.tag or self.tag == "latest":
            raise ValueError(f"{self.repository}: pin a version tag, not {self.tag!r}")
        if self.digest is not None and not self.digest.startswith("sha256:"):
            raise ValueError(f"{self.repository}: digest must look like sha256:<hex>")

    @property
    def ref(self) -> str:
        """``repo:tag`` or ``repo:tag@sha256:…`` (the digest wins when the runtime resolves it)."""
        base = f"{self.repository}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base

    def __str__(self) -> str:
        return self.ref


#: Upstream vLLM OpenAI-compatible server. Tags carry a ``v`` prefix. The kit sets
#: ``command: ["vllm", "serve"]`` itself, so the image's entrypoint does not matter.
VLLM = ImageRef("vllm/vllm-openai", f"v{VLLM_VERSION}")

#: The weight-cache agent (``images/weight-cache``; the tag follows its ``pyproject.toml`` version).
#: Used by the sync init container, the lease sidecar and the prefetch DaemonSet.
WEIGHTS_AGENT = ImageRef("ghcr.io/fleetkit/fleetkit-weights", WEIGHTS_AGENT_VERSION)
