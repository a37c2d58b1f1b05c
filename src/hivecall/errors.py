"""A small exception hierarchy; the web layer turns each into one JSON shape.

`{"error": {"code": "...", "message": "..."}}` is the only error body the hub sends. Messages are
written for people and never carry secrets or transcripts.
"""

from __future__ import annotations


class HivecallError(Exception):
    code = "internal_error"
    status = 500
    retryable = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. Retry-After); none by default."""
        return {}


class ConfigError(HivecallError):
    code = "config_error"


class BadRequest(HivecallError):
    code = "bad_request"
    status = 400


class Unauthorized(HivecallError):
    code = "unauthorized"
    status = 401


class Forbidden(HivecallError):
    code = "forbidden"
    status = 403


class NotFound(HivecallError):
    code = "not_found"
    status = 404


class Conflict(HivecallError):
    code = "conflict"
    status = 409


class PayloadTooLarge(HivecallError):
    code = "payload_too_large"
    status = 413


class TooManyRequests(HivecallError):
    """Too many attempts from one caller; `retry_after` says when to try again (seconds)."""

    code = "too_many_requests"
    status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(HivecallError):
    """A service the hub relies on (OpenAI, LiveKit) failed or refused; the code says how."""

    code = "upstream_error"
    status = 502
    retryable = True


class RuntimeFailure(HivecallError):
    """The agent's runtime could not answer. `spoken` is what a caller hears instead."""

    code = "runtime_failed"
    status = 502
    retryable = True

    def __init__(self, message: str, *, spoken: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.spoken = spoken
