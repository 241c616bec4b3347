"""Exception types and their process exit codes."""

from __future__ import annotations


class WeightsError(Exception):
    """An expected, explainable failure: printed as one line, no traceback."""

    exit_code = 1


class UsageError(WeightsError):
    """Bad command-line input. Carries one message per problem."""

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class IntegrityError(WeightsError):
    """Downloaded data does not match the manifest (or the manifest is malformed)."""

    exit_code = 3


class S3Error(WeightsError):
    """An error answer from the object store."""

    def __init__(self, status: int, code: str, message: str, what: str = ""):
        self.status = status
        self.code = code
        self.message = message
        self.what = what
        text = f"{what}: " if what else ""
        text += f"HTTP {status}"
        if code:
            text += f" {code}"
        if message:
            text += f" ({message})"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        return self.status in (429, 500, 502, 503, 504) or self.code in (
            "SlowDown",
            "RequestTimeout",
            "InternalError",
            "ServiceUnavailable",
            "Throttling",
            "ThrottlingException",
        )


class TruncatedBody(Exception):
    """The server closed the body before Content-Length bytes arrived (retryable)."""


class LockTimeout(WeightsError):
    pass
