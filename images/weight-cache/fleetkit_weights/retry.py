"""Retry policy: exponential backoff with full jitter, for transient S3/network failures."""

from __future__ import annotations

import _socket
import errno
import os
import sys
import threading
import time
from typing import Callable, NamedTuple, TypeVar

from fleetkit_weights.errors import S3Error, TruncatedBody, WeightsError

T = TypeVar("T")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class RetryPolicy(NamedTuple):
    max_attempts: int = 10
    base_delay: float = 0.25
    max_delay: float = 20.0

    @classmethod
    def from_env(cls, max_attempts: int | None = None) -> "RetryPolicy":
        return cls(
            max_attempts=max_attempts or int(_env_float("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", 10)),
            base_delay=_env_float("FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS", 0.25),
            max_delay=_env_float("FLEETKIT_WEIGHTS_RETRY_MAX_SECONDS", 20.0),
        )

    def delay(self, attempt: int) -> float:
        """Full-jitter backoff for the given 1-based failed attempt."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        import random  # noqa: PLC0415 - only once something has failed

        return random.uniform(ceiling / 4, ceiling)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.retryable
    if isinstance(exc, (TruncatedBody, TimeoutError)):
        return True
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return True
    if isinstance(exc, (ConnectionError, BrokenPipeError)):
        return True
    if isinstance(exc, _socket.gaierror):
        return True  # DNS hiccup (EAI_AGAIN and friends)
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        return True
    return False


class RetryStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries = 0

    def add(self) -> None:
        with self._lock:
            self.retries += 1


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    stats: RetryStats | None = None,
    log: Callable[[str], None] | None = None,
) -> T:
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc) or attempt >= policy.max_attempts:
                if is_transient(exc):
                    raise RetriesExhausted(what, attempt, exc) from exc
                raise
            if stats is not None:
                stats.add()
            wait = policy.delay(attempt)
            if log is not None:
                log(f"retrying {what} in {wait:.2f}s after {describe(exc)} (attempt {attempt}/{policy.max_attempts})")
            time.sleep(wait)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text


class RetriesExhausted(WeightsError):
    def __init__(self, what: str, attempts: int, last: BaseException):
        self.last = last
        super().__init__(f"{what}: giving up after {attempts} attempts; last error: {describe(last)}")
