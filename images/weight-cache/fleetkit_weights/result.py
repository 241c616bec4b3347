"""A sync's outcome (summary line or JSON) and the units it is printed in.

Shared by the full sync and the warm fast path, so it imports nothing.
"""

from __future__ import annotations


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def fmt_rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:.1f} MB/s"



class SyncResult:
    FIELDS = (
        "source", "path", "entry_id", "files", "downloaded_files", "skipped_files", "total_bytes", "fetched_bytes",
        "resumed_bytes", "seconds", "cached", "waited", "stale", "retries", "evicted",
    )

    def __init__(self, source: str, path: str, entry_id: str, files: int = 0, total_bytes: int = 0,
                 skipped_files: int = 0, cached: bool = False, stale: bool = False, seconds: float = 0.0):
        self.source, self.path, self.entry_id = source, path, entry_id
        self.files = files
        self.downloaded_files = 0
        self.skipped_files = skipped_files  # already present and verified (cache hit, resume, or reused)
        self.total_bytes = total_bytes
        self.fetched_bytes = 0
        self.resumed_bytes = 0
        self.seconds = seconds
        self.cached = cached  # warm hit: nothing to download
        self.waited = False  # another process on this node did (part of) the work
        self.stale = stale
        self.retries = 0
        self.evicted: list[str] = []
        self.verified_with = "sha256"  # chunk digest algorithm of the downloaded files (sha256 or blake3)

    def summary(self) -> str:
        rate = self.fetched_bytes / self.seconds if self.seconds > 0 else 0.0
        if self.stale:
            state = "object store unreachable; using the cached version (--allow-stale)"
        elif self.cached:
            state = "already cached and verified" + (" (after waiting for another sync)" if self.waited else "")
        else:
            state = (
                f"{self.downloaded_files} downloaded, {self.skipped_files} skipped, all {self.verified_with}-verified"
                + (f", resumed {fmt_bytes(self.resumed_bytes)}" if self.resumed_bytes else "")
                + (f", {self.retries} retries" if self.retries else "")
            )
        return (
            f"synced {self.source} -> {self.path}: {self.files} files, {fmt_bytes(self.total_bytes)} "
            f"({fmt_bytes(self.fetched_bytes)} fetched) in {self.seconds:.2f}s ({fmt_rate(rate)}); {state}"
        )

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.FIELDS}
